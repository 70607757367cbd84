/* The directives whose syntax is their own (addresses, server and check
 * lines, session keys, blocks), each with the printer that writes it back. */
#ifndef EG_CONF_HANDLERS_H
#define EG_CONF_HANDLERS_H

#include "conf/directive.h"

/* Top level (conf/handlers_main.c). */
conf_set_fn conf_set_log, conf_set_access_log, conf_set_stats;
conf_open_fn conf_open_redis;
conf_print_fn conf_print_log, conf_print_access_log, conf_print_stats, conf_print_redis;

/* Datacenters (conf/handlers_dc.c). */
conf_open_fn conf_open_datacenter;
conf_set_fn conf_set_server, conf_set_check;
conf_print_fn conf_print_datacenters, conf_print_servers, conf_print_check;

/* Listeners (conf/handlers_listener.c). */
conf_open_fn conf_open_listener;
conf_set_fn conf_set_listen, conf_set_tls, conf_set_session, conf_set_dc_list,
    conf_set_accept_proxy;
conf_print_fn conf_print_listeners, conf_print_listens, conf_print_tls, conf_print_session,
    conf_print_dc_list, conf_print_accept_proxy;

#endif
