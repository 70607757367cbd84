/* edgegate: command line, daemon, and the choice between one process and a
 * master with workers. */
#include "conf/conf.h"
#include "gateway/process/gateway.h"
#include "base/util.h"
#include "base/log.h"
#include "base/notify.h"
#include "gateway/process/master.h"
#include "base/counters.h"
#include "base/tls.h"
#include "healthcheck/admin.h"
#include "healthcheck/view.h"

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
    fprintf(f, "usage: edgegate [-c FILE] [-t] [-T] [-f] [-v] [-h]\n"
               "  -c FILE   configuration file (default " DEFAULT_CONF ")\n"
               "  -t        test the configuration and exit\n"
               "  -T        test the configuration, print it with every default filled in\n"
               "  -f        stay in the foreground, log to stderr\n"
               "  -v        print the version and exit\n"
               "  -h        print this help and exit\n");
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

/* -t: the configuration, certificates, log and pid files included. -T: the
 * same, and the effective configuration instead of "configuration ok". */
static int test_conf(const char *file, bool print)
{
    struct conf_errs errs = {0};
    struct conf *c = gw_load_checked(file, &errs);
    if (c && conf_check_files(c, &errs) != EG_OK) {
        conf_free(c);
        c = NULL;
    }
    fputs(errs.text ? errs.text : "", stderr);
    conf_errs_free(&errs);
    if (!c)
        return EXIT_CONF;
    if (print)
        conf_print(stdout, c);
    else
        printf("configuration ok\n");
    conf_free(c);
    return 0;
}

static int write_pid(const char *file)
{
    FILE *f = fopen(file, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
        fprintf(stderr, "edgegate: cannot write the pid file %s: %s\n", file, strerror(errno));
        return EG_ERR;
    }
    return EG_OK;
}

/* The log and the access log, before the process becomes a daemon: a
 * target that cannot be opened is said on the terminal. */
static int open_logs(const struct conf *c)
{
    struct log_target t[2];
    char err[EG_ERRLEN];
    conf_log_targets(c, &t[LOG_MAIN], &t[LOG_ACCESS]);
    for (int i = LOG_MAIN; i <= LOG_ACCESS; i++)
        if (log_open(i, &t[i], err, sizeof(err)) != EG_OK) {
            const struct conf_loc *at = i == LOG_MAIN ? &c->log_at : &c->access_log_at;
            fprintf(stderr, "%s:%d: \"%s\": %s\n", at->file, at->line,
                    i == LOG_MAIN ? "log" : "access_log", err);
            return EG_ERR;
        }
    return EG_OK;
}

int main(int argc, char **argv)
{
    const char *file = DEFAULT_CONF;
    bool test = false, print = false, foreground = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:tTfvh")) != -1) {
        switch (opt) {
        case 'c': file = optarg; break;
        case 't': test = true; break;
        case 'T': test = print = true; break;
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
    char err[EG_ERRLEN];
    if (tls_init(err, sizeof(err)) != EG_OK) {
        fprintf(stderr, "edgegate: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (test)
        return test_conf(file, print);
    /* A daemon runs in "/": a relative name would not find the file again
     * at the next reload. */
    char *abs_file = realpath(file, NULL);
    if (abs_file)
        file = abs_file;
    struct conf *c = load(file);
    if (!c)
        return EXIT_CONF;

    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    log_level = c->log_level;
    if (open_logs(c) != EG_OK) {
        conf_free(c);
        free(abs_file);
        return EXIT_RUNTIME;
    }
    if (!foreground && daemonize() != EG_OK) {
        fprintf(stderr, "edgegate: cannot become a daemon: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    if (notify_init(err, sizeof(err)) != EG_OK)
        log_warn("%s", err);
    char *pid_file = c->pid_file ? strdup(c->pid_file) : NULL;
    if (pid_file && write_pid(pid_file) != EG_OK)
        return EXIT_RUNTIME;
    int workers = c->workers ? c->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    int rc;
    /* Operator state and the health view outlive reloads and workers:
     * shared before any fork. */
    admin_shared_init(workers);
    view_shared_init(workers);
    if (workers > 1) {
        rc = master_run(c, file, workers);
    } else {
        stats_init(1);
        rc = gw_run(c, file, 1, -1);
    }
    if (pid_file)
        unlink(pid_file);
    free(pid_file);
    if (rc == 0)
        log_info("edgegate stopped");
    log_flush();
    free(abs_file);
    return rc;
}
