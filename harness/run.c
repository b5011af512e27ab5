/* run.c -- the `run` and `validate` commands: each scenario through the pipeline of run.h.
 *
 * Servers: without --redis, every variant and repeat gets fresh managed servers (the lock
 * servers, each with redis.replicas replicas (replicas.h) and, with redis.sentinels, the
 * sentinels that watch them and through which the clients find the primaries (sentinels.h),
 * plus one for the protected counter, which no event touches). With --redis, the
 * scenario's lock servers are the first URLs given and the counter lives on --resource or the
 * first URL; nothing is flushed, every key carries lockbench:<run-id>:<variant>:<repeat>: and
 * those keys are deleted when the variant's repeat ends. */
#include <dirent.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"
#include "health.h"
#include "metrics.h"
#include "monotonic.h"
#include "plot.h"
#include "proxy.h"
#include "ranks.h"
#include "replicas.h"
#include "sim/sim.h"
#include "report.h"
#include "results.h"
#include "run.h"
#include "runner.h"
#include "sentinels.h"
#include "servers.h"

/* ---- Ctrl-C, SIGTERM, SIGHUP ------------------------------------------------------ */

/* A supervisor's SIGTERM and a closed terminal's SIGHUP mean what Ctrl-C means: stop, delete
 * our keys, write what ran. Dying of them instead would leave keys in a server we do not own. */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSTOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])
static struct sigaction previous_stop[NSTOP_SIGNALS];
static volatile sig_atomic_t stopped_by;   /* the first stop signal that came, or 0 */

/* The first stop signal ends the run cleanly (results marked incomplete); any after it goes to
 * the handlers that were there before: the managed servers' (which kills them and lets the
 * signal through) or the default action. */
static void on_stop_signal(int sig)
{
    if (!stopped_by)
        stopped_by = sig;
    lb_runner_stop();
    for (size_t i = 0; i < NSTOP_SIGNALS; i++)
        sigaction(stop_signals[i], &previous_stop[i], NULL);
}

/* Installed once, after the managed servers' own handlers (which it then chains to on a second
 * signal); a signal the caller ignores (nohup) stays ignored. */
static void catch_interrupt(void)
{
    static bool installed;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    if (installed)
        return;
    installed = true;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSTOP_SIGNALS; i++) {
        sigaction(stop_signals[i], NULL, &previous_stop[i]);
        if (previous_stop[i].sa_handler != SIG_IGN)
            sigaction(stop_signals[i], &sa, &previous_stop[i]);
    }
}

/* An interrupted run exits 128 + the signal's number, as a shell reports a command the signal
 * killed: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP. */
static int interrupted_exit(void)
{
    return stopped_by ? 128 + stopped_by : LB_EXIT_INTERRUPTED;
}

/* ---- servers ------------------------------------------------------------------ */

typedef struct servers {
    lb_group *lock[LB_SCENARIO_MAX_SERVERS];   /* each with its replicas (redis.replicas) */
    lb_sentinels *sentinels;                   /* watching them (redis.sentinels), or NULL */
    lb_server *resource;
    const char *urls[LB_SCENARIO_MAX_SERVERS];         /* each server's own address (front link) */
    const char *client_urls[LB_SCENARIO_MAX_SERVERS];  /* what clients are given: the same, or
                                                          the sentinels' sentinel:// URL */
    const char *resource_url;
    int n;
    char shared[LB_SCENARIO_MAX_SERVERS + 1][LB_SERVER_URL_MAX];  /* rank 0's, on the others */
} servers;

/* The sentinels first: watching nodes that go down one by one, they would start failovers. */
static void servers_stop(servers *s)
{
    lb_sentinels_stop(s->sentinels);
    for (int i = 0; i < s->n; i++)
        lb_group_stop(s->lock[i]);
    lb_server_stop(s->resource);
    memset(s, 0, sizeof *s);
}

/* lockbench-mpi: rank 0 started the managed servers (or failed to); every rank learns their
 * URLs, password included, in one broadcast, or that they did not start. */
static int servers_share(servers *s, int rc, char *err, size_t errlen)
{
    lb_ranks *d = lb_ranks_get();
    struct { int32_t rc; char urls[LB_SCENARIO_MAX_SERVERS + 1][LB_SERVER_URL_MAX]; } *m;
    if (!d)
        return rc;
    if (!(m = calloc(1, sizeof *m))) {
        snprintf(err, errlen, "out of memory");
        rc = -1;  /* the broadcast must still happen: a zeroed one on the stack says so */
    }
    typeof(*m) failed = {.rc = -1};
    typeof(*m) *msg = m ? m : &failed;
    if (m && d->rank == 0) {
        m->rc = rc;
        for (int i = 0; rc == 0 && i < s->n; i++)
            snprintf(m->urls[i], sizeof m->urls[i], "%s", s->urls[i]);
        if (rc == 0)
            snprintf(m->urls[s->n], sizeof m->urls[s->n], "%s", s->resource_url);
    }
    if (d->bcast(d, msg, sizeof *msg) < 0)
        msg->rc = -1;
    if (d->rank != 0 && msg->rc == 0) {
        for (int i = 0; i <= s->n; i++)
            memcpy(s->shared[i], msg->urls[i], sizeof s->shared[i]);
        for (int i = 0; i < s->n; i++)  /* no sentinels under MPI: clients get the same */
            s->urls[i] = s->client_urls[i] = s->shared[i];
        s->resource_url = s->shared[s->n];
    } else if (d->rank != 0) {
        err[0] = '\0';  /* rank 0 says why */
    }
    rc = msg->rc;
    free(m);
    return rc;
}

static int servers_start(servers *s, const lb_scenario *v, const lb_run_options *o, char *err,
                         size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->n = v->redis.servers;
    if (o->nredis == 0 && !lb_ranks_leader())
        return servers_share(s, 0, err, errlen);
    if (o->nredis > 0) {
        for (int i = 0; i < s->n; i++)
            s->urls[i] = s->client_urls[i] = o->redis[i];
        s->resource_url = o->resource ? o->resource : o->redis[0];
        return 0;
    }
    for (int i = 0; i < s->n; i++) {
        char why[400];
        s->lock[i] = lb_group_start(v->redis.persistence, v->redis.replicas, why, sizeof why);
        if (!s->lock[i]) {
            snprintf(err, errlen, "server %d: %s", i, why);
            s->n = i;
            servers_stop(s);
            return servers_share(s, -1, err, errlen);
        }
        s->urls[i] = s->client_urls[i] = lb_group_url(s->lock[i]);
    }
    /* The groups are in sync; the sentinels' start waits until each of them knows every
     * primary, its replicas and the other sentinels. The health check and the calibration
     * keep the front links: only the clients find their server through the sentinels. */
    char why[400];
    if (lb_sentinels_for_groups((int)v->redis.sentinels, s->lock, s->n, s->client_urls,
                                &s->sentinels, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s", why);
        servers_stop(s);
        return -1;
    }
    if (o->resource) {
        s->resource_url = o->resource;
    } else if ((s->resource = lb_server_start(LB_PERSIST_NONE, err, errlen))) {
        s->resource_url = lb_server_url(s->resource);
    } else {
        servers_stop(s);
        return servers_share(s, -1, err, errlen);
    }
    catch_interrupt();  /* after the servers module installed its own handler */
    return servers_share(s, 0, err, errlen);
}

/* ---- plain hiredis helpers: calibration and clean-up ------------------------------ */

static redisContext *connect_url(const char *url)
{
    char err[200];
    return lb_endpoint_connect(url, 2000, err, sizeof err);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool is_pong(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
}

/* What came instead of PONG, for the message. */
static const char *not_pong(const redisContext *c, const redisReply *r)
{
    return !r ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "not PONG";
}

/* The machine's pace: the median PING round trip, and pipelined PINGs per second, on server 0
 * (the servers' check has just seen it answer). Every answer must be PONG: figures timed on
 * errors or timeouts would describe nothing. 0, or -1 with err naming the server and why. */
static int calibrate(const char *url, const char *name, lb_calibration *cal, char *err,
                     size_t errlen)
{
    enum { PINGS = 101, BURSTS = 20, BURST = 1000 };
    double rtt[PINGS];
    char why[200] = "";
    redisContext *c = lb_endpoint_connect(url, 2000, why, sizeof why);
    memset(cal, 0, sizeof *cal);
    for (int i = 0; c && i < PINGS && !why[0]; i++) {
        int64_t t = dlock__mono_us();
        redisReply *r = redisCommand(c, "PING");
        rtt[i] = (double)(dlock__mono_us() - t);
        if (!is_pong(r))
            snprintf(why, sizeof why, "PING: %s", not_pong(c, r));
        freeReplyObject(r);
    }
    int64_t t = dlock__mono_us();
    for (int b = 0; c && b < BURSTS && !why[0]; b++) {
        for (int i = 0; i < BURST; i++)
            redisAppendCommand(c, "PING");
        for (int i = 0; i < BURST && !why[0]; i++) {
            void *r = NULL;
            if (redisGetReply(c, &r) != REDIS_OK || !is_pong(r))
                snprintf(why, sizeof why, "pipelined PING: %s", not_pong(c, r));
            freeReplyObject(r);
        }
    }
    int64_t took = dlock__mono_us() - t;
    if (c)
        redisFree(c);
    if (why[0]) {
        snprintf(err, errlen, "%s: calibration failed: %s", name, why);
        return -1;
    }
    qsort(rtt, PINGS, sizeof *rtt, cmp_double);
    cal->ping_rtt_us = rtt[PINGS / 2];
    cal->raw_ops_per_s = took > 0 ? BURSTS * BURST * 1e6 / (double)took : 0;
    return 0;
}

/* Deletes every key under prefix: bounded by the keyspace, SCAN ends at cursor 0. */
static void delete_prefix(const char *url, const char *prefix)
{
    redisContext *c = connect_url(url);
    char cursor[32] = "0";
    for (int rounds = 0; c && rounds < 100000; rounds++) {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements > 0) {  /* one UNLINK per page of keys */
            const char **argv = calloc(keys->elements + 1, sizeof *argv);
            for (size_t i = 0; argv && i < keys->elements; i++)
                argv[i + 1] = keys->element[i]->str;
            if (argv) {
                argv[0] = "UNLINK";
                freeReplyObject(redisCommandArgv(c, (int)keys->elements + 1, argv, NULL));
            }
            free(argv);
        }
        freeReplyObject(r);
        if (strcmp(cursor, "0") == 0)
            break;
    }
    if (c)
        redisFree(c);
}

/* ---- folders ------------------------------------------------------------------ */

/* A folder the user names with --out is checked, and created or cleared, before any server
 * starts: a bad one is bad input (exit 2) and costs no run. The default folder is made when its
 * scenario starts: failing there is the environment's doing (exit 3). Either way the message is
 * one line with the path and the reason. */

/* Where a scenario's results go under --out: DIR, or DIR/<name> with several scenarios. */
static char *given_out(const lb_scenario *s, const lb_run_options *o, size_t nfiles)
{
    char *dir;
    if (nfiles == 1)
        return strdup(o->out);
    return asprintf(&dir, "%s/%s", o->out, s->name) < 0 ? NULL : dir;
}

/* 1 when dir holds nothing, 0 when it holds something, -1 with errno when it cannot be read. */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(d));)
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

/* An existing --out folder: a folder, ours to write in, and empty unless --force. A missing one
 * is made later (prepare_out). */
static int check_out(const char *dir, bool force)
{
    struct stat st;
    int empty = -1;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            return LB_EXIT_OK;
    } else if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
    } else if ((empty = dir_empty(dir)) >= 0 && access(dir, W_OK | X_OK) != 0) {
        empty = -1;
    }
    if (empty < 0) {
        fprintf(stderr, "lockbench: cannot use the results folder %s: %s\n", dir, strerror(errno));
        return LB_EXIT_USAGE;
    }
    if (!empty && !force) {
        fprintf(stderr, "lockbench: the results folder %s is not empty; use --force to replace "
                        "the results in it (other files are kept)\n", dir);
        return LB_EXIT_USAGE;
    }
    return LB_EXIT_OK;
}

/* Creates the folder, or with --force clears an earlier run's files out of it. */
static int prepare_out(const char *dir, bool force)
{
    char err[600];
    if (lb_mkdirs(dir) != 0) {
        fprintf(stderr, "lockbench: cannot create the results folder %s: %s\n", dir,
                strerror(errno));
        return LB_EXIT_USAGE;
    }
    if (force && lb_results_clear(dir, err, sizeof err) != 0) {
        fprintf(stderr, "lockbench: --force: cannot clear %s\n", err);
        return LB_EXIT_USAGE;
    }
    return LB_EXIT_OK;
}

/* Every --out folder checked first, then made or cleared: nothing changes on disk unless all
 * of them can be used. */
static int prepare_given_outs(lb_scenario *const *s, size_t nfiles, const lb_run_options *o)
{
    int rc = LB_EXIT_OK;
    for (int pass = 0; pass < 2 && rc == LB_EXIT_OK; pass++) {
        for (size_t i = 0; i < nfiles && rc == LB_EXIT_OK; i++) {
            char *dir = given_out(s[i], o, nfiles);
            if (!dir)
                return LB_EXIT_ENV;
            rc = pass == 0 ? check_out(dir, o->force) : prepare_out(dir, o->force);
            free(dir);
        }
    }
    return rc;
}

/* results/<name>/<stamp>, made here (malloc'd). A run that started in the same second has
 * <stamp>, so this one takes <stamp>-2 (-3, ...) rather than mixing its files with that run's.
 * NULL with errno set when it cannot be made; path then names the folder that failed. */
static char *default_out(const char *name, const char *stamp, char *path, size_t len)
{
    snprintf(path, len, "results/%s", name);
    if (lb_mkdirs(path) != 0)
        return NULL;
    for (int k = 1; k <= 100; k++) {
        if (k == 1)
            snprintf(path, len, "results/%s/%s", name, stamp);
        else
            snprintf(path, len, "results/%s/%s-%d", name, stamp, k);
        if (mkdir(path, 0777) == 0)
            return strdup(path);
        if (errno != EEXIST)
            return NULL;
    }
    return NULL;
}

/* results/<name>/latest -> leaf, replaced in one rename so a reader never finds it missing.
 * Only a finished run moves it: an interrupted or killed one leaves it on the last that did. */
static void point_latest(const char *name, const char *leaf)
{
    char *link, *tmp;
    if (asprintf(&link, "results/%s/latest", name) < 0)
        return;
    if (asprintf(&tmp, "%s.tmp%d", link, (int)getpid()) >= 0) {
        unlink(tmp);
        if (symlink(leaf, tmp) != 0 || rename(tmp, link) != 0) {
            fprintf(stderr, "lockbench: cannot point %s to %s: %s\n", link, leaf,
                    strerror(errno));
            unlink(tmp);
        }
        free(tmp);
    }
    free(link);
}

/* ---- one scenario -------------------------------------------------------------- */

typedef struct scenario_run {
    const lb_scenario *s;
    const lb_run_options *o;
    char *dir;
    const char *run_id;
    size_t nv;
    int repeats;
    lb_summary *runs;       /* nv x repeats, variant-major */
    int *ran;               /* per variant: repeats completed (runs[vi * repeats + 0 .. ran-1]) */
    lb_summary *combined;   /* the variants that ran, in order */
    size_t ncombined;
    lb_calibration cal;
    bool calibrated;
    bool complete;
    char err[512];
    bool err_elsewhere;     /* lockbench-mpi: another rank failed and printed why */
} scenario_run;

/* lockbench-mpi: every rank's verdict on a step (0 or -1), the worst wins: a step that failed on
 * any rank fails on all, so they stay in step. A rank that did not fail itself says nothing
 * unless it is rank 0. In one process, rc. */
static int ranks_agree(scenario_run *sr, int rc)
{
    lb_ranks *d = lb_ranks_get();
    if (!d)
        return rc;
    int all = d->agree(d, rc < 0 ? 1 : 0);
    if (all && rc == 0) {
        snprintf(sr->err, sizeof sr->err, "stopped: another rank failed (its message says why)");
        sr->err_elsewhere = d->rank != 0;
    }
    return all ? -1 : 0;
}

/* Whether any rank says yes (in one process: whether this one does). */
static bool ranks_any(bool yes)
{
    lb_ranks *d = lb_ranks_get();
    return d ? d->agree(d, yes) != 0 : yes;
}

static char *run_folder(const scenario_run *sr, const char *variant, int rep)
{
    char *dir;
    int rc = sr->repeats > 1 ? asprintf(&dir, "%s/%s/repeat-%d", sr->dir, variant, rep + 1)
                             : asprintf(&dir, "%s/%s", sr->dir, variant);
    return rc < 0 ? NULL : dir;
}

/* Every server of the run answers before any client starts (a server that never does would
 * leave them waiting for ever), then the first run measures the machine's pace. The watch that
 * goes on while the clients run is handed back in *health. */
static int check_servers(scenario_run *sr, const lb_scenario *v, const servers *sv,
                         lb_health **health)
{
    *health = lb_health_new(v, sv->urls, sv->n, sv->resource_url);
    if (!*health) {
        snprintf(sr->err, sizeof sr->err, "out of memory");
        return -1;
    }
    if (lb_health_check(*health, sr->err, sizeof sr->err) < 0)
        return -1;
    char name[160];
    lb_health_name(*health, 0, name, sizeof name);
    if (!sr->calibrated && lb_ranks_leader() &&
        calibrate(sv->urls[0], name, &sr->cal, sr->err, sizeof sr->err) < 0)
        return -1;
    sr->calibrated = true;
    return 0;
}

/* One variant, one repeat: servers up, clients run, figures measured and written. */
/* A run that would run out of descriptors part-way fails at once instead, saying how many it
 * needs and how to get them (main raised the soft limit to the hard one already). */
static bool enough_fds(const lb_scenario *v, const char *vname, int nservers, char *err,
                       size_t errlen)
{
    struct rlimit rl;
    int64_t need = lb_runner_fds_needed(v, nservers);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        (int64_t)rl.rlim_cur >= need)
        return true;
    snprintf(err, errlen, "%s: the run needs about %lld file descriptors and may open %lld; "
             "raise the hard limit to at least %lld (ulimit -Hn %lld as root, or LimitNOFILE=%lld "
             "for a service) or run fewer clients", vname, (long long)need,
             (long long)rl.rlim_cur, (long long)need, (long long)need, (long long)need);
    return false;
}

/* A run's raw record → its summary (with expectations) → its files; frees the record. */
static int measure_and_write(scenario_run *sr, size_t vi, int rep, lb_run_result *run)
{
    const lb_scenario *v = lb_scenario_variant(sr->s, vi);
    const char *vname = lb_scenario_variant_name(sr->s, vi);
    lb_summary *sum = &sr->runs[vi * (size_t)sr->repeats + (size_t)rep];
    if (!lb_ranks_leader()) {  /* rank 0 has this rank's record in its own, and writes it */
        sr->ran[vi]++;
        lb_run_result_free(run);
        return LB_EXIT_OK;
    }
    char *dir = run_folder(sr, vname, rep);
    int rc = lb_metrics_compute(v, run, sum) < 0 || !dir ? -1 : 0;
    if (rc == 0) {
        lb_metrics_check(v, sum);
        rc = lb_results_write_run(dir, sum, run, sr->err, sizeof sr->err);
    }
    sr->complete &= run->complete;
    sr->ran[vi] += rc == 0;
    lb_run_result_free(run);
    free(dir);
    return rc < 0 ? LB_EXIT_ENV : LB_EXIT_OK;
}

/* A variant on the simulator: no servers, no proxy, no clean-up; the same results. */
static int run_simulated(scenario_run *sr, size_t vi, int rep)
{
    const lb_scenario *v = lb_scenario_variant(sr->s, vi);
    const char *vname = lb_scenario_variant_name(sr->s, vi);
    lb_run_result run;
    lb_sim_stats st;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "lockbench:%s:%s:%d:", sr->run_id, vname, rep + 1);
    lb_run_target t = {.prefix = prefix, .nservers = v->redis.servers,
                       .progress = !sr->o->quiet && isatty(STDERR_FILENO), .label = vname};
    if (!sr->o->quiet)
        fprintf(stderr, "%s / %s (simulated)\n", sr->s->name, vname);
    if (lb_sim_run(v, &t, &run, &st, sr->err, sizeof sr->err) < 0)
        return LB_EXIT_ENV;
    run.sim.virtual_us = st.virtual_us;
    run.sim.wall_us = st.wall_us;
    run.sim.events = st.events;
    return measure_and_write(sr, vi, rep, &run);
}

static int run_once(scenario_run *sr, size_t vi, int rep)
{
    const lb_scenario *v = lb_scenario_variant(sr->s, vi);
    const char *vname = lb_scenario_variant_name(sr->s, vi);
    if (lb_scenario_driver(v) == LB_DRIVER_SIM)
        return run_simulated(sr, vi, rep);
    servers sv;
    lb_run_result run;
    char prefix[256];
    lb_health *health = NULL;
    if (servers_start(&sv, v, sr->o, sr->err, sizeof sr->err) < 0)
        return LB_EXIT_ENV;
    if (!enough_fds(v, vname, sv.n, sr->err, sizeof sr->err) ||
        check_servers(sr, v, &sv, &health) < 0) {
        ranks_agree(sr, -1);
        lb_health_free(health);
        servers_stop(&sv);
        return LB_EXIT_ENV;
    }
    lb_proxy *proxy = NULL;
    if (lb_runner_needs_proxy(v) && !(proxy = lb_proxy_start(v->seed, sr->err, sizeof sr->err))) {
        ranks_agree(sr, -1);
        lb_health_free(health);
        servers_stop(&sv);
        return LB_EXIT_ENV;
    }
    if (ranks_agree(sr, 0) < 0) {  /* another rank could not reach the servers */
        lb_proxy_stop(proxy);
        lb_health_free(health);
        servers_stop(&sv);
        return LB_EXIT_ENV;
    }
    snprintf(prefix, sizeof prefix, "lockbench:%s:%s:%d:", sr->run_id, vname, rep + 1);
    lb_run_target t = {
        .lock_urls = sv.client_urls, .nservers = sv.n, .resource_url = sv.resource_url,
        .prefix = prefix, .groups = sv.lock[0] ? sv.lock : NULL, .sentinels = sv.sentinels,
        .proxy = proxy,
        .health = health, .progress = !sr->o->quiet && isatty(STDERR_FILENO), .label = vname,
    };
    if (!sr->o->quiet && lb_ranks_leader())
        fprintf(stderr, "%s / %s\n", sr->s->name, vname);
    int rc = lb_runner_run(v, &t, &run, sr->err, sizeof sr->err);
    lb_proxy_stop(proxy);
    /* under MPI every rank has finished; a server found dead would only cost its timeouts */
    if (sr->o->nredis > 0 && lb_ranks_leader()) {
        for (int i = 0; i < sv.n; i++)
            if (!lb_health_dead(health, i))
                delete_prefix(sv.urls[i], prefix);
        if ((sr->o->resource || sv.n == 0) && !lb_health_dead(health, sv.n))
            delete_prefix(sv.resource_url, prefix);
    }
    lb_health_free(health);
    servers_stop(&sv);
    if (rc < 0)
        return LB_EXIT_ENV;
    return measure_and_write(sr, vi, rep, &run);
}

/* Combines each variant's completed repeats; a variant that never ran (the run was interrupted
 * first) is left out rather than written empty. */
static int combine_and_write(scenario_run *sr, const char *started_at)
{
    for (size_t vi = 0; vi < sr->nv; vi++) {
        if (sr->ran[vi] == 0)
            continue;
        lb_summary *reps = &sr->runs[vi * (size_t)sr->repeats];
        lb_summary *out = &sr->combined[sr->ncombined];
        if (lb_metrics_combine(reps, (size_t)sr->ran[vi], out) < 0)
            return -1;
        if (sr->ran[vi] < sr->repeats)
            lb_metrics_incomplete(out);
        sr->ncombined++;
        if (sr->repeats > 1) {
            char *dir;
            if (asprintf(&dir, "%s/%s", sr->dir, lb_scenario_variant_name(sr->s, vi)) < 0)
                return -1;
            int rc = lb_results_write_summary(dir, out, sr->err, sizeof sr->err);
            free(dir);
            if (rc < 0)
                return -1;
        }
    }
    return lb_results_write_top(sr->dir, sr->s, sr->combined, sr->ncombined, &sr->cal,
                                started_at, sr->complete, sr->err, sizeof sr->err);
}

static void report(const scenario_run *sr)
{
    for (size_t vi = 0; vi < sr->ncombined && !sr->o->silent; vi++)
        lb_results_print_failures(stderr, &sr->combined[vi]);
    if (sr->o->quiet)
        return;
    if (sr->ncombined == 1)
        lb_results_print_variant(stdout, &sr->combined[0]);
    else if (sr->ncombined > 1)
        lb_results_print_comparison(stdout, sr->combined, sr->ncombined);
    if (!sr->complete)
        printf("interrupted: the results hold what ran, marked \"complete\": false\n");
    printf("results: %s\n", sr->dir);
}

static void plot(const scenario_run *sr)
{
    char msg[512];
    const char **names = calloc(sr->ncombined + 1, sizeof *names);
    size_t n = 0;
    if (sr->o->no_plot || !names) {
        free(names);
        return;
    }
    for (size_t i = 0; i < sr->ncombined; i++)
        names[n++] = sr->combined[i].name;
    int rc = lb_plot_results(sr->dir, sr->s->name, names, n, sr->repeats > 1 ? sr->repeats : 0,
                             sr->o->plot_format, msg, sizeof msg);
    if (rc != 0 || !sr->o->quiet)
        fprintf(stderr, "%s\n", msg);
    free(names);
}

static void iso_now(char *buf, size_t len, char *stamp, size_t stamplen)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%S%z", &tm);
    strftime(stamp, stamplen, "%Y%m%d-%H%M%S", &tm);
}

static bool all_passed(const scenario_run *sr)
{
    for (size_t vi = 0; vi < sr->ncombined; vi++)
        if (!sr->combined[vi].expect.passed)
            return false;
    return sr->complete;
}

/* The scenario's folder, made (the default one) and holding a summary.json that says the run
 * has begun and not finished. Prints its own message on failure. */
static int begin(scenario_run *sr, const char *started, const char *stamp, size_t nfiles)
{
    char path[PATH_MAX];
    if (!sr->runs || !sr->ran || !sr->combined) {
        fprintf(stderr, "lockbench: %s: out of memory\n", sr->s->name);
        return LB_EXIT_ENV;
    }
    sr->dir = sr->o->out ? given_out(sr->s, sr->o, nfiles)
                         : default_out(sr->s->name, stamp, path, sizeof path);
    if (!sr->dir) {
        if (sr->o->out)
            fprintf(stderr, "lockbench: %s: out of memory\n", sr->s->name);
        else
            fprintf(stderr, "lockbench: cannot create the results folder %s: %s\n", path,
                    strerror(errno));
        return LB_EXIT_ENV;
    }
    if (lb_results_write_begun(sr->dir, sr->s, started, sr->err, sizeof sr->err) != 0) {
        fprintf(stderr, "lockbench: %s\n", sr->err);
        return LB_EXIT_ENV;
    }
    return LB_EXIT_OK;
}

/* Every variant and repeat, then the scenario's files, the terminal report and the plots. */
static int run_all(scenario_run *sr, const char *started)
{
    int rc = LB_EXIT_OK;
    /* Interleaved: A B A B ..., so drift over time hits every variant alike. */
    for (int rep = 0; rc == LB_EXIT_OK && rep < sr->repeats && sr->complete; rep++) {
        for (size_t vi = 0; rc == LB_EXIT_OK && vi < sr->nv && sr->complete; vi++) {
            rc = run_once(sr, vi, rep);
            if (ranks_agree(sr, rc == LB_EXIT_OK ? 0 : -1) < 0)  /* rank 0's writing too */
                rc = LB_EXIT_ENV;
            sr->complete &= !ranks_any(lb_runner_stopped());
        }
    }
    if (!lb_ranks_leader()) {  /* rank 0 writes, reports and plots */
        if (rc != LB_EXIT_OK && !sr->err_elsewhere && sr->err[0])
            fprintf(stderr, "lockbench: rank %d: %s: %s\n", lb_ranks_get()->rank, sr->s->name,
                    sr->err);
        return rc != LB_EXIT_OK ? rc : !sr->complete ? interrupted_exit() : LB_EXIT_OK;
    }
    /* A later variant's servers failing to start does not lose what already ran: it is written,
     * marked incomplete, and the run still exits 3. */
    bool failed_late = rc == LB_EXIT_ENV && sr->ran[0] > 0;
    if (failed_late) {
        if (!sr->err_elsewhere)
            fprintf(stderr, "lockbench: %s: %s\n", sr->s->name, sr->err);
        sr->complete = false;
        if (combine_and_write(sr, started) < 0)
            fprintf(stderr, "lockbench: %s: %s\n", sr->s->name, sr->err);
    }
    if (rc == LB_EXIT_OK && combine_and_write(sr, started) < 0)
        rc = LB_EXIT_ENV;
    if (rc == LB_EXIT_OK && lb_report_write(sr->dir, sr->s, sr->combined, sr->ncombined,
                                            sr->repeats, sr->o->plot_format, sr->err,
                                            sizeof sr->err) < 0)
        rc = LB_EXIT_ENV;
    if (rc != LB_EXIT_OK) {
        if (!failed_late)
            fprintf(stderr, "lockbench: %s: %s\n", sr->s->name, sr->err);
        return rc;
    }
    report(sr);
    plot(sr);
    if (!sr->complete)
        return interrupted_exit();
    if (!sr->o->out)
        point_latest(sr->s->name, strrchr(sr->dir, '/') + 1);
    return all_passed(sr) ? LB_EXIT_OK : LB_EXIT_FAILED;
}

static int run_scenario(const lb_scenario *s, const lb_run_options *o, size_t nfiles,
                        const char *run_id)
{
    char started[64], stamp[32];
    iso_now(started, sizeof started, stamp, sizeof stamp);
    scenario_run sr = {.s = s, .o = o, .run_id = run_id, .repeats = o->repeat, .complete = true};
    sr.nv = lb_scenario_variant_count(s);
    sr.runs = calloc(sr.nv * (size_t)sr.repeats, sizeof *sr.runs);
    sr.ran = calloc(sr.nv, sizeof *sr.ran);
    sr.combined = calloc(sr.nv, sizeof *sr.combined);
    int rc = lb_ranks_leader() ? begin(&sr, started, stamp, nfiles) : LB_EXIT_OK;
    if (ranks_any(rc != LB_EXIT_OK) && rc == LB_EXIT_OK)  /* rank 0 said why */
        rc = LB_EXIT_ENV;
    if (rc == LB_EXIT_OK)
        rc = run_all(&sr, started);
    for (size_t i = 0; sr.runs && i < sr.nv * (size_t)o->repeat; i++)
        lb_summary_free(&sr.runs[i]);
    for (size_t i = 0; sr.combined && i < sr.ncombined; i++)
        lb_summary_free(&sr.combined[i]);
    free(sr.runs);
    free(sr.ran);
    free(sr.combined);
    free(sr.dir);
    return rc;
}

/* ---- commands ------------------------------------------------------------------ */

/* A scenario with network faults relays its clients through the proxy, which speaks TCP. */
static bool proxied_over_unix(const lb_scenario *s, const lb_run_options *o)
{
    char host[256];
    int port;
    for (size_t v = 0; v < lb_scenario_variant_count(s); v++) {
        const lb_scenario *var = lb_scenario_variant(s, v);
        if (!lb_runner_needs_proxy(var))
            continue;
        for (int i = 0; i < var->redis.servers; i++)
            if (lb_endpoint_hostport(o->redis[i], host, sizeof host, &port) < 0)
                return true;
    }
    return false;
}

/* A message every rank would print alike (a scenario's error): rank 0 prints it. */
static void lb_ranks_say(const char *fmt, ...)
{
    va_list ap;
    if (!lb_ranks_leader())
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* lockbench-mpi runs the real drivers over its ranks; the simulator is one process. Managed
 * replicas relay through rank 0's loopback and know no password: under MPI they need --redis. */
static bool ranks_can_run(const lb_scenario *s, const lb_run_options *o, const char *file)
{
    for (size_t v = 0; v < lb_scenario_variant_count(s); v++) {
        const lb_scenario *var = lb_scenario_variant(s, v);
        if (lb_scenario_driver(var) == LB_DRIVER_SIM && lb_ranks_get()->nranks > 1) {
            lb_ranks_say("%s: driver: the simulator runs in one process; run it with lockbench "
                         "(lockbench-mpi spreads the loop and threads drivers)\n", file);
            return false;
        }
        if (var->redis.replicas > 0 && o->nredis == 0) {
            lb_ranks_say("%s: redis.replicas: managed replicas are not reachable from other "
                         "ranks; under lockbench-mpi give --redis URLs\n", file);
            return false;
        }
    }
    return true;
}

static int load_all(char *const *files, size_t n, const lb_run_options *o, lb_scenario **out)
{
    lb_load_options lo = {.overrides = o->sets, .noverrides = o->nsets,
                          .external_servers = o->nredis > 0, .calibration = o->calibration};
    char err[1024];
    int rc = LB_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        if (lb_scenario_load(files[i], &lo, &out[i], err, sizeof err) < 0) {
            lb_ranks_say("%s\n", err);
            rc = LB_EXIT_USAGE;
            continue;
        }
        if (o->nredis > 0 && (size_t)out[i]->redis.servers > o->nredis) {
            lb_ranks_say("%s: redis.servers: the scenario needs %d servers, --redis gave %zu\n",
                         files[i], out[i]->redis.servers, o->nredis);
            rc = LB_EXIT_USAGE;
        } else if (lb_ranks_get() && !ranks_can_run(out[i], o, files[i])) {
            rc = LB_EXIT_USAGE;
        } else if (o->nredis > 0 && proxied_over_unix(out[i], o)) {
            lb_ranks_say("%s: network: network faults relay clients over TCP; --redis gave a "
                         "unix:// URL\n", files[i]);
            rc = LB_EXIT_USAGE;
        }
    }
    return rc;
}

/* The command line's URLs, checked (exit 2 naming the flag) and given $REDISCLI_AUTH. */
typedef struct urls {
    char *redis[LB_SCENARIO_MAX_SERVERS];
    char *resource;
    lb_run_options o;
} urls;

static int resolve_urls(const lb_run_options *in, urls *u)
{
    char err[200];
    memset(u, 0, sizeof *u);
    u->o = *in;
    for (size_t i = 0; i < in->nredis; i++) {
        if (lb_endpoint_check(in->redis[i], err, sizeof err) < 0) {
            fprintf(stderr, "lockbench: --redis: %s\n", err);
            return LB_EXIT_USAGE;
        }
        u->redis[i] = lb_endpoint_with_env_auth(in->redis[i]);
    }
    if (in->resource && lb_endpoint_check(in->resource, err, sizeof err) < 0) {
        fprintf(stderr, "lockbench: --resource: %s\n", err);
        return LB_EXIT_USAGE;
    }
    u->resource = in->resource ? lb_endpoint_with_env_auth(in->resource) : NULL;
    u->o.redis = (const char **)u->redis;
    u->o.resource = u->resource;
    return LB_EXIT_OK;
}

static void free_urls(urls *u)
{
    for (size_t i = 0; i < LB_SCENARIO_MAX_SERVERS; i++)
        free(u->redis[i]);
    free(u->resource);
}

int lb_validate_scenarios(char *const *files, size_t nfiles, const lb_run_options *given)
{
    urls u;
    int urc = resolve_urls(given, &u);
    const lb_run_options *o = &u.o;
    if (urc != LB_EXIT_OK) {
        free_urls(&u);
        return urc;
    }
    lb_scenario **s = calloc(nfiles, sizeof *s);
    if (!s)
        return LB_EXIT_ENV;
    int rc = load_all(files, nfiles, o, s);
    for (size_t i = 0; i < nfiles; i++) {
        if (s[i] && !o->quiet)
            printf("%s: ok (%s, %zu clients, %zu variants)\n", files[i], s[i]->name,
                   s[i]->nclients, lb_scenario_variant_count(s[i]));
        lb_scenario_free(s[i]);
    }
    free(s);
    free_urls(&u);
    return rc;
}

int lb_run_scenarios(char *const *files, size_t nfiles, const lb_run_options *given)
{
    urls u;
    int urc = resolve_urls(given, &u);
    const lb_run_options *o = &u.o;
    lb_scenario **s = urc == LB_EXIT_OK ? calloc(nfiles, sizeof *s) : NULL;
    char run_id[32];
    if (!s) {
        free_urls(&u);
        return urc != LB_EXIT_OK ? urc : LB_EXIT_ENV;
    }
    int rc = load_all(files, nfiles, o, s);  /* every file valid before any server starts */
    if (rc == LB_EXIT_OK && o->out && lb_ranks_leader())
        rc = prepare_given_outs(s, nfiles, o);   /* and every --out folder usable */
    if (ranks_any(rc != LB_EXIT_OK) && rc == LB_EXIT_OK)  /* rank 0 said why */
        rc = LB_EXIT_USAGE;
    if (o->nredis > 0)
        catch_interrupt();  /* no managed server will install its handler first */
    snprintf(run_id, sizeof run_id, "%lx%04x", (unsigned long)time(NULL), (unsigned)getpid() & 0xffff);
    if (lb_ranks_get() && lb_ranks_get()->bcast(lb_ranks_get(), run_id, sizeof run_id) < 0 &&
        rc == LB_EXIT_OK)  /* every rank's keys under rank 0's run id: one lock, one counter */
        rc = LB_EXIT_ENV;
    /* A failed expectation does not stop the other scenarios; bad input, a broken
     * environment or Ctrl-C does. */
    for (size_t i = 0; (rc == LB_EXIT_OK || rc == LB_EXIT_FAILED) && i < nfiles; i++) {
        int r = run_scenario(s[i], o, nfiles, run_id);
        if (r > rc)
            rc = r;
    }
    for (size_t i = 0; i < nfiles; i++)
        lb_scenario_free(s[i]);
    free(s);
    free_urls(&u);
    return rc;
}
