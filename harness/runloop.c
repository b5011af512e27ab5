/* runloop.c -- the run stage's event-loop driver: a few threads, each running a share of the
 * clients on a dlock_loop.
 *
 * A thread per client spends a run of fifty clients on two cores switching between threads; on
 * a loop, one thread serves many clients, as redis-benchmark does. Each client runs the same
 * workload machine (workload.c) as a client thread does, its steps carried out with the lock
 * core's _async calls, a non-blocking connection to the protected resource, and timers for the
 * start, the hold and the think time.
 *
 * It runs every scenario: faults reach its clients through a notice on their loop, renewals are
 * the loop's timers, and fenced reads and writes go through the _async fenced calls. The main
 * thread still stops the groups at their deadline (dlock_client_interrupt wakes the loop) and
 * shows the progress line; a 100 ms tick on each loop ends think-time sleeps once Ctrl-C asked
 * the run to stop. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connect.h"
#include "endpoint.h"
#include "monotonic.h"
#include "runner_priv.h"

#define TICK_US 100000

typedef struct worker worker;

typedef enum {
    LC_IDLE,
    LC_SLEEP,        /* the timer: the start or the think time */
    LC_BUSY,         /* a lock or resource call is out */
    LC_HOLD,         /* the timer: the hold */
    LC_FROZEN,       /* the timer: a "when": "holding" pause */
    LC_DOWN,         /* crashed; the timer: its restart */
    LC_DONE
} lc_state;

typedef void (*res_fn)(rn_loop_client *lc, redisReply *r);  /* r NULL: no answer */
typedef struct res_wait res_wait;

/* A loop thread's connection to the protected resource, and who waits for its replies. */
typedef struct res_pipe {
    worker *w;
    redisContext *ctx;           /* NULL until a command needs it, and after a failure */
    dlock_watch *watch;
    dlock_timer *timer;          /* the oldest command's deadline */
    res_wait *q;                 /* a ring: who asked, oldest first */
    size_t head, n, cap;
} res_pipe;

struct rn_loop_client {
    worker *w;
    client *c;
    dlock_options o;
    lc_state state;
    dlock_timer *timer;          /* start, think, hold, a holding pause, a restart */
    dlock *l;
    char counter[600];
    atomic_bool dirty;           /* the scheduler changed its control block */
    bool paused;                 /* a pause is in effect: the workload takes no step */
    bool stashed;                /* a step came due while paused */
    lb_wl_input stash;
    int frozen_event;            /* LC_FROZEN: the event (index + 1) and when it fired */
    int64_t frozen_at_us;
    unsigned restart_seen;       /* LC_DOWN: the crash events seen */
};

struct worker {
    run *r;
    dlock_loop *loop;
    atomic_bool dirty;           /* some client's control block changed */
    res_pipe res;
    rn_loop_client *lcs;
    size_t n;
    size_t active;               /* clients not yet finished */
    dlock_timer *tick;
    pthread_t thread;
};

struct rn_loops {
    size_t n;
    worker *w;
};

static void pump(rn_loop_client *lc, lb_wl_input in);

/* ---- the protected resource: one pipelined connection per loop thread -------------------------
 * A loop's clients share one connection to the protected store: their commands are written as
 * they come and Redis answers in order, so the replies are matched to a queue of who asked.
 * Ten thousand clients then cost the store a few connections, not ten thousand, and a
 * workload whose critical section is "none" opens none at all. A reply late past the command
 * timeout, or a broken connection, fails every command waiting (their clients see no answer,
 * as each did on a connection of its own) and the next command reconnects. */

typedef struct res_wait {
    rn_loop_client *lc;          /* NULL once its client crashed: the reply goes to nobody */
    res_fn fn;
    int64_t deadline_us;
} res_wait;

static void res_close(res_pipe *p)
{
    dlock_watch_free(p->watch);
    p->watch = NULL;
    if (p->ctx)
        redisFree(p->ctx);
    p->ctx = NULL;
    dlock_timer_stop(p->timer);
}

/* The oldest command waiting, taken off the queue. */
static res_wait res_pop(res_pipe *p)
{
    res_wait w = p->q[p->head];
    p->head = (p->head + 1) % p->cap;
    p->n--;
    return w;
}

static void res_arm(res_pipe *p)
{
    if (p->n == 0)
        dlock_timer_stop(p->timer);
    else
        dlock_timer_start(p->timer, p->q[p->head].deadline_us - dlock__mono_us());
}

/* The connection went away or out of step: it is dropped, and every command waiting on it has
 * no answer. Their callbacks may send anew: that goes on a new connection. */
static void res_fail(res_pipe *p)
{
    res_close(p);
    while (p->n > 0) {
        res_wait w = res_pop(p);
        if (w.lc)
            w.fn(w.lc, NULL);
    }
}

/* Writes what is buffered; false when the connection failed (and was dropped). */
static bool res_flush(res_pipe *p)
{
    int done = 0;
    dlock__pipe_guard g;
    dlock__sigpipe_block(&g);
    int rc = redisBufferWrite(p->ctx, &done);
    dlock__sigpipe_unblock(&g, rc != REDIS_OK);
    if (rc != REDIS_OK) {
        res_fail(p);
        return false;
    }
    dlock_watch_want_write(p->watch, !done);  /* a full socket: the rest when it drains */
    return true;
}

static void res_io(void *ud, bool readable, bool writable)
{
    res_pipe *p = ud;
    if (writable && !res_flush(p))
        return;
    if (!readable)
        return;
    if (redisBufferRead(p->ctx) != REDIS_OK) {
        res_fail(p);
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (!p->ctx || redisGetReplyFromReader(p->ctx, &reply) != REDIS_OK) {
            if (p->ctx)
                res_fail(p);
            return;
        }
        if (!reply)
            break;
        if (p->n == 0) {  /* nobody asked: the stream is out of step */
            freeReplyObject(reply);
            res_fail(p);
            return;
        }
        res_wait w = res_pop(p);
        if (w.lc)
            w.fn(w.lc, reply);
        freeReplyObject(reply);
    }
    res_arm(p);
}

static void res_timeout(void *ud)
{
    res_fail(ud);
}

static bool res_open(res_pipe *p, const char *url)
{
    char err[200];
    if (!(p->ctx = lb_endpoint_connect(url, 2000, err, sizeof err)))
        return false;
    int fl = fcntl(p->ctx->fd, F_GETFL);
    if (fl < 0 || fcntl(p->ctx->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        !(p->watch = dlock_watch_new(p->w->loop, p->ctx->fd, res_io, p))) {
        res_close(p);
        return false;
    }
    p->ctx->flags &= ~REDIS_BLOCK;  /* hiredis now takes EAGAIN as "not yet" */
    return true;
}

static bool res_push(res_pipe *p, rn_loop_client *lc, res_fn fn, int64_t timeout_us)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        res_wait *q = malloc(cap * sizeof *q);
        if (!q)
            return false;
        for (size_t i = 0; i < p->n; i++)
            q[i] = p->q[(p->head + i) % p->cap];
        free(p->q);
        p->q = q;
        p->cap = cap;
        p->head = 0;
    }
    p->q[(p->head + p->n++) % p->cap] = (res_wait){lc, fn, dlock__mono_us() + timeout_us};
    if (p->n == 1)
        res_arm(p);
    return true;
}

/* Sends one command to the resource for lc; fn gets the reply (NULL when there is none). */
static void res_command(rn_loop_client *lc, res_fn fn, const char *fmt, ...)
{
    res_pipe *p = &lc->w->res;
    client *c = lc->c;
    va_list ap;
    if (!p->ctx && !res_open(p, c->run->t->resource_url)) {
        fn(lc, NULL);
        return;
    }
    va_start(ap, fmt);
    int rc = redisvAppendCommand(p->ctx, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK || !res_push(p, lc, fn, c->g->lock.command_timeout_ms * 1000)) {
        fn(lc, NULL);
        res_fail(p);  /* what was appended has nobody to answer */
        return;
    }
    res_flush(p);
}

/* A crashed client's commands still in flight: their replies go to nobody. */
static void res_forget(rn_loop_client *lc)
{
    res_pipe *p = &lc->w->res;
    for (size_t i = 0; i < p->n; i++)
        if (p->q[(p->head + i) % p->cap].lc == lc)
            p->q[(p->head + i) % p->cap].lc = NULL;
}

/* ---- the workload's steps ---------------------------------------------------------------- */

static void carry(rn_loop_client *lc, lb_wl_step s);
static void restart(rn_loop_client *lc);
static void thaw_holding(rn_loop_client *lc);

static void on_timer(void *ud)
{
    rn_loop_client *lc = ud;
    lc_state was = lc->state;
    lc->state = LC_BUSY;
    if (was == LC_DOWN)
        restart(lc);
    else if (was == LC_FROZEN)
        thaw_holding(lc);
    else
        pump(lc, (lb_wl_input){0});
}

static void end_client(rn_loop_client *lc)
{
    client *c = lc->c;
    dlock_timer_stop(lc->timer);
    lc->state = LC_DONE;
    rn_count_commands(c);
    rn_finish(c);
    lc->w->active--;
}

#ifdef LOCKBENCH_SLOWDOWN_US
/* Only in builds that check the gate itself (scripts/gate.sh, GATE_SLOWDOWN_US): every acquire
 * costs this many microseconds more of the loop's CPU before its outcome is seen, as a slower
 * lock core would. Spun, not slept: the CPU a slower core burns is what Redis and the other
 * clients then lack on a busy machine. */
static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* In nanoseconds, so a fraction of a microsecond (2.5) is honoured. */
static void slow_down(void)
{
    int64_t until = mono_ns() + (int64_t)(1000.0 * (LOCKBENCH_SLOWDOWN_US));
    while (mono_ns() < until)
        ;
}
#endif

static void on_acquired(void *ud, int rc, dlock *l)
{
    rn_loop_client *lc = ud;
#ifdef LOCKBENCH_SLOWDOWN_US
    slow_down();
#endif
    dlock_stats last;
    dlock_client_stats(lc->c->lock, NULL, &last);
    lc->l = l;
    pump(lc, (lb_wl_input){.rc = rc, .attempts = (uint32_t)last.attempts,
                           .commands = (uint32_t)last.commands,
                           .fence = rc == DLOCK_OK ? dlock_fencing_token(l) : 0});
}

static void on_done(void *ud, int rc)
{
    pump(ud, (lb_wl_input){.rc = rc});
}

static void on_read(rn_loop_client *lc, redisReply *r)
{
    bool ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
    pump(lc, (lb_wl_input){.ok = ok, .value = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0});
}

static void on_fenced_read(void *ud, int rc, const char *value)
{
    pump(ud, (lb_wl_input){.rc = rc, .ok = rc == DLOCK_OK, .value = value ? atoll(value) : 0});
}

static void on_set(rn_loop_client *lc, redisReply *r)
{
    pump(lc, (lb_wl_input){.rc = r && r->type == REDIS_REPLY_STATUS ? DLOCK_OK : DLOCK_EIO});
}

static void on_incr(rn_loop_client *lc, redisReply *r)
{
    pump(lc, (lb_wl_input){.ok = r && r->type == REDIS_REPLY_INTEGER});
}

/* inside_check: the INCR or DECR of <counter>:inside, and its reply. */
static void on_inside(rn_loop_client *lc, redisReply *r)
{
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    pump(lc, (lb_wl_input){.ok = ok, .value = ok ? r->integer : 0});
}

/* Waits on the client's timer until until_us (since the start barrier). */
static void wait_until(rn_loop_client *lc, int64_t until_us, lc_state state)
{
    lc->state = state;
    dlock_timer_start(lc->timer, lc->c->run->t0 + until_us - dlock__mono_us());
}

/* The lock clients of a paused process take no step either: no traffic, no renewals. */
static void freeze(rn_loop_client *lc, bool frozen)
{
    dlock_client_freeze(lc->c->lock, frozen);
    dlock_client_freeze(lc->c->fenced, frozen);
}

/* The holding point: a "when": "holding" crash stops the client here; a pause freezes it for
 * its duration. false when the step is left to the timer. */
static bool holding_point(rn_loop_client *lc, lb_wl_input *in)
{
    rn_holding h = rn_take_holding(lc->c);
    in->crashed = h.crashed;
    if (h.pause == 0)
        return true;
    lc->frozen_event = h.pause;
    lc->frozen_at_us = h.now_us;
    freeze(lc, true);
    wait_until(lc, h.now_us + h.pause_us, LC_FROZEN);
    return false;
}

static void thaw_holding(rn_loop_client *lc)
{
    rn_fired(lc->c->run, lc->frozen_event - 1, lc->frozen_at_us, rn_since_t0(lc->c));
    if (!lc->paused)
        freeze(lc, false);
    pump(lc, (lb_wl_input){0});
}

/* Down until restart_after_ms has passed since the latest crash event: one that arrives while
 * the client is down starts the count again (or keeps it down for good). false: for good. */
static bool stay_down(rn_loop_client *lc)
{
    client *c = lc->c;
    pthread_mutex_lock(&c->ctl.mu);
    int64_t after = c->ctl.stopping ? -1 : c->ctl.restart_after_us;
    lc->restart_seen = c->ctl.crashes;
    pthread_mutex_unlock(&c->ctl.mu);
    if (after < 0)
        return false;
    lc->state = LC_DOWN;
    dlock_timer_start(lc->timer, after);
    return true;
}

/* The client is down: its lock is dropped unreleased and its connections cut. */
static void down(rn_loop_client *lc)
{
    client *c = lc->c;
    if (lc->l)
        dlock_abandon(lc->l);
    lc->l = NULL;
    res_forget(lc);
    rn_client_disconnect(c);
    c->out->crashes++;
    c->out->crashed = true;
    lc->paused = lc->stashed = false;
    if (!stay_down(lc))
        end_client(lc);
}

static bool connect_on_loop(rn_loop_client *lc, char *err, size_t errlen);

static void restart(rn_loop_client *lc)
{
    client *c = lc->c;
    char err[256];
    pthread_mutex_lock(&c->ctl.mu);
    bool again = c->ctl.crashes != lc->restart_seen;
    pthread_mutex_unlock(&c->ctl.mu);
    if (again) {  /* crashed again while down: the count starts anew */
        if (!stay_down(lc))
            end_client(lc);
        return;
    }
    pthread_mutex_lock(&c->ctl.mu);
    c->ctl.crashed = false;
    c->ctl.restart_after_us = -1;
    pthread_mutex_unlock(&c->ctl.mu);
    if (rn_out_of_time(c) || !connect_on_loop(lc, err, sizeof err)) {
        end_client(lc);
        return;
    }
    c->out->crashed = false;
    lb_wl_input in = {.now_us = rn_since_t0(c), .stop = lb_runner_stopped()};
    carry(lc, lb_wl_restart(&c->wl, &in));
}

/* Feeds the workload machine what became of its last step, unless the client is paused: then
 * the outcome waits for the pause to end, as it would in a stopped process. */
static void pump(rn_loop_client *lc, lb_wl_input in)
{
    if (lc->paused) {
        lc->stash = in;
        lc->stashed = true;
        return;
    }
    client *c = lc->c;
    in.now_us = rn_since_t0(c);
    in.stop = lb_runner_stopped();
    carry(lc, lb_wl_next(&c->wl, &in));
}

/* Carries out the machine's steps, up to one that completes later (a callback or the timer
 * pumps again). */
static void carry(rn_loop_client *lc, lb_wl_step s)
{
    client *c = lc->c;
    char buf[32];
    for (;;) {
        lb_wl_input in = {0};
        switch (s.what) {
        case LB_WL_ACQUIRE:
            lc->state = LC_BUSY;
            in.rc = dlock_acquire_async(c->lock, c->run->keys[c->key], &lc->o, on_acquired, lc);
            if (in.rc == DLOCK_OK)
                return;
            break;  /* refused at once: no call went out */
        case LB_WL_READ:
            if (s.fence == 0) {
                res_command(lc, on_read, "GET %s", lc->counter);
                return;
            }
            in.rc = dlock_fenced_read_async(c->fenced, lc->counter, lc->l, on_fenced_read, lc);
            if (in.rc == DLOCK_OK)
                return;
            break;
        case LB_WL_WRITE:
            if (s.fence == 0) {
                res_command(lc, on_set, "SET %s %lld", lc->counter, s.value);
                return;
            }
            snprintf(buf, sizeof buf, "%lld", s.value);
            in.rc = dlock_fenced_write_async(c->fenced, lc->counter, lc->l, buf, on_done, lc);
            if (in.rc == DLOCK_OK)
                return;
            break;
        case LB_WL_INCR:
            res_command(lc, on_incr, "INCR %s", lc->counter);
            return;
        case LB_WL_ENTER:
        case LB_WL_EXIT:
            res_command(lc, on_inside, s.what == LB_WL_ENTER ? "INCR %s:inside" : "DECR %s:inside",
                        lc->counter);
            return;
        case LB_WL_HOLDING:
            if (!holding_point(lc, &in))
                return;
            break;
        case LB_WL_HOLD:
            wait_until(lc, s.until_us, LC_HOLD);
            return;
        case LB_WL_RELEASE:
            in.rc = dlock_release_async(lc->l, on_done, lc);
            if (in.rc != DLOCK_OK)
                dlock_abandon(lc->l);
            lc->l = NULL;
            if (in.rc == DLOCK_OK)
                return;
            break;
        case LB_WL_KEEP:
            dlock_abandon(lc->l);
            lc->l = NULL;
            break;
        case LB_WL_THINK:
            wait_until(lc, s.until_us, LC_SLEEP);
            return;
        case LB_WL_CRASHED:
            down(lc);
            return;
        case LB_WL_DONE:
        default:
            end_client(lc);
            return;
        }
        in.now_us = rn_since_t0(c);
        in.stop = lb_runner_stopped();
        s = lb_wl_next(&c->wl, &in);
    }
}

/* ---- faults from the scheduler ------------------------------------------------------------ */

/* The scheduler's side (any thread): mark the client and wake its loop. */
static void notify(client *c)
{
    rn_loop_client *lc = c->lc;
    atomic_store(&lc->dirty, true);
    atomic_store(&lc->w->dirty, true);
    dlock_loop_wake(lc->w->loop);
}

/* A crash stops whatever the client was doing, there and then. */
static void crash(rn_loop_client *lc)
{
    dlock_timer_stop(lc->timer);
    res_forget(lc);  /* an answer still to come goes to nobody */
    lc->paused = lc->stashed = false;
    lc->state = LC_BUSY;
    client *c = lc->c;
    lb_wl_input in = {.now_us = rn_since_t0(c), .crashed = true, .rc = DLOCK_ECANCELED,
                      .stop = lb_runner_stopped()};
    carry(lc, lb_wl_next(&c->wl, &in));
}

static void set_paused(rn_loop_client *lc, bool paused)
{
    if (lc->paused == paused)
        return;
    lc->paused = paused;
    if (lc->state != LC_FROZEN)  /* a holding pause thaws on its own timer */
        freeze(lc, paused);
    if (!paused && lc->stashed) {
        lc->stashed = false;
        pump(lc, lc->stash);
    }
}

/* The loop's side: what the scheduler changed, applied on the client's own thread. */
static void apply_ctl(rn_loop_client *lc)
{
    client *c = lc->c;
    pthread_mutex_lock(&c->ctl.mu);
    bool crashed = c->ctl.crashed, paused = c->ctl.paused > 0, stopping = c->ctl.stopping;
    pthread_mutex_unlock(&c->ctl.mu);
    if (lc->state == LC_DONE)
        return;
    if (lc->state == LC_DOWN) {
        if (stopping)
            end_client(lc);  /* no restart after the deadline */
        return;
    }
    if (crashed) {
        crash(lc);
        return;
    }
    set_paused(lc, paused);
}

static void apply_changes(worker *w)
{
    if (!atomic_exchange(&w->dirty, false))
        return;
    for (size_t i = 0; i < w->n; i++)
        if (atomic_exchange(&w->lcs[i].dirty, false))
            apply_ctl(&w->lcs[i]);
}

/* ---- the loop threads --------------------------------------------------------------------- */

/* Every 100 ms: once the run is asked to stop, sleeps between iterations end now. */
static void on_tick(void *ud)
{
    worker *w = ud;
    if (lb_runner_stopped()) {
        for (size_t i = 0; i < w->n; i++) {
            rn_loop_client *lc = &w->lcs[i];
            if (lc->state == LC_SLEEP) {
                dlock_timer_stop(lc->timer);
                lc->state = LC_BUSY;
                pump(lc, (lb_wl_input){0});
            }
        }
    }
    dlock_timer_start(w->tick, TICK_US);
}

/* The client's connections, on its loop: the lock client, the fenced client (with fencing)
 * and the protected resource. No hook: faults reach a loop client through apply_ctl. */
static bool connect_on_loop(rn_loop_client *lc, char *err, size_t errlen)
{
    client *c = lc->c;
    if (!rn_client_connect(c, false, false, err, errlen))
        return false;
    dlock_client *on[2] = {c->lock, c->fenced};
    for (int i = 0; i < 2; i++) {
        if (on[i] && dlock_client_attach(on[i], lc->w->loop) != DLOCK_OK) {
            snprintf(err, errlen, "cannot move the client onto its loop: %s",
                     dlock_client_errstr(on[i]));
            return false;
        }
    }
    return true;
}

static bool setup_client(worker *w, rn_loop_client *lc, char *err, size_t errlen)
{
    client *c = lc->c;
    lc->w = w;
    rn_options_of(c, &lc->o);
    snprintf(lc->counter, sizeof lc->counter, "%s:counter", c->run->keys[c->key]);
    if (!(lc->timer = dlock_timer_new(w->loop, on_timer, lc))) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return connect_on_loop(lc, err, errlen);
}

static void teardown(worker *w)
{
    for (size_t i = 0; i < w->n; i++) {
        rn_loop_client *lc = &w->lcs[i];
        rn_client_disconnect(lc->c);  /* the lock client leaves the loop before the loop goes */
        dlock_timer_free(lc->timer);
    }
    res_close(&w->res);
    dlock_timer_free(w->res.timer);
    free(w->res.q);
    dlock_timer_free(w->tick);
    dlock_loop_free(w->loop);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char err[256];
    bool resource = false;
    for (size_t i = 0; i < w->n; i++) {
        if (!setup_client(w, &w->lcs[i], err, sizeof err))
            rn_setup_failed(w->lcs[i].c, err);
        resource |= w->lcs[i].c->g->workload.critical_section != LB_CS_NONE;
    }
    /* the thread's one connection to the store, if any of its clients writes there */
    if (resource && w->n > 0 && !res_open(&w->res, w->r->t->resource_url))
        rn_setup_failed(w->lcs[0].c, "protected resource: cannot connect");
    if (rn_start_barrier(w->r, w->n)) {
        w->active = w->n;
        dlock_timer_start(w->tick, TICK_US);
        for (size_t i = 0; i < w->n; i++)
            pump(&w->lcs[i], (lb_wl_input){0});
        while (w->active > 0) {
            if (dlock_loop_run(w->loop, -1) < 0 && errno != EINTR)
                break;  /* epoll failed: nothing more can happen on this loop */
            apply_changes(w);
        }
    }
    for (size_t i = 0; i < w->n; i++) {
        if (w->lcs[i].state != LC_DONE) {
            rn_count_commands(w->lcs[i].c);
            rn_finish(w->lcs[i].c);
        }
    }
    return NULL;  /* the loop stays until rn_loops_join: the scheduler may still wake it */
}

/* Half the cores, the other half left to Redis (redis-server is one thread; a loop thread
 * keeps one core busy), at least one, and never more threads than clients. */
size_t rn_loop_threads(size_t nclients)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = cpus > 1 ? (size_t)cpus / 2 : 1;
    return n < nclients ? n : nclients > 0 ? nclients : 1;
}

int rn_loops_start(run *r, size_t *started)
{
    size_t nw = rn_loop_threads(r->n);
    *started = 0;
    rn_loops *ls = calloc(1, sizeof *ls);
    if (!ls || !(ls->w = calloc(nw, sizeof *ls->w))) {
        free(ls);
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    r->loops = ls;
    r->notify = notify;
    for (size_t k = 0; k < nw; k++) {
        worker *w = &ls->w[k];
        char err[200];
        w->r = r;
        w->res.w = w;
        w->n = r->n / nw + (k < r->n % nw);
        if (!(w->lcs = calloc(w->n ? w->n : 1, sizeof *w->lcs)) ||
            !(w->loop = dlock_loop_new(err, sizeof err)) ||
            !(w->tick = dlock_timer_new(w->loop, on_tick, w)) ||
            !(w->res.timer = dlock_timer_new(w->loop, res_timeout, &w->res))) {
            snprintf(r->err, sizeof r->err, "cannot set up loop %zu: %s", k,
                     w->loop ? "out of memory" : err);
            break;
        }
        /* clients dealt round-robin, so each loop gets a share of every group */
        for (size_t i = 0; i < w->n; i++) {
            w->lcs[i].c = &r->clients[k + i * nw];
            w->lcs[i].c->lc = &w->lcs[i];
        }
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(r->err, sizeof r->err, "cannot start loop thread %zu: %s", k, strerror(rc));
            break;
        }
        ls->n++;
        *started += w->n;
    }
    /* a worker that did not start owns nothing the others need */
    for (size_t k = ls->n; k < nw; k++) {
        dlock_timer_free(ls->w[k].res.timer);
        dlock_timer_free(ls->w[k].tick);
        dlock_loop_free(ls->w[k].loop);
        free(ls->w[k].lcs);
    }
    return ls->n == nw ? 0 : -1;
}

void rn_loops_join(run *r)
{
    rn_loops *ls = r->loops;
    if (!ls)
        return;
    for (size_t k = 0; k < ls->n; k++) {
        pthread_join(ls->w[k].thread, NULL);
        teardown(&ls->w[k]);
        free(ls->w[k].lcs);
    }
    free(ls->w);
    free(ls);
    r->loops = NULL;
}
