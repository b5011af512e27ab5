/* runner.c -- the run stage: one thread per client, a start barrier, the workload, and the
 * fault schedule on the calling (main) thread.
 *
 * A client thread loops: acquire, critical section, release, think, until its iterations are
 * done, the run's deadline passes, or it crashes. What it measures goes into its own
 * lb_client_result (a histogram and an acquisition log of its own: no lock and no allocation
 * per sample; the log writes out a block every 256 acquisitions). The only state shared on the hot
 * path is the oracle's per-key count of live clients inside the critical section, an atomic.
 *
 * Faults (faults.c applies them from the main thread) reach a client thread through its control
 * block: the lock core's hook (called before every command, the watchdog's included) blocks
 * while the client is paused and cancels once it has crashed; the client thread checks the same
 * block at the points where it talks to the protected resource, and at the "holding" point
 * (after reading the counter, before writing it) for events with "when": "holding". A loop's
 * clients (runloop.c) see the same block through their driver's notice. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlock.h"
#include "monotonic.h"
#include "endpoint.h"
#include "health.h"
#include "oracle.h"
#include "proxy.h"
#include "runner.h"
#include "runner_priv.h"
#include "servers.h"

#define CLIENT_STACK (256 * 1024)

/* The scenario's enums map onto the lock core's by value. */
_Static_assert((int)LB_ALG_REDLOCK == (int)DLOCK_REDLOCK && (int)LB_ALG_LEGACY == (int)DLOCK_LEGACY,
               "algorithm enums differ");
_Static_assert((int)LB_WAIT_FIFO == (int)DLOCK_WAIT_FIFO && (int)LB_WAIT_NOTIFY == (int)DLOCK_WAIT_NOTIFY,
               "wait enums differ");
_Static_assert((int)LB_BACKOFF_SERVICESTACK == (int)DLOCK_BACKOFF_SERVICESTACK &&
                   (int)LB_BACKOFF_FULL_JITTER == (int)DLOCK_BACKOFF_FULL_JITTER,
               "backoff enums differ");

static atomic_bool stop_requested;

void lb_runner_stop(void)
{
    atomic_store(&stop_requested, true);
}

bool lb_runner_stopped(void)
{
    return atomic_load(&stop_requested);
}

static void ctl_init(ctl *c)
{
    pthread_mutex_init(&c->mu, NULL);
    dlock__cond_init_monotonic(&c->cv);
    c->restart_after_us = -1;
}

static void ctl_destroy(ctl *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

/* Blocks while paused. false once the client has crashed. */
static bool ctl_checkpoint(ctl *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->paused > 0 && !c->crashed)
        pthread_cond_wait(&c->cv, &c->mu);
    bool alive = !c->crashed;
    pthread_mutex_unlock(&c->mu);
    return alive;
}

static bool ctl_crashed(ctl *c)
{
    pthread_mutex_lock(&c->mu);
    bool crashed = c->crashed;
    pthread_mutex_unlock(&c->mu);
    return crashed;
}

typedef enum { SLEPT, CRASHED, STOPPED } sleep_end;

/* Sleeps until the monotonic time `until`, the crash, or -- for a stoppable sleep, one between
 * iterations -- the end of the run. A sleep inside the critical section is not stoppable: at the
 * deadline a holder finishes its work and releases. */
static sleep_end ctl_sleep_until(ctl *c, int64_t until, bool stoppable)
{
    struct timespec ts = dlock__mono_timespec(until);
    pthread_mutex_lock(&c->mu);
    while (!c->crashed && !(stoppable && c->stopping) && dlock__mono_us() < until) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
            break;
    }
    sleep_end e = c->crashed ? CRASHED : stoppable && c->stopping ? STOPPED : SLEPT;
    pthread_mutex_unlock(&c->mu);
    return e == SLEPT && !ctl_checkpoint(c) ? CRASHED : e;
}

/* A sleep inside the critical section: false once crashed. */
static bool ctl_hold(ctl *c, int64_t us)
{
    return us <= 0 || ctl_sleep_until(c, dlock__mono_us() + us, false) == SLEPT;
}

/* A pause starts (+1) or ends (-1); pauses may overlap, the client runs when none is left. */
void rn_ctl_pause(ctl *c, int delta)
{
    pthread_mutex_lock(&c->mu);
    c->paused += delta;
    if (c->paused < 0)
        c->paused = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* The lock core's hook: every command, the watchdog's too. */
static int client_hook(void *ud, const char *command)
{
    return !ctl_checkpoint(&((client *)ud)->ctl);
}

static int64_t skewed_wallclock(void *ud)
{
    client *c = ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&c->ctl.skew_ms);
}

/* ---- setup ----------------------------------------------------------------- */

static int intern_key(run *r, const char *name)
{
    for (size_t i = 0; i < r->nkeys; i++)
        if (strcmp(r->keys[i], name) == 0)
            return (int)i;
    if (!(r->keys[r->nkeys] = strdup(name)))
        return -1;
    return (int)r->nkeys++;
}

/* The lock key of client id of group g: prefix + key, or prefix + key:i mod K. Every client's
 * key is interned, run here or not, so a key's index means the same on every rank. */
static int assign_key(run *r, const lb_client_group *g, int id)
{
    char name[512];
    rn_key_name(name, sizeof name, r->t->prefix, &g->lock, id);
    return intern_key(r, name);
}

client *rn_client_of(run *r, int id)
{
    size_t k = r->ranks ? (size_t)r->ranks->nranks : 1;
    if (id < 0 || !lb_ranks_owns(r->ranks, (size_t)id) || (size_t)id / k >= r->n)
        return NULL;
    return &r->clients[(size_t)id / k];
}

static bool needs_proxy(const run *r, const client *c)
{
    if (c->g->network.latency_ms > 0 || c->g->network.jitter_ms > 0)
        return true;
    for (size_t i = 0; i < r->sc->nevents; i++) {
        const lb_event *e = &r->sc->events[i];
        if (e->action != LB_EV_DELAY && e->action != LB_EV_PARTITION && e->action != LB_EV_RESET)
            continue;
        for (size_t k = 0; k < e->nclients; k++)
            if (e->clients[k] == c->id)
                return true;
    }
    return false;
}

/* Whether any client of the scenario goes through the fault proxy. */
bool lb_runner_needs_proxy(const lb_scenario *v)
{
    for (size_t g = 0; g < v->ngroups; g++)
        if (v->groups[g].network.latency_ms > 0 || v->groups[g].network.jitter_ms > 0)
            return true;
    for (size_t i = 0; i < v->nevents; i++) {
        lb_event_action a = v->events[i].action;
        if (a == LB_EV_DELAY || a == LB_EV_PARTITION || a == LB_EV_RESET)
            return true;
    }
    return false;
}

/* The descriptors a run of v opens at most, spill files included: each client's lock connections
 * (and its renewer's), its fenced client, a thread client's own connection to the store and its
 * acquisition log's spill file, the proxy's two per proxied link (and, with replicas, the
 * front link's two per lock connection: that proxy runs in this process too); each loop thread's epoll,
 * eventfd, store connection and spill file; and a margin for the rest (results, listeners,
 * calibration). */
int64_t lb_runner_fds_needed(const lb_scenario *v, int nservers)
{
    bool threads = lb_scenario_driver(v) == LB_DRIVER_THREADS, faults = false;
    for (size_t i = 0; i < v->nevents; i++) {
        lb_event_action a = v->events[i].action;
        faults |= a == LB_EV_DELAY || a == LB_EV_PARTITION || a == LB_EV_RESET;
    }
    int64_t n = 64 + 4 * sysconf(_SC_NPROCESSORS_ONLN);
    for (size_t g = 0; g < v->ngroups; g++) {
        const lb_client_group *gr = &v->groups[g];
        lb_critical_section cs = gr->workload.critical_section;
        bool proxied = faults || gr->network.latency_ms > 0 || gr->network.jitter_ms > 0;
        int64_t per = nservers * (gr->lock.renew ? 2 : 1) + threads +
                      (gr->lock.fencing && cs == LB_CS_COUNTER) + (threads && cs != LB_CS_NONE) +
                      (proxied ? 2 * nservers : 0) +
                      (v->redis.replicas > 0 ? 2 * nservers * (gr->lock.renew ? 2 : 1) : 0);
        n += per * gr->count;
    }
    return n;
}

/* The URLs a client connects to: its proxy links where it has faults, the servers otherwise. */
static int client_urls(run *r, client *c)
{
    const lb_run_target *t = r->t;
    bool proxied = t->proxy && needs_proxy(r, c);
    for (int s = 0; s < t->nservers; s++) {
        char host[256];
        int port = 0, lport;
        c->links[s] = -1;
        if (!proxied) {
            c->urls[s] = strdup(t->lock_urls[s]);
        } else if (lb_endpoint_hostport(t->lock_urls[s], host, sizeof host, &port) < 0) {
            snprintf(r->err, sizeof r->err, "server %d: network faults need a TCP URL", s);
            return -1;
        } else if ((c->links[s] = lb_proxy_add_link(t->proxy, host, port, &lport)) >= 0) {
            const lb_network *n = &c->g->network;
            lb_proxy_set_latency(t->proxy, c->links[s], n->latency_ms * 1000, n->jitter_ms * 1000);
            c->urls[s] = lb_endpoint_via(t->lock_urls[s], "127.0.0.1", lport);
        }
        if (!c->urls[s]) {
            if (!r->err[0])
                snprintf(r->err, sizeof r->err, "client %d: cannot set up its link", c->id);
            return -1;
        }
    }
    return 0;
}

/* A client's connections: its lock client (through the proxy when it has network faults) and,
 * with resource and a critical section that touches it, the protected resource (never through
 * the proxy: no event touches it) and, with fencing, a lock client on it for fenced reads and
 * writes. */
bool rn_client_connect(client *c, bool hooked, bool resource, char *err, size_t errlen)
{
    dlock_client *lock = dlock_client_new((const char *const *)c->urls, c->run->t->nservers,
                                          err, errlen);
    if (!lock)
        return false;
    if (hooked)
        dlock_client_set_hook(lock, client_hook, c);
    pthread_mutex_lock(&c->ctl.mu);
    c->lock = lock;  /* the scheduler interrupts it under the same lock */
    pthread_mutex_unlock(&c->ctl.mu);
    lb_critical_section cs = c->g->workload.critical_section;
    char why[200];
    if (resource && cs != LB_CS_NONE &&
        !(c->res = lb_endpoint_connect(c->run->t->resource_url, 2000, why, sizeof why))) {
        snprintf(err, errlen, "protected resource: %s", why);
        return false;
    }
    if (c->g->lock.fencing && cs == LB_CS_COUNTER) {
        const char *u = c->run->t->resource_url;
        c->fenced = dlock_client_new(&u, 1, err, errlen);
        if (!c->fenced)
            return false;
    }
    return true;
}

void rn_client_disconnect(client *c)
{
    dlock_stats total;
    if (c->lock) {
        dlock_client_stats(c->lock, &total, NULL);
        c->commands_before += total.commands;
    }
    pthread_mutex_lock(&c->ctl.mu);
    dlock_client *lock = c->lock;
    c->lock = NULL;
    pthread_mutex_unlock(&c->ctl.mu);
    dlock_client_free(lock);
    dlock_client_free(c->fenced);
    if (c->res)
        redisFree(c->res);
    c->fenced = NULL;
    c->res = NULL;
}

/* ---- the workload ---------------------------------------------------------- */

int64_t rn_since_t0(const client *c)
{
    return dlock__mono_us() - c->run->t0;
}

void rn_lock_options(const lb_lock *lk, uint64_t seed, int id, dlock_options *o)
{
    dlock_options_init(o);
    o->algorithm = (dlock_algorithm)lk->algorithm;
    o->ttl_ms = lk->ttl_ms;
    o->wait_timeout_ms = lk->wait_timeout_ms;
    o->wait = (dlock_wait)lk->wait;
    o->backoff.policy = (dlock_backoff_policy)lk->backoff.policy;
    o->backoff.base_ms = lk->backoff.base_ms;
    o->backoff.cap_ms = lk->backoff.cap_ms;
    o->renew = lk->renew;
    o->fencing = lk->fencing;
    o->drift_factor = lk->drift_factor;
    o->command_timeout_ms = lk->command_timeout_ms;
    o->min_replicas = (int)lk->min_replicas;
    o->replica_timeout_ms = lk->replica_timeout_ms;
    o->seed = seed * 1000003 + (uint64_t)id + 1;
}

uint64_t rn_client_rng(uint64_t seed, size_t id)
{
    return (seed + 1) * 0x9E3779B97F4A7C15ULL ^ (id + 1) * 0xBF58476D1CE4E5B9ULL;
}

void rn_key_name(char *buf, size_t len, const char *prefix, const lb_lock *lk, int id)
{
    if (lk->keys > 1)
        snprintf(buf, len, "%s%s:%lld", prefix, lk->key, (long long)(id % lk->keys));
    else
        snprintf(buf, len, "%s%s", prefix, lk->key);
}

void rn_options_of(client *c, dlock_options *o)
{
    rn_lock_options(&c->g->lock, c->run->sc->seed, c->id, o);
    o->wallclock = skewed_wallclock;
    o->wallclock_ud = c;
}

/* When a "when": "holding" event fires, its real window is kept for events.csv: earliest start
 * and latest end over the clients it fired on. */
void rn_fired(run *r, int event, int64_t start_us, int64_t end_us)
{
    long long v;
    while ((v = atomic_load(&r->fired_start[event])) < 0 || v > start_us)
        if (atomic_compare_exchange_weak(&r->fired_start[event], &v, start_us))
            break;
    while ((v = atomic_load(&r->fired_end[event])) < end_us)
        if (atomic_compare_exchange_weak(&r->fired_end[event], &v, end_us))
            break;
}

rn_holding rn_take_holding(client *c)
{
    ctl *k = &c->ctl;
    pthread_mutex_lock(&k->mu);
    rn_holding h = {.pause = k->pause_when_holding, .pause_us = k->pause_when_holding_us,
                    .now_us = rn_since_t0(c)};
    int crash = k->crash_when_holding;
    k->crash_when_holding = k->pause_when_holding = 0;
    k->crashed |= crash > 0;
    pthread_mutex_unlock(&k->mu);
    if (crash > 0) {
        rn_fired(c->run, crash - 1, h.now_us, h.now_us);
        h.crashed = true;
        h.pause = 0;
    }
    return h;
}

/* The point between reading the counter and writing it: where "when": "holding" events act.
 * false when the client crashed here. */
static bool holding_point(client *c)
{
    ctl *k = &c->ctl;
    rn_holding h = rn_take_holding(c);
    int pause = h.pause;
    int64_t pause_us = h.pause_us, now = h.now_us;
    if (h.crashed)
        return false;
    if (pause > 0) {
        bool alive = ctl_hold(k, pause_us);  /* a freeze: no traffic, no renewals */
        rn_fired(c->run, pause - 1, now, rn_since_t0(c));
        return alive;
    }
    return ctl_checkpoint(k);
}

/* fence > 0: the read is fenced, and made under l (which names the reader); its rc tells a
 * refusal. */
static void read_counter(client *c, const char *counter, uint64_t fence, const dlock *l,
                         lb_wl_input *in)
{
    if (fence > 0) {
        char *v = NULL;
        in->rc = dlock_fenced_read(c->fenced, counter, l, &v);
        in->ok = in->rc == DLOCK_OK;
        in->value = v ? atoll(v) : 0;
        free(v);
        return;
    }
    redisReply *r = redisCommand(c->res, "GET %s", counter);
    in->ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
    in->value = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
}

/* fence > 0: the write is fenced, and made under l (which names the writer). */
static int write_counter(client *c, const char *counter, long long v, uint64_t fence,
                         const dlock *l)
{
    char buf[32];
    if (fence > 0) {
        snprintf(buf, sizeof buf, "%lld", v);
        return dlock_fenced_write(c->fenced, counter, l, buf);
    }
    redisReply *r = redisCommand(c->res, "SET %s %lld", counter, v);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? DLOCK_OK : DLOCK_EIO;
}

/* inside_check: INCR (by +1) or DECR (-1) of <counter>:inside; the INCR's reply in *value. */
static bool count_inside(client *c, const char *counter, int by, long long *value)
{
    redisReply *r = redisCommand(c->res, by > 0 ? "INCR %s:inside" : "DECR %s:inside", counter);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    *value = ok ? r->integer : 0;
    freeReplyObject(r);
    return ok;
}

static bool incr_counter(client *c, const char *counter)
{
    redisReply *r = redisCommand(c->res, "INCR %s", counter);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    return ok;
}

bool rn_out_of_time(const client *c)
{
    return atomic_load(&stop_requested) || atomic_load(&c->run->failed) ||
           dlock__mono_us() >= c->run->deadline[c->group];
}

/* The crash: connections closed without a word; maybe a new client later, in its place. */
static bool crash_and_maybe_restart(client *c)
{
    char err[256];
    rn_client_disconnect(c);
    c->out->crashes++;
    c->out->crashed = true;
    pthread_mutex_lock(&c->ctl.mu);
    /* Down until restart_after_us has passed since the latest crash event: one that arrives
     * while the client is down starts the count again (or keeps it down for good). */
    for (unsigned seen = c->ctl.crashes - 1; seen != c->ctl.crashes && !c->ctl.stopping;) {
        seen = c->ctl.crashes;
        if (c->ctl.restart_after_us < 0) {
            pthread_mutex_unlock(&c->ctl.mu);
            return false;
        }
        struct timespec ts = dlock__mono_timespec(dlock__mono_us() + c->ctl.restart_after_us);
        while (!c->ctl.stopping && seen == c->ctl.crashes &&
               pthread_cond_timedwait(&c->ctl.cv, &c->ctl.mu, &ts) != ETIMEDOUT)
            ;
    }
    c->ctl.crashed = false;
    c->ctl.restart_after_us = -1;
    pthread_mutex_unlock(&c->ctl.mu);
    if (rn_out_of_time(c) || !rn_client_connect(c, true, true, err, sizeof err))
        return false;
    c->out->crashed = false;
    return true;
}

static lb_wl_input input_now(client *c)
{
    return (lb_wl_input){.now_us = rn_since_t0(c), .stop = atomic_load(&stop_requested)};
}

/* The acquire call, with what the workload records of it. */
static lb_wl_input do_acquire(client *c, const dlock_options *o, dlock **l)
{
    dlock_stats last;
    int rc = dlock_acquire(c->lock, c->run->keys[c->key], o, l);
    dlock_client_stats(c->lock, NULL, &last);
    lb_wl_input in = input_now(c);
    in.rc = rc;
    in.attempts = (uint32_t)last.attempts;
    in.commands = (uint32_t)last.commands;
    in.fence = rc == DLOCK_OK ? dlock_fencing_token(*l) : 0;
    in.crashed = ctl_crashed(&c->ctl);
    return in;
}

/* The thread driver: the workload machine's steps as blocking calls and sleeps, with the
 * faults acting through the client's control block (the hook, the checkpoints, the sleeps). */
static void workload(client *c)
{
    dlock_options o;
    rn_options_of(c, &o);
    char counter[600];
    snprintf(counter, sizeof counter, "%s:counter", c->run->keys[c->key]);
    dlock *l = NULL;
    lb_wl_input in = input_now(c);
    lb_wl_step s = lb_wl_next(&c->wl, &in);
    for (;;) {
        in = (lb_wl_input){0};
        switch (s.what) {
        case LB_WL_ACQUIRE:
            in = do_acquire(c, &o, &l);
            break;
        case LB_WL_READ:
            in.crashed = !ctl_checkpoint(&c->ctl);
            if (!in.crashed)
                read_counter(c, counter, s.fence, l, &in);
            break;
        case LB_WL_WRITE:
            in.rc = write_counter(c, counter, s.value, s.fence, l);
            break;
        case LB_WL_INCR:
            in.ok = incr_counter(c, counter);
            break;
        case LB_WL_ENTER:
        case LB_WL_EXIT:
            in.ok = count_inside(c, counter, s.what == LB_WL_ENTER ? 1 : -1, &in.value);
            break;
        case LB_WL_HOLDING:
            in.crashed = !holding_point(c);
            break;
        case LB_WL_HOLD:
            in.crashed = !ctl_hold(&c->ctl, s.until_us - rn_since_t0(c));
            break;
        case LB_WL_RELEASE:
            in.rc = dlock_release(l);
            l = NULL;
            in.crashed = !ctl_checkpoint(&c->ctl);
            break;
        case LB_WL_KEEP:
            dlock_abandon(l);
            l = NULL;
            break;
        case LB_WL_THINK:
            in.crashed = ctl_sleep_until(&c->ctl, c->run->t0 + s.until_us, true) == CRASHED;
            break;
        case LB_WL_CRASHED:
            dlock_abandon(l);  /* never released: its connections are cut below */
            l = NULL;
            if (!crash_and_maybe_restart(c))
                return;
            in = input_now(c);
            s = lb_wl_restart(&c->wl, &in);
            continue;
        case LB_WL_DONE:
        default:
            return;
        }
        lb_wl_input when = input_now(c);
        in.now_us = when.now_us;
        in.stop = when.stop;
        s = lb_wl_next(&c->wl, &in);
    }
}

void rn_finish(client *c)
{
    c->out->end_us = rn_since_t0(c);
    pthread_mutex_lock(&c->run->done_mu);
    atomic_fetch_sub(&c->run->running, 1);
    pthread_cond_signal(&c->run->done_cv);  /* only the scheduler waits there now */
    pthread_mutex_unlock(&c->run->done_mu);
}

bool rn_start_barrier(run *r, size_t n)
{
    pthread_mutex_lock(&r->done_mu);
    r->ready += n;
    pthread_cond_signal(&r->done_cv);
    while (!r->go)
        pthread_cond_wait(&r->go_cv, &r->done_mu);
    bool go = !r->abort;
    pthread_mutex_unlock(&r->done_mu);
    return go;
}

/* The main thread's side: waits for the started clients (and, under MPI, every rank's), then
 * opens the barrier at t0. */
static void open_barrier(run *r, size_t started)
{
    pthread_mutex_lock(&r->done_mu);
    while (r->ready < started)
        pthread_cond_wait(&r->done_cv, &r->done_mu);
    bool abort = started < r->n;
    for (size_t i = 0; i < started; i++)
        abort |= r->clients[i].setup_failed;
    pthread_mutex_unlock(&r->done_mu);
    abort = rn_ranks_start(r, abort);  /* the clients wait on go, not on done_mu */
    pthread_mutex_lock(&r->done_mu);
    r->abort = abort;
    r->t0 = dlock__mono_us();
    for (size_t g = 0; g < r->sc->ngroups; g++) {
        int64_t d = r->sc->groups[g].workload.duration_ms;
        r->deadline[g] = d >= 0 ? r->t0 + d * 1000 : INT64_MAX;
    }
    r->go = true;
    pthread_cond_broadcast(&r->go_cv);
    pthread_mutex_unlock(&r->done_mu);
}

void rn_setup_failed(client *c, const char *err)
{
    c->setup_failed = true;
    pthread_mutex_lock(&c->run->done_mu);
    if (!c->run->err[0])
        snprintf(c->run->err, sizeof c->run->err, "client %d: %s", c->id, err);
    pthread_mutex_unlock(&c->run->done_mu);
}

void rn_count_commands(client *c)
{
    dlock_stats total;
    c->out->commands = c->commands_before;
    if (c->lock) {
        dlock_client_stats(c->lock, &total, NULL);
        c->out->commands += total.commands;
    }
}

static void *client_main(void *arg)
{
    client *c = arg;
    char err[256];
    if (!rn_client_connect(c, true, true, err, sizeof err))
        rn_setup_failed(c, err);
    if (rn_start_barrier(c->run, 1))
        workload(c);
    rn_count_commands(c);
    rn_finish(c);
    return NULL;
}

/* ---- the run ---------------------------------------------------------------- */

static int64_t read_counters(run *r)
{
    char err[200];
    redisContext *ctx = lb_endpoint_connect(r->t->resource_url, 2000, err, sizeof err);
    int64_t sum = 0;
    for (size_t k = 0; ctx && k < r->nkeys; k++) {
        redisReply *v = redisCommand(ctx, "GET %s:counter", r->keys[k]);
        if (v && v->type == REDIS_REPLY_STRING)
            sum += atoll(v->str);
        freeReplyObject(v);
    }
    if (ctx)
        redisFree(ctx);
    return sum;
}

static int prepare_clients(run *r, lb_run_result *out)
{
    size_t id = 0, n = 0;
    for (size_t g = 0; g < r->sc->ngroups; g++) {
        for (int64_t k = 0; k < r->sc->groups[g].count; k++, id++) {
            int key = assign_key(r, &r->sc->groups[g], (int)id);
            if (key < 0) {
                snprintf(r->err, sizeof r->err, "client %zu: out of memory", id);
                return -1;
            }
            if (!lb_ranks_owns(r->ranks, id))
                continue;  /* another rank runs it */
            client *c = &r->clients[n];
            c->out = &out->clients[n++];
            c->key = key;
            c->run = r;
            c->id = (int)id;
            c->group = g;
            c->g = &r->sc->groups[g];
            c->out->client = (int)id;
            c->out->group = g;
            c->rng = rn_client_rng(r->sc->seed, id);
            ctl_init(&c->ctl);
            c->delays = calloc(r->sc->nevents + 1, sizeof *c->delays);
            if (!c->delays || client_urls(r, c) < 0) {
                if (!r->err[0])
                    snprintf(r->err, sizeof r->err, "client %zu: out of memory", id);
                return -1;
            }
        }
    }
    return 0;
}

/* One meter per driver thread: per client on threads, per loop on the loop driver, where
 * client i runs on loop i % loops. */
static int prepare_meters(run *r, lb_run_result *out)
{
    for (size_t g = 0; g < r->sc->ngroups; g++)
        out->open_loop |= r->sc->groups[g].workload.arrival.on;
    size_t n = r->driver == LB_DRIVER_LOOP ? rn_loop_threads(r->n) : r->n;
    if (n == 0)
        n = 1;
    if (!(out->meters = calloc(n, sizeof *out->meters))) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < n; k++, out->nmeters++) {
        if (lb_meter_init(&out->meters[k], (r->n + n - 1) / n, out->open_loop) < 0) {
            snprintf(r->err, sizeof r->err, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int start_threads(run *r, size_t *started)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CLIENT_STACK);
    for (*started = 0; *started < r->n; (*started)++) {
        int rc = pthread_create(&r->clients[*started].thread, &attr, client_main,
                                &r->clients[*started]);
        if (rc != 0) {
            snprintf(r->err, sizeof r->err, "cannot start client thread %zu: %s", *started,
                     strerror(rc));
            break;
        }
    }
    pthread_attr_destroy(&attr);
    return *started == r->n ? 0 : -1;
}

static void free_run(run *r)
{
    rn_loops_join(r);  /* a loop driver that failed to start */
    for (size_t i = 0; i < r->n; i++) {
        lb_wl_free(&r->clients[i].wl);
        ctl_destroy(&r->clients[i].ctl);
        free(r->clients[i].delays);
        for (int s = 0; s < LB_SCENARIO_MAX_SERVERS; s++)
            free(r->clients[i].urls[s]);
    }
    for (size_t k = 0; k < r->nkeys; k++)
        free(r->keys[k]);
    free(r->keys);
    free(r->fired_start);
    free(r->fired_end);
    free(r->deadline);
    free(r->stopped);
    lb_oracle_free(r->oracle);
    free(r->clock_a);
    free(r->clients);
    pthread_mutex_destroy(&r->done_mu);
    pthread_cond_destroy(&r->done_cv);
    pthread_cond_destroy(&r->go_cv);
}

static int init_run(run *r, const lb_scenario *sc, const lb_run_target *t, lb_run_result *out)
{
    memset(out, 0, sizeof *out);
    r->sc = sc;
    r->t = t;
    r->ranks = lb_ranks_get();
    r->n = sc->nclients;
    if (r->ranks)  /* this rank's share: clients rank, rank + K, rank + 2K, ... */
        r->n = (sc->nclients + (size_t)(r->ranks->nranks - r->ranks->rank - 1)) /
               (size_t)r->ranks->nranks;
    r->clients = calloc(r->n + 1, sizeof *r->clients);
    r->keys = calloc(sc->nclients + 1, sizeof *r->keys);
    r->fired_start = calloc(sc->nevents + 1, sizeof *r->fired_start);
    r->deadline = calloc(sc->ngroups, sizeof *r->deadline);
    r->stopped = calloc(sc->ngroups, sizeof *r->stopped);
    r->fired_end = calloc(sc->nevents + 1, sizeof *r->fired_end);
    out->clients = calloc(r->n + 1, sizeof *out->clients);
    out->faults = calloc(sc->nevents + 1, sizeof *out->faults);
    out->nclients = out->clients ? r->n : 0;
    out->nfaults = out->faults ? sc->nevents : 0;
    r->n = r->clients ? r->n : 0;
    pthread_mutex_init(&r->done_mu, NULL);
    dlock__cond_init_monotonic(&r->done_cv);
    pthread_cond_init(&r->go_cv, NULL);
    if (!r->clients || !r->keys || !out->clients || !out->faults || !r->fired_start ||
        !r->fired_end || !r->deadline || !r->stopped) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < sc->nevents; i++) {
        rn_fault_describe(&sc->events[i], &out->faults[i]);
        atomic_store(&r->fired_start[i], -1);
        atomic_store(&r->fired_end[i], -1);
    }
    if (prepare_clients(r, out) < 0 || prepare_meters(r, out) < 0)
        return -1;
    if (!(r->oracle = lb_oracle_new(r->nkeys))) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        client *c = &r->clients[i];
        size_t member = (size_t)c->id;  /* its place in its group, among every rank's clients */
        for (size_t g = 0; g < c->group; g++)
            member -= (size_t)r->sc->groups[g].count;
        int64_t d = c->g->workload.duration_ms;
        lb_wl_setup st = {.g = c->g, .member = (int)member, .key = c->key, .out = c->out,
                          .meter = &out->meters[i % out->nmeters], .oracle = r->oracle,
                          .rng = &c->rng, .tally = &c->tally,
                          .deadline_us = d >= 0 ? d * 1000 : INT64_MAX};
        if (lb_wl_init(&c->wl, &st) < 0) {
            snprintf(r->err, sizeof r->err, "client %zu: out of memory", i);
            return -1;
        }
    }
    return 0;
}

/* The servers' watch found one dead (health.c; on the watch's thread). Clients waiting on it
 * would wait for ever, and the figures would be the environment's, not the scenario's: every
 * client goes down now -- a hold in progress too -- with no restart, and the run fails. */
static void fail_run(void *ud, const char *why)
{
    run *r = ud;
    pthread_mutex_lock(&r->done_mu);
    if (!r->err[0])
        snprintf(r->err, sizeof r->err, "%s", why);
    pthread_mutex_unlock(&r->done_mu);
    atomic_store(&r->failed, true);
    for (size_t i = 0; i < r->n; i++) {
        client *c = &r->clients[i];
        pthread_mutex_lock(&c->ctl.mu);
        c->ctl.crashes++;
        c->ctl.crashed = true;
        c->ctl.stopping = true;
        c->ctl.restart_after_us = -1;
        if (c->lock)
            dlock_client_interrupt(c->lock);
        pthread_cond_broadcast(&c->ctl.cv);
        pthread_mutex_unlock(&c->ctl.mu);
        if (r->notify)
            r->notify(c);
    }
}

/* The watch runs while the clients do: from the barrier until the last one has finished (a
 * loop's clients are woken through their loop, which must still be there). */
static void watch_servers(run *r)
{
    char why[320];
    if (r->t->health && lb_health_start(r->t->health, fail_run, r, why, sizeof why) < 0)
        fail_run(r, why);
}

int lb_runner_run(const lb_scenario *sc, const lb_run_target *t, lb_run_result *out, char *err,
                  size_t errlen)
{
    run r = {.driver = lb_scenario_driver(sc)};
    size_t started = 0;
    int rc = init_run(&r, sc, t, out);
    if (rc == 0)
        rc = r.driver == LB_DRIVER_LOOP ? rn_loops_start(&r, &started) : start_threads(&r, &started);
    atomic_store(&r.running, (int)started);  /* none can finish before the barrier opens */
    if (rc < 0 && started == 0) {
        rn_ranks_start(&r, true);
        snprintf(err, errlen, "%s", r.err);
        free_run(&r);
        lb_run_result_free(out);
        return -1;
    }
    /* Threads that did start wait at the barrier; a partial start is aborted through it. */
    open_barrier(&r, started);
    if (!r.abort) {
        watch_servers(&r);
        rn_schedule(&r, out);
    }
    lb_health_stop(t->health);
    if (r.driver == LB_DRIVER_LOOP)
        rn_loops_join(&r);
    else
        for (size_t i = 0; i < started; i++)
            pthread_join(r.clients[i].thread, NULL);
    for (size_t i = 0; i < started; i++)
        rn_client_disconnect(&r.clients[i]);
    if (!r.abort && rn_ranks_end(&r, atomic_load(&r.failed)))
        atomic_store(&r.failed, true);
    if (r.abort || atomic_load(&r.failed)) {
        snprintf(err, errlen, "%s", r.err[0] ? r.err : "clients could not start");
        free_run(&r);
        lb_run_result_free(out);
        return -1;
    }
    for (size_t i = 0; i < r.n; i++)
        if (out->clients[i].end_us > out->elapsed_us)
            out->elapsed_us = out->clients[i].end_us;
    rn_fault_windows(&r, out);
    out->complete = !atomic_load(&stop_requested);
    out->nkeys = (int64_t)r.nkeys;
    out->driver = r.driver;
    out->overlaps = lb_oracle_overlaps(r.oracle);
    if (lb_ranks_leader())  /* under MPI every rank's clients have finished by now */
        out->counter_actual = read_counters(&r);
    if (rn_ranks_gather(&r, out) < 0) {
        snprintf(err, errlen, "%s", r.err);
        free_run(&r);
        lb_run_result_free(out);
        return -1;
    }
    free_run(&r);
    return 0;
}

void lb_run_result_free(lb_run_result *r)
{
    for (size_t i = 0; r && i < r->nmeters; i++)
        lb_meter_free(&r->meters[i]);
    if (r) {
        free(r->meters);
        free(r->clients);
        free(r->faults);
        memset(r, 0, sizeof *r);
    }
}
