/* edgegate: command line, process setup, signals. */
#include "conf/conf.h"
#include "gateway/aff.h"
#include "gateway/buf.h"
#include "gateway/gw.h"
#include "gateway/log.h"
#include "gateway/stats.h"
#include "gateway/tls.h"
#include "gateway/up.h"
#include "healthcheck/dc.h"
#include "healthcheck/dns.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/edgegate/edgegate.conf"

enum { EXIT_CONF = 1, EXIT_RUNTIME = 2 };

static void usage(FILE *f)
{
    fprintf(f, "usage: edgegate [-c FILE] [-t] [-f] [-v] [-h]\n"
               "  -c FILE   configuration file (default " DEFAULT_CONF ")\n"
               "  -t        test the configuration and exit\n"
               "  -f        stay in the foreground, log to stderr\n"
               "  -v        print the version and exit\n"
               "  -h        print this help and exit\n");
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop, (void)revents;
    switch (w->signum) {
    case SIGHUP:
        gw_reload();
        break;
    case SIGUSR1:
        if (log_reopen() != EG_OK)
            log_err("cannot reopen the log file: %s", strerror(errno));
        else
            log_info("log file reopened");
        break;
    default:
        gw_drain();
    }
}

/* Enough descriptors for every connection's two sockets; the soft limit is
 * raised as far as the hard limit allows. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return EG_ERR;
    if (pid > 0)
        _exit(0);
    setsid();
    if (chdir("/") != 0)
        return EG_ERR;
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (fd > 2)
            close(fd);
    }
    return EG_OK;
}

static struct conf *load(const char *file)
{
    struct conf_errs errs = {0};
    struct conf *c = conf_load(file, &errs);
    if (!c)
        fputs(errs.text ? errs.text : "configuration error\n", stderr);
    conf_errs_free(&errs);
    return c;
}

int main(int argc, char **argv)
{
    const char *file = DEFAULT_CONF;
    bool test = false, foreground = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:tfvh")) != -1) {
        switch (opt) {
        case 'c': file = optarg; break;
        case 't': test = true; break;
        case 'f': foreground = true; break;
        case 'v': printf("edgegate %s\n", EG_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_CONF;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgegate: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_CONF;
    }
    char err[EG_ERRLEN * 2];
    if (tls_init(err, sizeof(err)) != EG_OK) {
        fprintf(stderr, "edgegate: %s\n", err);
        return EXIT_RUNTIME;
    }
    struct conf *c = load(file);
    if (!c)
        return EXIT_CONF;
    if (test) {
        /* Certificates are part of the configuration: load them too. */
        struct conf_errs errs = {0};
        bool unreadable = false;
        int rc = tls_check_conf(c, &errs, &unreadable);
        fputs(errs.text ? errs.text : "", stderr);
        conf_errs_free(&errs);
        conf_free(c);
        if (rc != EG_OK)
            return EXIT_CONF;
        printf("configuration ok\n");
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    log_level = c->log_level;
    if (c->log_file && log_open(c->log_file) != EG_OK) {
        fprintf(stderr, "%s: cannot open log file %s: %s\n", file, c->log_file, strerror(errno));
        return EXIT_RUNTIME;
    }
    if (!foreground && daemonize() != EG_OK) {
        fprintf(stderr, "edgegate: cannot become a daemon: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    struct ev_loop *loop = ev_default_loop(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!loop) {
        fprintf(stderr, "edgegate: cannot start the event loop\n");
        return EXIT_RUNTIME;
    }
    /* Timers (checks, timeouts) may fire up to 2ms late: batching them saves
     * wakeups when thousands of servers are checked. I/O is not delayed. */
    ev_set_timeout_collect_interval(loop, 0.002);
    srandom((unsigned)getpid() ^ (unsigned)ev_time());
    buf_pool_init(c->buffer_size);
    gw_init(loop, file);
    dc_module_init(loop);
    up_module_init(loop);
    aff_init(loop);
    if (dns_init(loop, err, sizeof(err)) != 0) {
        log_err("%s", err);
        return EXIT_RUNTIME;
    }
    int rc = gw_start(c);
    if (rc != 0)
        return rc;
    static ev_signal sigs[4];
    const int signums[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 4; i++) {
        ev_signal_init(&sigs[i], on_signal, signums[i]);
        ev_signal_start(loop, &sigs[i]);
        ev_unref(loop);
    }
    log_attach(loop);
    log_info("edgegate %s started: %d datacenters, %d listeners", EG_VERSION, c->ndcs,
             c->nlsns);
    ev_run(loop, 0);
    log_info("edgegate stopped");
    log_detach();
    return 0;
}
