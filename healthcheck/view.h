/* One health view per machine. With `workers N`, one process (worker 0,
 * the checker) runs the active checks and resolves server names; what it
 * finds, and what any worker learns from traffic (a refused connection, an
 * outlier), is written to a table in shared memory that every worker
 * applies to its own datacenter and server objects within a poll interval.
 * Check traffic does not grow with the number of workers, and every worker
 * routes on the same view. A single process is its own checker and keeps
 * the table to itself.
 *
 * Rows are keyed by names (datacenter, server address; datacenter, server
 * line for names), so that they outlive reloads and workers: a worker that
 * starts (or restarts, checker included) takes the machine's view of each
 * server instead of starting from "up". */
#ifndef EG_HEALTHCHECK_VIEW_H
#define EG_HEALTHCHECK_VIEW_H

#include "healthcheck/datacenter-types.h"

#define VIEW_MAX_SRV 1024
#define VIEW_MAX_DC 64
#define VIEW_MAX_NAMES 256
#define VIEW_MAX_ADDRS 16       /* addresses of one server name */

/* Maps the table shared by NPROCS processes (the master, before forking). */
void view_shared_init(int nprocs);
/* In a worker after fork: whether it is the one that checks. */
void view_set_checker(bool checker);
bool view_checker(void);
/* A change another process made is being applied: it logged it already. */
bool view_applying(void);
/* Starts applying what other processes write (with workers). */
void view_init(struct ev_loop *loop);

/* datacenter.c: a new object takes the machine's view of it; a change is
 * written for the other processes. A server's verdict is news (to be
 * logged) unless the view already said it (another process made the same
 * one, an operator's applied by every worker) or is being applied. */
void view_adopt_srv(struct srv *s);
void view_adopt_dc(struct dc *dc);
bool view_publish_srv(struct srv *s);
/* A datacenter's round-trip time and whether it is the nearest of its
 * tier (the checker's say). */
void view_publish_dc(struct dc *dc);

/* server_dns.c: the addresses a server line's name resolved to. */
void view_publish_names(const char *dc, const char *spec, const struct net_addr *addrs, int n);
/* The addresses last published for DC/SPEC into ADDRS (room for
 * VIEW_MAX_ADDRS), with their version in *SEQ; -1 when none were. */
int view_names(const char *dc, const char *spec, struct net_addr *addrs, uint32_t *seq);

/* Machine-wide counts, the same whichever worker is asked. */
void view_count_check(void);
void view_count_dns_query(void);
unsigned long view_checks_total(void);
unsigned long view_dns_queries_total(void);

#endif
