/* The master process of `workers N` (N > 1).
 *
 * It forks N workers, each a complete gateway binding its own SO_REUSEPORT
 * sockets and writing its own counter slot (the master keeps slot 0).
 * Worker 0 also runs the health checks and resolves server names for the
 * machine: the others follow its view (healthcheck/view.h). It
 * stays root, serves no traffic and runs no event loop: it blocks its
 * signals and takes them one by one with sigtimedwait().
 *
 *   SIGHUP           validate the configuration; if valid, tell every worker
 *                    to reload (each reloads in place, keeping its sockets)
 *   SIGTERM, SIGINT  tell every worker to drain, wait for them, exit 0
 *   SIGUSR1          reopen the log, and tell the workers
 *   SIGCHLD          a worker died: fold its counters into the retired
 *                    totals and start another (not faster than once a
 *                    second when it dies at once, to avoid a crash loop)
 *
 * At start, each worker reports through a pipe once its sockets are open; a
 * worker that exits first fails the whole start with its exit code. */
#include "gateway/process/master.h"
#include "base/util.h"
#include <stdio.h>
#include "base/alloc.h"
#include "conf/conf.h"
#include "gateway/process/gateway.h"
#include "base/log.h"
#include "base/notify.h"
#include "base/counters.h"
#include "healthcheck/view.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT 30.0
#define QUICK_DEATH 1.0

struct worker {
    pid_t pid;
    double started;
    double restart_at;          /* > 0: start again at this time */
};

static struct worker *workers;
static int nworkers;
static struct conf *cur;
static const char *conf_file;
static sigset_t sigs, oldsigs;
static pid_t master_pid;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* In the child: becomes worker I and never returns. */
static void worker_main(int i, int ready_fd)
{
    sigprocmask(SIG_SETMASK, &oldsigs, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid)
        _exit(0); /* the master died before we asked to follow it */
    stats_use_slot(i + 1);
    view_set_checker(i == 0);
    _exit(gw_run(cur, conf_file, nworkers, ready_fd));
}

static int spawn(int i, int ready_fd)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_err("cannot start worker %d: %s", i, strerror(errno));
        return EG_ERR;
    }
    if (pid == 0)
        worker_main(i, ready_fd);
    workers[i] = (struct worker){.pid = pid, .started = now()};
    return EG_OK;
}

static int find(pid_t pid)
{
    for (int i = 0; i < nworkers; i++)
        if (workers[i].pid == pid)
            return i;
    return -1;
}

static void signal_all(int sig)
{
    for (int i = 0; i < nworkers; i++)
        if (workers[i].pid > 0)
            kill(workers[i].pid, sig);
}

static int alive(void)
{
    int n = 0;
    for (int i = 0; i < nworkers; i++)
        n += workers[i].pid > 0;
    return n;
}

static const char *how(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    return buf;
}

/* Starts all workers and waits until each has opened its sockets. Returns
 * 0, or the exit code of the first worker that could not start. */
static int start_all(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        log_err("cannot create a pipe: %s", strerror(errno));
        return 2;
    }
    for (int i = 0; i < nworkers; i++)
        if (spawn(i, fds[1]) != EG_OK)
            return 2;
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    int ready = 0, rc = 0;
    double deadline = now() + START_TIMEOUT;
    while (ready < nworkers && rc == 0 && now() < deadline) {
        char b[64];
        ssize_t n = read(fds[0], b, sizeof(b));
        if (n > 0)
            ready += (int)n;
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0 && find(pid) >= 0) {
            workers[find(pid)].pid = 0;
            rc = WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 2;
        }
        if (n <= 0 && pid <= 0)
            usleep(10000);
    }
    close(fds[0]);
    if (rc == 0 && ready < nworkers)
        rc = 2;
    return rc;
}

static void reap(bool stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = find(pid);
        if (i < 0)
            continue;
        workers[i].pid = 0;
        if (stopping)
            continue;
        char why[64];
        log_warn("worker %d (pid %d) %s; starting another", i, (int)pid,
                 how(status, why, sizeof(why)));
        stats_retire_slot(i + 1);
        counters->worker_restarts_total++;
        double t = now();
        workers[i].restart_at = t - workers[i].started < QUICK_DEATH ? t + QUICK_DEATH : t;
    }
}

static void restart_due(void)
{
    double t = now();
    for (int i = 0; i < nworkers; i++)
        if (workers[i].pid == 0 && workers[i].restart_at > 0 && workers[i].restart_at <= t) {
            workers[i].restart_at = 0;
            spawn(i, -1);
        }
}

static void reload(void)
{
    struct conf_errs errs = {0};
    log_info("reloading %s", conf_file);
    struct conf *c = gw_load_checked(conf_file, &errs);
    if (!c) {
        gw_reload_failed(&errs, "the workers keep the previous configuration");
        return;
    }
    struct gw_logs logs;
    if (gw_logs_prepare(c, &logs, &errs) != EG_OK) {
        conf_free(c);
        gw_reload_failed(&errs, "the workers keep the previous configuration");
        return;
    }
    gw_logs_apply(&logs);
    log_level = c->log_level;
    int n = c->workers ? c->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n != nworkers)
        log_warn("workers %d: takes effect at the next restart (running %d)", n, nworkers);
    conf_free(cur);
    cur = c;
    counters->reloads_total++;
    signal_all(SIGHUP);
}

/* Waits for the workers to drain, at most drain_timeout and a little more;
 * then they are killed. */
static void stop(int sig)
{
    log_info("stopping: telling %d workers to drain", alive());
    notify_stopping(cur->drain_timeout);
    signal_all(sig);
    double deadline = now() + cur->drain_timeout + 5;
    while (alive() > 0 && now() < deadline) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        sigtimedwait(&sigs, NULL, &ts);
        reap(true);
    }
    if (alive() > 0) {
        log_warn("workers still running after the drain timeout: killing them");
        signal_all(SIGKILL);
        while (alive() > 0 && waitpid(-1, NULL, 0) > 0)
            reap(true);
    }
}

int master_run(struct conf *c, const char *file, int n)
{
    cur = c;
    conf_file = file;
    nworkers = n;
    master_pid = getpid();
    workers = eg_calloc((size_t)n, sizeof(*workers));
    stats_init(n + 1);
    sigemptyset(&sigs);
    const int handled[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGCHLD};
    for (size_t i = 0; i < ARRAY_LEN(handled); i++)
        sigaddset(&sigs, handled[i]);
    sigprocmask(SIG_BLOCK, &sigs, &oldsigs);
    int rc = start_all();
    if (rc != 0) {
        log_err("a worker could not start: stopping");
        signal_all(SIGTERM);
        while (alive() > 0 && waitpid(-1, NULL, 0) > 0)
            reap(true);
        return rc;
    }
    log_info("edgegate %s master started %d workers", EG_VERSION, n);
    notify_ready();
    for (;;) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        switch (sig) {
        case SIGCHLD:
            reap(false);
            break;
        case SIGHUP:
            notify_reloading();
            reload();
            notify_ready();
            break;
        case SIGUSR1:
            if (log_reopen() != EG_OK)
                log_err("cannot reopen a log file: %s", strerror(errno));
            signal_all(SIGUSR1);
            break;
        case SIGTERM:
        case SIGINT:
            stop(sig);
            return 0;
        }
        restart_due();
    }
}
