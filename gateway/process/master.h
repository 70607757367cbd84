/* The master of `workers N`: starts, watches and signals the workers. */
#ifndef EG_GATEWAY_PROCESS_MASTER_H
#define EG_GATEWAY_PROCESS_MASTER_H

#include "conf/conf-types.h"

/* Runs until stopped; returns the process exit code. Takes ownership of C. */
int master_run(struct conf *c, const char *file, int workers);

#endif
