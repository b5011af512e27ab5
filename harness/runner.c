/* runner.c -- the run stage: one thread per client, a start barrier, the workload, and the
 * fault schedule on the calling (main) thread.
 *
 * A client thread loops: acquire, critical section, release, think, until its iterations are
 * done, the run's deadline passes, or it crashes. What it measures goes into its own
 * lb_client_result (a histogram and an acquisition log of its own: no lock and no allocation
 * per sample; the log writes out a block every 256 acquisitions). The only state shared on the hot
 * path is the oracle's per-key count of live clients inside the critical section, an atomic.
 *
 * Faults reach a client through its control block: the lock core's hook (called before every
 * command, the watchdog's included) blocks while the client is paused and cancels once it has
 * crashed; the client thread checks the same block at the points where it talks to the
 * protected resource, and at the "holding" point (after reading the counter, before writing
 * it) for events with "when": "holding". Network faults go through the proxy, server faults
 * through the managed servers, clock skew through the lock core's wall-clock hook.
 *
 * The main thread applies the schedule because a managed redis-server restarted by a thread
 * dies with that thread (PR_SET_PDEATHSIG), and the main thread outlives the run. */
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
static void ctl_pause(ctl *c, int delta)
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

/* The lock key of client c: prefix + key, or prefix + key:i mod K. */
static int assign_key(run *r, client *c)
{
    char name[512];
    const lb_lock *lk = &c->g->lock;
    if (lk->keys > 1)
        snprintf(name, sizeof name, "%s%s:%lld", r->t->prefix, lk->key,
                 (long long)(c->id % lk->keys));
    else
        snprintf(name, sizeof name, "%s%s", r->t->prefix, lk->key);
    c->key = intern_key(r, name);
    return c->key;
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

/* A client's connections: its lock client (through the proxy when it has network faults) and
 * the protected resource (never through the proxy: no event touches it). */
bool rn_client_connect(client *c, bool hooked, char *err, size_t errlen)
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
    char why[200];
    c->res = lb_endpoint_connect(c->run->t->resource_url, 2000, why, sizeof why);
    if (!c->res) {
        snprintf(err, errlen, "protected resource: %s", why);
        return false;
    }
    if (c->g->lock.fencing) {
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

void rn_options_of(client *c, dlock_options *o)
{
    const lb_lock *lk = &c->g->lock;
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
    o->seed = c->run->sc->seed * 1000003 + (uint64_t)c->id + 1;
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

/* The point between reading the counter and writing it: where "when": "holding" events act.
 * false when the client crashed here. */
static bool holding_point(client *c)
{
    ctl *k = &c->ctl;
    pthread_mutex_lock(&k->mu);
    int crash = k->crash_when_holding, pause = k->pause_when_holding;
    int64_t pause_us = k->pause_when_holding_us;
    k->crash_when_holding = k->pause_when_holding = 0;
    k->crashed |= crash > 0;
    pthread_mutex_unlock(&k->mu);
    int64_t now = rn_since_t0(c);
    if (crash > 0) {
        rn_fired(c->run, crash - 1, now, now);
        return false;
    }
    if (pause > 0) {
        bool alive = ctl_hold(k, pause_us);  /* a freeze: no traffic, no renewals */
        rn_fired(c->run, pause - 1, now, rn_since_t0(c));
        return alive;
    }
    return ctl_checkpoint(k);
}

static bool read_counter(client *c, const char *counter, long long *v)
{
    redisReply *r = redisCommand(c->res, "GET %s", counter);
    bool ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
    *v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return ok;
}

static int write_counter(client *c, const char *counter, long long v, uint64_t fence)
{
    char buf[32];
    if (fence > 0) {
        snprintf(buf, sizeof buf, "%lld", v);
        return dlock_fenced_set(c->fenced, counter, fence, buf);
    }
    redisReply *r = redisCommand(c->res, "SET %s %lld", counter, v);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? DLOCK_OK : DLOCK_EIO;
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
    if (rn_out_of_time(c) || !rn_client_connect(c, true, err, sizeof err))
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
                in.ok = read_counter(c, counter, &in.value);
            break;
        case LB_WL_WRITE:
            in.rc = write_counter(c, counter, s.value, s.fence);
            break;
        case LB_WL_INCR:
            in.ok = incr_counter(c, counter);
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

/* The main thread's side: waits for the started clients, then opens the barrier at t0. */
static void open_barrier(run *r, size_t started)
{
    pthread_mutex_lock(&r->done_mu);
    while (r->ready < started)
        pthread_cond_wait(&r->done_cv, &r->done_mu);
    for (size_t i = 0; i < started; i++)
        r->abort |= r->clients[i].setup_failed;
    r->abort |= started < r->n;
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
    if (!rn_client_connect(c, true, err, sizeof err))
        rn_setup_failed(c, err);
    if (rn_start_barrier(c->run, 1))
        workload(c);
    rn_count_commands(c);
    rn_finish(c);
    return NULL;
}

/* ---- the fault schedule ------------------------------------------------------ */

typedef struct action {
    int64_t at_us;       /* from t0 */
    size_t event;        /* index into the scenario's events */
    bool ending;         /* the end of a timed fault (or a restart) */
} action;

/* In time order; at the same time an ending comes before a start, so back-to-back faults of
 * one kind do not cancel each other. */
static int by_time(const void *a, const void *b)
{
    const action *x = a, *y = b;
    if (x->at_us != y->at_us)
        return (x->at_us > y->at_us) - (x->at_us < y->at_us);
    return (int)y->ending - (int)x->ending;
}

static int64_t event_end_us(const lb_event *e)
{
    switch (e->action) {
    case LB_EV_PAUSE:
        return e->when_holding ? -1 : e->duration_ms * 1000;
    case LB_EV_DELAY:
    case LB_EV_PARTITION:
    case LB_EV_PAUSE_SERVER:
        return e->duration_ms * 1000;
    case LB_EV_KILL_SERVER:
        return e->restart_after_ms >= 0 ? e->restart_after_ms * 1000 : -1;
    default:
        return -1;
    }
}

static void describe(const lb_event *e, lb_fault_record *f)
{
    f->at_ms = e->at_ms;
    f->action = e->action;
    f->start_us = f->end_us = -1;
    if (e->server >= 0) {
        snprintf(f->target, sizeof f->target, "server=%d", e->server);
    } else if (e->all_clients) {
        snprintf(f->target, sizeof f->target, "clients=all");
    } else {
        size_t len = (size_t)snprintf(f->target, sizeof f->target, "clients=");
        for (size_t i = 0; i < e->nclients && len < sizeof f->target; i++)
            len += (size_t)snprintf(f->target + len, sizeof f->target - len, "%s%d",
                                    i ? "," : "", e->clients[i]);
    }
    switch (e->action) {
    case LB_EV_DELAY:
        snprintf(f->detail, sizeof f->detail, "latency_ms=%lld jitter_ms=%lld duration_ms=%lld",
                 (long long)e->latency_ms, (long long)e->jitter_ms, (long long)e->duration_ms);
        break;
    case LB_EV_CLOCK_SKEW:
        snprintf(f->detail, sizeof f->detail, "offset_ms=%lld", (long long)e->offset_ms);
        break;
    case LB_EV_CRASH:
    case LB_EV_KILL_SERVER:
        snprintf(f->detail, sizeof f->detail, "%srestart_after_ms=%lld",
                 e->when_holding ? "when=holding " : "", (long long)e->restart_after_ms);
        break;
    case LB_EV_RESET:
        f->detail[0] = '\0';  /* an instant: nothing more to say */
        break;
    default:
        snprintf(f->detail, sizeof f->detail, "%sduration_ms=%lld",
                 e->when_holding ? "when=holding " : "", (long long)e->duration_ms);
        break;
    }
}

/* Applies fn to each client of the event; false when it failed for any of them. */
/* A client thread sees its control block change through the condition variable; a loop's
 * clients through their driver's notice. */
static void notify(run *r, client *c)
{
    if (r->notify)
        r->notify(c);
}

static bool for_clients(run *r, const lb_event *e,
                        bool (*fn)(run *, client *, const lb_event *, bool), bool ending)
{
    bool ok = true;
    for (size_t i = 0; i < e->nclients; i++)
        if (e->clients[i] >= 0 && (size_t)e->clients[i] < r->n)
            ok &= fn(r, &r->clients[e->clients[i]], e, ending);
    return ok;
}

static int event_index(const run *r, const lb_event *e)
{
    return (int)(e - r->sc->events);
}

static bool do_crash(run *r, client *c, const lb_event *e, bool ending)
{
    pthread_mutex_lock(&c->ctl.mu);
    c->ctl.restart_after_us = e->restart_after_ms >= 0 ? e->restart_after_ms * 1000 : -1;
    if (e->when_holding) {
        c->ctl.crash_when_holding = event_index(r, e) + 1;
    } else {
        c->ctl.crashes++;
        c->ctl.crashed = true;
        if (c->lock)
            dlock_client_interrupt(c->lock);  /* wakes a back-off sleep at once */
    }
    pthread_cond_broadcast(&c->ctl.cv);
    pthread_mutex_unlock(&c->ctl.mu);
    notify(r, c);
    return true;
}

/* At a group's deadline (or Ctrl-C, for every group) a wait in progress is abandoned and no new
 * iteration starts: sleeps between iterations end, a client in its critical section finishes. */
static void stop_group(run *r, size_t group)
{
    r->stopped[group] = true;
    for (size_t i = 0; i < r->n; i++) {
        client *c = &r->clients[i];
        if (c->group != group)
            continue;
        pthread_mutex_lock(&c->ctl.mu);
        c->ctl.stopping = true;
        if (c->lock)
            dlock_client_interrupt(c->lock);
        pthread_cond_broadcast(&c->ctl.cv);
        pthread_mutex_unlock(&c->ctl.mu);
        notify(r, c);
    }
}

static bool do_pause(run *r, client *c, const lb_event *e, bool ending)
{
    if (e->when_holding) {
        pthread_mutex_lock(&c->ctl.mu);
        c->ctl.pause_when_holding = event_index(r, e) + 1;
        c->ctl.pause_when_holding_us = e->duration_ms * 1000;
        pthread_mutex_unlock(&c->ctl.mu);
        return true;
    }
    ctl_pause(&c->ctl, ending ? -1 : 1);
    notify(r, c);
    return true;
}

/* Overlapping delays: the latest one in effect sets the link; when none is left, the group's. */
static void track_delay(client *c, const lb_event *e, bool ending, int64_t *lat, int64_t *jit)
{
    if (!ending) {
        c->delays[c->ndelays++] = e;
    } else {
        for (size_t i = 0; i < c->ndelays; i++) {
            if (c->delays[i] == e) {
                memmove(&c->delays[i], &c->delays[i + 1], (c->ndelays - i - 1) * sizeof *c->delays);
                c->ndelays--;
                break;
            }
        }
    }
    const lb_event *now = c->ndelays ? c->delays[c->ndelays - 1] : NULL;
    *lat = now ? now->latency_ms : c->g->network.latency_ms;
    *jit = now ? now->jitter_ms : c->g->network.jitter_ms;
}

static bool do_network(run *r, client *c, const lb_event *e, bool ending)
{
    int64_t lat = 0, jit = 0;
    if (e->action == LB_EV_PARTITION) {  /* overlapping partitions: heal when the last ends */
        c->partitions += ending ? -1 : 1;
        if (c->partitions != (ending ? 0 : 1))
            return true;
    } else if (e->action == LB_EV_DELAY) {
        track_delay(c, e, ending, &lat, &jit);
    }
    bool ok = true;
    for (int s = 0; s < r->t->nservers; s++) {
        int link = c->links[s];
        if (link < 0)
            continue;
        if (e->action == LB_EV_DELAY)
            ok &= lb_proxy_set_latency(r->t->proxy, link, lat * 1000, jit * 1000) == 0;
        else if (e->action == LB_EV_PARTITION)
            ok &= lb_proxy_set_partition(r->t->proxy, link, !ending) == 0;
        else if (e->action == LB_EV_RESET)
            ok &= lb_proxy_reset(r->t->proxy, link) == 0;
    }
    return ok;
}

static bool do_skew(run *r, client *c, const lb_event *e, bool ending)
{
    atomic_store(&c->ctl.skew_ms, e->offset_ms);
    return true;
}

static bool do_server(run *r, const lb_event *e, bool ending)
{
    struct lb_server *s = r->t->servers ? r->t->servers[e->server] : NULL;
    char err[256];
    if (!s)
        return false;
    if (e->action == LB_EV_PAUSE_SERVER)
        return (ending ? lb_server_resume(s) : lb_server_pause(s)) == 0;
    if (!ending)
        return lb_server_kill(s) == 0;
    if (lb_server_restart(s, err, sizeof err) < 0) {
        fprintf(stderr, "lockbench: restarting server %d: %s\n", e->server, err);
        return false;
    }
    return true;
}

static bool apply(run *r, const lb_event *e, bool ending)
{
    switch (e->action) {
    case LB_EV_CRASH: return for_clients(r, e, do_crash, ending);
    case LB_EV_PAUSE: return for_clients(r, e, do_pause, ending);
    case LB_EV_CLOCK_SKEW: return for_clients(r, e, do_skew, ending);
    case LB_EV_DELAY:
    case LB_EV_PARTITION:
    case LB_EV_RESET:
        return r->t->proxy && for_clients(r, e, do_network, ending);
    case LB_EV_KILL_SERVER:
    case LB_EV_PAUSE_SERVER:
        return do_server(r, e, ending);
    }
    return false;
}

static void progress(run *r, int64_t now, lb_run_result *out, int64_t *next_us)
{
    if (!r->t->progress || now < *next_us)
        return;
    *next_us = now + 250000;
    int64_t acq = 0;
    for (size_t i = 0; i < r->n; i++)
        acq += atomic_load_explicit(&r->clients[i].done_acquisitions, memory_order_relaxed);
    double s = (double)(now - r->t0) / 1e6;
    if (s < 1.0)
        return;
    fprintf(stderr, "\r  %6.1f s  %9.0f acquisitions/s  %lld faults applied ", s,
            (double)acq / s, (long long)out->faults_applied);
}

/* Waits until `at_us`, a client finishing, or the next progress tick, whichever comes first. */
static void wait_for(run *r, int64_t at_us)
{
    int64_t tick = dlock__mono_us() + 100000;
    struct timespec ts = dlock__mono_timespec(at_us < tick ? at_us : tick);
    pthread_mutex_lock(&r->done_mu);
    if (atomic_load(&r->running) > 0 && dlock__mono_us() < at_us)
        pthread_cond_timedwait(&r->done_cv, &r->done_mu, &ts);
    pthread_mutex_unlock(&r->done_mu);
}

/* Stops the groups whose deadline has come (all of them on Ctrl-C); returns the next deadline
 * still ahead. */
static int64_t stop_due_groups(run *r, int64_t now)
{
    int64_t next = INT64_MAX;
    bool all = atomic_load(&stop_requested);
    for (size_t g = 0; g < r->sc->ngroups; g++) {
        if (r->stopped[g])
            continue;
        if (all || now >= r->deadline[g])
            stop_group(r, g);
        else if (r->deadline[g] < next)
            next = r->deadline[g];
    }
    return next;
}

static void schedule(run *r, lb_run_result *out)
{
    const lb_scenario *sc = r->sc;
    action *acts = calloc(2 * sc->nevents + 1, sizeof *acts);
    size_t n = 0, next = 0;
    int64_t next_progress = 0;
    for (size_t i = 0; acts && i < sc->nevents; i++) {
        acts[n++] = (action){.at_us = sc->events[i].at_ms * 1000, .event = i};
        int64_t end = event_end_us(&sc->events[i]);
        if (end >= 0)
            acts[n++] = (action){.at_us = (sc->events[i].at_ms * 1000) + end, .event = i,
                                 .ending = true};
    }
    if (acts)
        qsort(acts, n, sizeof *acts, by_time);
    while (atomic_load(&r->running) > 0) {
        int64_t now = dlock__mono_us();
        progress(r, now, out, &next_progress);
        int64_t next_deadline = stop_due_groups(r, now);
        if (next < n && now - r->t0 >= acts[next].at_us) {
            action *a = &acts[next++];
            const lb_event *e = &sc->events[a->event];
            lb_fault_record *f = &out->faults[a->event];
            bool ok = apply(r, e, a->ending);
            if (!a->ending) {
                f->applied = ok;
                f->start_us = ok ? dlock__mono_us() - r->t0 : -1;
                out->faults_applied += ok;
            } else if (f->applied) {
                f->end_us = dlock__mono_us() - r->t0;
            }
            continue;
        }
        int64_t wake = next < n ? r->t0 + acts[next].at_us : INT64_MAX;
        wait_for(r, next_deadline < wake ? next_deadline : wake);
    }
    /* Faults still open when the clients finished end with the run; heal what we broke. */
    for (; next < n; next++) {
        action *a = &acts[next];
        if (a->ending && out->faults[a->event].applied) {
            apply(r, &sc->events[a->event], true);
            out->faults[a->event].end_us = dlock__mono_us() - r->t0;
        }
    }
    if (r->t->progress && dlock__mono_us() - r->t0 >= 1000000)
        fputc('\n', stderr);
    free(acts);
}

/* ---- the run ---------------------------------------------------------------- */

/* The real windows of the faults, once the run is over. A "when": "holding" event counts from
 * the moment it fired (if it ever did), not from when it was armed; a fault with no end of its
 * own (a kill without restart, a clock skew) lasts to the end of the run. */
static void record_windows(run *r, lb_run_result *out)
{
    for (size_t i = 0; i < r->sc->nevents; i++) {
        const lb_event *e = &r->sc->events[i];
        lb_fault_record *f = &out->faults[i];
        if (e->when_holding) {
            bool did = atomic_load(&r->fired_start[i]) >= 0;
            out->faults_applied -= f->applied && !did;
            f->applied = did;
            f->start_us = did ? atomic_load(&r->fired_start[i]) : -1;
            f->end_us = did && e->action == LB_EV_PAUSE ? atomic_load(&r->fired_end[i]) : -1;
        } else if (f->applied && f->end_us < 0 &&
                   ((e->action == LB_EV_KILL_SERVER && e->restart_after_ms < 0) ||
                    e->action == LB_EV_CLOCK_SKEW)) {
            f->end_us = out->elapsed_us;
        }
    }
}

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
    size_t id = 0;
    for (size_t g = 0; g < r->sc->ngroups; g++) {
        for (int64_t k = 0; k < r->sc->groups[g].count; k++, id++) {
            client *c = &r->clients[id];
            c->run = r;
            c->id = (int)id;
            c->group = g;
            c->g = &r->sc->groups[g];
            c->out = &out->clients[id];
            c->out->client = (int)id;
            c->out->group = g;
            c->out->acquire_hist = lb_hist_new();
            c->out->timeout_hist = lb_hist_new();
            c->rng = (r->sc->seed + 1) * 0x9E3779B97F4A7C15ULL ^ (id + 1) * 0xBF58476D1CE4E5B9ULL;
            ctl_init(&c->ctl);
            c->delays = calloc(r->sc->nevents + 1, sizeof *c->delays);
            if (!c->out->acquire_hist || !c->out->timeout_hist || !c->delays ||
                assign_key(r, c) < 0 || client_urls(r, c) < 0) {
                if (!r->err[0])
                    snprintf(r->err, sizeof r->err, "client %zu: out of memory", id);
                return -1;
            }

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
    r->n = sc->nclients;
    r->clients = calloc(r->n, sizeof *r->clients);
    r->keys = calloc(r->n, sizeof *r->keys);
    r->fired_start = calloc(sc->nevents + 1, sizeof *r->fired_start);
    r->deadline = calloc(sc->ngroups, sizeof *r->deadline);
    r->stopped = calloc(sc->ngroups, sizeof *r->stopped);
    r->fired_end = calloc(sc->nevents + 1, sizeof *r->fired_end);
    out->clients = calloc(r->n, sizeof *out->clients);
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
        describe(&sc->events[i], &out->faults[i]);
        atomic_store(&r->fired_start[i], -1);
        atomic_store(&r->fired_end[i], -1);
    }
    if (prepare_clients(r, out) < 0)
        return -1;
    if (!(r->oracle = lb_oracle_new(r->nkeys))) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        client *c = &r->clients[i];
        int64_t d = c->g->workload.duration_ms;
        lb_wl_init(&c->wl, c->g, c->key, c->out, r->oracle, &c->rng, &c->done_acquisitions,
                   d >= 0 ? d * 1000 : INT64_MAX);
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
        notify(r, c);
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
    run r = {0};
    size_t started = 0;
    int rc = init_run(&r, sc, t, out);
    r.driver = lb_scenario_driver(sc);
    if (rc == 0)
        rc = r.driver == LB_DRIVER_LOOP ? rn_loops_start(&r, &started) : start_threads(&r, &started);
    atomic_store(&r.running, (int)started);  /* none can finish before the barrier opens */
    if (rc < 0 && started == 0) {
        snprintf(err, errlen, "%s", r.err);
        free_run(&r);
        lb_run_result_free(out);
        return -1;
    }
    /* Threads that did start wait at the barrier; a partial start is aborted through it. */
    open_barrier(&r, started);
    if (!r.abort) {
        watch_servers(&r);
        schedule(&r, out);
    }
    lb_health_stop(t->health);
    if (r.driver == LB_DRIVER_LOOP)
        rn_loops_join(&r);
    else
        for (size_t i = 0; i < started; i++)
            pthread_join(r.clients[i].thread, NULL);
    for (size_t i = 0; i < started; i++)
        rn_client_disconnect(&r.clients[i]);
    if (r.abort || atomic_load(&r.failed)) {
        snprintf(err, errlen, "%s", r.err[0] ? r.err : "clients could not start");
        free_run(&r);
        lb_run_result_free(out);
        return -1;
    }
    for (size_t i = 0; i < r.n; i++)
        if (out->clients[i].end_us > out->elapsed_us)
            out->elapsed_us = out->clients[i].end_us;
    record_windows(&r, out);
    out->complete = !atomic_load(&stop_requested);
    out->nkeys = (int64_t)r.nkeys;
    out->driver = r.driver;
    out->overlaps = lb_oracle_overlaps(r.oracle);
    out->counter_actual = read_counters(&r);
    free_run(&r);
    return 0;
}

void lb_run_result_free(lb_run_result *r)
{
    for (size_t i = 0; r && i < r->nclients; i++) {
        lb_hist_free(r->clients[i].acquire_hist);
        lb_hist_free(r->clients[i].timeout_hist);
        lb_acq_log_free(&r->clients[i].log);
    }
    if (r) {
        free(r->clients);
        free(r->faults);
        memset(r, 0, sizeof *r);
    }
}
