/* async.c -- the lock calls on an event loop: many clients on one thread.
 *
 * Each attached client runs one operation at a time: the same machine as the blocking driver
 * (op.c), with an exchange that writes the batch and returns (client.c reads the replies as
 * they come and reports through the hooks it was given), and a timer instead of a sleep. An
 * operation's machine and its replies are one allocation made when it starts; nothing here
 * allocates per command. The loop itself (loop.c) knows nothing of clients: this file hangs its
 * list of attached clients on it, to end their waits when they are interrupted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct dlock__async dlock__async;

/* An operation in flight: its machine and the replies of its exchange, one allocation made
 * when it starts, so an idle client carries neither. */
typedef struct flight {
    dlock__op op;
    dlock__answers ans;
    dlock_action act;          /* what its machine said last */
    bool canceled;             /* the hook refused the batch */
    bool frees_lock;           /* DLOCK__OP_RUN: the lock is the operation's own (a fenced write
                                  or read) */
} flight;

typedef struct dlock__loop_renewal renewal;

/* A client's part in the loop: its operation and what it reports to. */
struct dlock__async {
    dlock_loop *loop;
    flight *f;                 /* the operation in flight, or NULL */
    dlock_timer *timer;        /* the operation's sleeps, and completions deferred out of a start */
    bool busy;                 /* an operation is in flight */
    bool frozen;               /* dlock_client_freeze: the operation takes no step */
    bool held;                 /* a step came due while frozen */
    bool sleeping;             /* the timer goes on with the operation: a sleep, or a step
                                  deferred to the next round */
    bool completing;           /* the timer delivers the result */
    bool starting;             /* inside the call that started it: callbacks must wait */
    uint64_t interrupt_pass;   /* the last deliver_interrupts pass that woke it */
    dlock_acquired_fn acquired;
    dlock_done_fn done;
    dlock_value_fn got;        /* a fenced read's (DLOCK__OP_RUN with the read step) */
    void *ud;
    dlock_client *renewer;     /* extends its renewed locks: a clone on the same loop */
    renewal *renewals;         /* its renewed locks */
};

/* ---- clients on the loop --------------------------------------------------------------- */

/* The clients attached to one loop, hung on it (loop.c's ext), to end their waits when they are
 * interrupted from another thread. */
typedef struct roster {
    dlock_client **clients;
    size_t n, cap;
    uint64_t pass;             /* counts deliver_interrupts passes */
} roster;

static void async_timer(void *ud);
static void deliver_interrupts(void *ext);
static void advance(dlock_client *c, dlock__async *a);
static void renewals_free(dlock__async *a);
static void renewals_kick(dlock__async *a);
static int start_op(dlock_client *c, dlock__async *a, dlock *l, dlock__op_kind kind,
                    int64_t ttl_ms, dlock__step_fn step, bool frees_lock);

static void roster_free(void *ext)
{
    roster *r = ext;
    if (r)
        free(r->clients);
    free(r);
}

static roster *roster_of(dlock_loop *lp)
{
    roster *r = dlock__loop_ext(lp);
    if (!r && (r = calloc(1, sizeof *r)))
        dlock__loop_set_ext(lp, r, deliver_interrupts, roster_free);
    return r;
}

static bool roster_add(roster *r, dlock_client *c)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        dlock_client **cs = realloc(r->clients, cap * sizeof *cs);
        if (!cs)
            return false;
        r->clients = cs;
        r->cap = cap;
    }
    r->clients[r->n++] = c;
    return true;
}

static void roster_remove(roster *r, dlock_client *c)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->clients[i] == c) {
            r->clients[i] = r->clients[--r->n];
            return;
        }
    }
}

static dlock__async *async_of(const dlock_client *c)
{
    return c ? dlock__client_io_data(c) : NULL;
}

/* ---- what client.c is given to reach the loop (dlock__io) ----------------------------------- */

static void *io_watch(void *loop, int fd, dlock_io_fn fn, void *ud)
{
    return dlock_watch_new(loop, fd, fn, ud);
}

static void io_want_write(void *w, bool on)
{
    dlock_watch_want_write(w, on);
}

static void io_unwatch(void *w)
{
    dlock_watch_free(w);
}

static void *io_timer(void *loop, dlock_timer_fn fn, void *ud)
{
    return dlock_timer_new(loop, fn, ud);
}

static void io_timer_start(void *t, int64_t after_us)
{
    dlock_timer_start(t, after_us);
}

static void io_timer_stop(void *t)
{
    dlock_timer_stop(t);
}

static void io_timer_free(void *t)
{
    dlock_timer_free(t);
}

static void io_wake(void *loop)
{
    dlock_loop_wake(loop);
}

static void io_exchanged(dlock_client *c)
{
    advance(c, async_of(c));
}

static void io_detach(dlock_client *c);

static const dlock__io loop_io = {
    .watch = io_watch,
    .want_write = io_want_write,
    .unwatch = io_unwatch,
    .timer = io_timer,
    .timer_start = io_timer_start,
    .timer_stop = io_timer_stop,
    .timer_free = io_timer_free,
    .wake = io_wake,
    .exchanged = io_exchanged,
    .detach = io_detach,
};

int dlock_client_attach(dlock_client *c, dlock_loop *lp)
{
    if (!c || !lp || async_of(c))
        return DLOCK_EINVAL;
    if (dlock__client_ext(c)) {
        dlock__client_set_err(c, "a client with a watchdog cannot move onto a loop");
        return DLOCK_EINVAL;
    }
    roster *r = roster_of(lp);
    dlock__async *a = calloc(1, sizeof *a);
    if (!r || !a || !(a->timer = dlock_timer_new(lp, async_timer, c)) || !roster_add(r, c)) {
        if (a)
            dlock_timer_free(a->timer);
        free(a);
        return DLOCK_ENOMEM;
    }
    a->loop = lp;
    if (dlock__client_attach_io(c, &loop_io, lp, a) != DLOCK_OK) {
        roster_remove(r, c);
        dlock_timer_free(a->timer);
        free(a);
        return DLOCK_ENOMEM;
    }
    return DLOCK_OK;
}

/* What a client on a loop takes beyond its own block: its part here and its two timers (its
 * operation's and its exchange's deadline). */
size_t dlock__async_footprint(void)
{
    return sizeof(dlock__async) + 2 * dlock__timer_size();
}

/* Called by dlock_client_free, through the hooks. */
static void io_detach(dlock_client *c)
{
    dlock__async *a = async_of(c);
    if (!a)
        return;
    roster_remove(dlock__loop_ext(a->loop), c);
    dlock_client_free(a->renewer);  /* first: its extend in flight runs on a renewal's copy */
    renewals_free(a);
    if (a->f) {
        dlock__op *op = &a->f->op;
        dlock__answers_clear(&a->f->ans);
        if (op->kind == DLOCK__OP_ACQUIRE || op->kind == DLOCK__OP_RELEASE || a->f->frees_lock)
            dlock__lock_free(op->l);
        dlock__op_clear(op);
        free(a->f);
    }
    dlock_timer_free(a->timer);
    free(a);
}

/* ---- renewals on the loop ------------------------------------------------------------------
 * A lock taken with renew is extended every third of its lease, as the watchdog thread does for
 * the blocking calls, by a timer on the loop. The extends go out on the client's renewer -- a
 * clone attached to the same loop, so they never wait behind the owner's own operation -- one at
 * a time, on a copy of the lock (its step state is the renewer's). An extend that finds the lock
 * gone, or that cannot reach the servers before the lease runs out, marks it lost: on_lost is
 * called on the loop's thread. A frozen client's renewals wait for it to thaw. */

struct dlock__loop_renewal {
    dlock *lock;               /* the owner's */
    dlock shadow;              /* the renewer's copy: same key and token, own step state */
    dlock__async *owner;
    dlock_timer *timer;
    bool due;                  /* its time came while the renewer was busy or the owner frozen */
    bool extending;            /* its extend is out on the renewer */
    bool orphaned;             /* stopped while extending: freed when the extend returns */
    renewal *next;
};

/* After a renewal that could not reach the servers, try again this many times per period. */
#define RETRIES_PER_PERIOD 4

static int64_t period_us(const dlock *l)
{
    return l->opt.ttl_ms * 1000 / 3;
}

static int renewer_ready(dlock_client *c, dlock__async *a)
{
    char err[256];
    if (a->renewer)
        return DLOCK_OK;
    dlock_client *r = dlock__client_clone(c, err, sizeof err);
    if (!r) {
        dlock__client_set_err(c, err);
        return DLOCK_EIO;
    }
    if (dlock_client_attach(r, a->loop) != DLOCK_OK) {
        dlock_client_free(r);
        return DLOCK_ENOMEM;
    }
    dlock_client_freeze(r, a->frozen);
    a->renewer = r;
    return DLOCK_OK;
}

static void renewal_unlink(renewal *r)
{
    for (renewal **p = &r->owner->renewals; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

static void renewal_free(renewal *r)
{
    dlock_timer_free(r->timer);
    free(r->shadow.key);
    free(r->shadow.err);
    free(r);
}

static void renewal_done(void *ud, int rc);

static bool renewal_go(renewal *r)
{
    dlock__async *a = r->owner;
    dlock__async *ra = async_of(a->renewer);
    if (a->frozen || ra->busy)
        return false;
    r->shadow.phase = 0;
    ra->done = renewal_done;
    ra->ud = r;
    if (start_op(a->renewer, ra, &r->shadow, DLOCK__OP_RUN, 0, r->shadow.algo->extend, false) !=
        DLOCK_OK)
        return false;
    r->due = false;
    r->extending = true;
    return true;
}

/* Starts the next renewal that came due, if the renewer is free. */
static void renewals_kick(dlock__async *a)
{
    for (renewal *r = a->renewals; r && a->renewer; r = r->next)
        if (r->due && !r->extending && renewal_go(r))
            return;
}

static void renewal_timer(void *ud)
{
    renewal *r = ud;
    r->due = true;
    renewals_kick(r->owner);
}

static void renewal_done(void *ud, int rc)
{
    renewal *r = ud;
    dlock__async *a = r->owner;
    r->extending = false;
    if (r->orphaned) {
        renewal_unlink(r);
        renewal_free(r);
    } else if (rc == DLOCK_OK) {
        atomic_store(&r->lock->valid_until_us, atomic_load(&r->shadow.valid_until_us));
        dlock_timer_start(r->timer, r->shadow.started_us + period_us(&r->shadow) - dlock__mono_us());
    } else if (rc == DLOCK_ENOTOWNER || dlock__mono_us() >= atomic_load(&r->lock->valid_until_us)) {
        dlock *l = r->lock;
        atomic_store(&l->lost, true);
        l->unrenew(l);  /* nothing more to do for it */
        if (l->opt.on_lost)
            l->opt.on_lost(l->opt.on_lost_ud, l->key);
    } else {
        dlock_timer_start(r->timer, period_us(&r->shadow) / RETRIES_PER_PERIOD);  /* unreachable */
    }
    renewals_kick(a);
}

static void renewal_stop(dlock *l)
{
    renewal *r = l->loop_renewal;
    l->loop_renewal = NULL;
    l->unrenew = NULL;
    if (!r)
        return;
    dlock_timer_stop(r->timer);
    r->due = false;
    if (r->extending) {
        r->orphaned = true;  /* its copy is the renewer's until the extend returns */
        return;
    }
    renewal_unlink(r);
    renewal_free(r);
}

static int renewal_start(dlock_client *c, dlock__async *a, dlock *l)
{
    if (!l->opt.renew || l->opt.ttl_ms == 0)
        return DLOCK_OK;  /* a lock that never expires needs no renewing */
    renewal *r = calloc(1, sizeof *r);
    if (!r || !(r->timer = dlock_timer_new(a->loop, renewal_timer, r))) {
        free(r);
        return DLOCK_ENOMEM;
    }
    r->lock = l;
    r->owner = a;
    r->shadow = *l;
    r->shadow.err = NULL;  /* its own, made by its own failures */
    r->shadow.client = a->renewer;
    r->shadow.loop_renewal = NULL;
    r->shadow.unrenew = NULL;
    /* its own key: an orphaned copy outlives the owner's lock */
    if (!(r->shadow.key = strdup(l->key))) {
        renewal_free(r);
        return DLOCK_ENOMEM;
    }
    r->next = a->renewals;
    a->renewals = r;
    l->loop_renewal = r;
    l->unrenew = renewal_stop;
    /* from the lease's start: the reply took time */
    int64_t lease_start = atomic_load(&l->valid_until_us) - l->opt.ttl_ms * 1000;
    dlock_timer_start(r->timer, lease_start + period_us(l) - dlock__mono_us());
    return DLOCK_OK;
}

/* The owner's own extend of a renewed lock: the renewals go on at the new ttl. */
static void renewal_follow(dlock *l)
{
    renewal *r = l->loop_renewal;
    if (!r)
        return;
    r->shadow.opt.ttl_ms = l->opt.ttl_ms;
    memcpy(r->shadow.ttl_arg, l->ttl_arg, sizeof r->shadow.ttl_arg);
    int64_t lease_start = atomic_load(&l->valid_until_us) - l->opt.ttl_ms * 1000;
    dlock_timer_start(r->timer, lease_start + period_us(l) - dlock__mono_us());
}

/* The client is being freed: its locks are no longer renewed (the renewer is gone already). */
static void renewals_free(dlock__async *a)
{
    while (a->renewals) {
        renewal *r = a->renewals;
        a->renewals = r->next;
        if (!r->orphaned) {
            r->lock->loop_renewal = NULL;
            r->lock->unrenew = NULL;
        }
        renewal_free(r);
    }
}

/* Ends the operation (freed before the callback, which may start the next one) and reports. */
static void deliver(dlock_client *c, dlock__async *a)
{
    dlock__op *op = &a->f->op;
    dlock__op_kind kind = op->kind;
    dlock *l = op->l;
    int rc = op->rc;
    bool frees_lock = a->f->frees_lock;
    bool reads = op->step == dlock__fenced_get_step;
    if (kind == DLOCK__OP_ACQUIRE)
        dlock__client_end_acquire(c, dlock__op_tries(op), dlock__mono_us() - op->start_us);
    if (rc != DLOCK_OK && dlock__op_error(op)[0])
        dlock__client_set_err(c, dlock__op_error(op));
    dlock__op_clear(op);
    free(a->f);
    a->f = NULL;
    a->busy = false;
    switch (kind) {
    case DLOCK__OP_ACQUIRE:
        if (rc == DLOCK_OK && (rc = renewal_start(c, a, l)) != DLOCK_OK)
            dlock__client_set_err(c, "cannot renew the lock; it stays until its ttl");
        if (rc != DLOCK_OK) {
            dlock__lock_free(l);
            l = NULL;
        }
        a->acquired(a->ud, rc, l);
        break;
    case DLOCK__OP_RELEASE:
        dlock__lock_free(l);
        a->done(a->ud, rc);
        break;
    case DLOCK__OP_RUN:
        if (reads) {  /* the value lives in its own lock until the callback has it */
            a->got(a->ud, rc, rc == DLOCK_OK ? l->payload : NULL);
            dlock__lock_free(l);
            break;
        }
        if (frees_lock)  /* a fenced write: its lock was its own */
            dlock__lock_free(l);
        a->done(a->ud, rc);
        break;
    case DLOCK__OP_EXTEND:
    default:
        if (rc == DLOCK_OK)
            renewal_follow(l);
        a->done(a->ud, rc);
        break;
    }
}

/* Runs the operation until it waits for I/O or time, or ends. */
static void advance(dlock_client *c, dlock__async *a)
{
    flight *f = a->f;
    if (a->frozen) {
        a->held = true;  /* dlock_client_freeze(c, false) goes on */
        return;
    }
    for (;;) {
        dlock_input in = dlock__client_input(c, &f->op);
        if (f->act.what == DLOCK_DO_SEND) {
            in.replies = f->ans.reply;
            in.canceled = f->canceled;
        }
        f->act = dlock__op_next(&f->op, &in);
        dlock__answers_clear(&f->ans);
        if (f->act.interrupt_taken)
            dlock__client_clear_interrupt(c);
        switch (f->act.what) {
        case DLOCK_DO_SEND: {
            bool pending;
            f->canceled = dlock__exchange_start(c, &f->act, &f->ans, &pending) == DLOCK_ECANCELED;
            if (pending)
                return;  /* io_exchanged goes on */
            /* Nothing went out (no server could be reached, or the hook cancelled): go on in
             * the next round. Going on here would let a client whose every command fails at
             * once (a server down, with no back-off, or a wait step that fails straight back
             * to a try) run its whole wait inside this call, holding up the loop. */
            a->sleeping = true;
            dlock_timer_start(a->timer, 0);
            return;
        }
        case DLOCK_DO_WAIT: {
            int64_t left = f->act.until_us - dlock__mono_us();
            if (left <= 0 || dlock__client_interrupt_pending(c))
                break;
            a->sleeping = true;
            dlock_timer_start(a->timer, left);
            return;
        }
        case DLOCK_DO_DONE:
        default:
            if (a->starting) {  /* never call back from inside the start */
                a->completing = true;
                dlock_timer_start(a->timer, 0);
            } else {
                deliver(c, a);
            }
            return;
        }
    }
}

static void async_timer(void *ud)
{
    dlock_client *c = ud;
    dlock__async *a = async_of(c);
    if (a->completing) {
        a->completing = false;
        deliver(c, a);
    } else if (a->sleeping) {
        a->sleeping = false;
        advance(c, a);
    }
}

/* An interrupted client's sleep ends now; a wait blocked in Redis ends with its slice. A
 * callback run from here may free clients (the list is compacted, moving a client not yet seen
 * into a slot already passed) or attach others: after each wake-up the scan starts over,
 * skipping the clients this pass has woken already. */
static void deliver_interrupts(void *ext)
{
    roster *r = ext;
    uint64_t pass = ++r->pass;
    for (size_t i = 0; i < r->n;) {
        dlock_client *c = r->clients[i];
        dlock__async *a = async_of(c);
        if (a->interrupt_pass == pass || !a->sleeping || !dlock__client_interrupt_pending(c)) {
            i++;
            continue;
        }
        a->interrupt_pass = pass;
        dlock_timer_stop(a->timer);
        a->sleeping = false;
        advance(c, a);
        i = 0;
    }
}

static dlock__async *idle_async(dlock_client *c)
{
    dlock__async *a = async_of(c);
    if (!a) {
        if (c)
            dlock__client_set_err(c, "the _async calls need a client attached to a loop");
        return NULL;
    }
    if (a->busy) {
        dlock__client_set_err(c, "an operation is already in flight on this client");
        return NULL;
    }
    return a;
}

/* Starts an operation: kind on l, or step on it (DLOCK__OP_RUN, freeing l when done if
 * frees_lock). */
static int start_op(dlock_client *c, dlock__async *a, dlock *l, dlock__op_kind kind,
                    int64_t ttl_ms, dlock__step_fn step, bool frees_lock)
{
    flight *f = malloc(sizeof *f);
    dlock__rng *rng = kind == DLOCK__OP_ACQUIRE ? dlock__client_rng(c, l->opt.seed) : NULL;
    if (!f || dlock__op_init(&f->op, l, kind, step, rng) != DLOCK_OK) {
        free(f);
        return DLOCK_ENOMEM;
    }
    f->ans.n = 0;
    f->frees_lock = frees_lock;
    f->op.extend_ttl_ms = ttl_ms;
    if (kind == DLOCK__OP_ACQUIRE)
        dlock__client_begin_acquire(c);
    a->f = f;
    f->act = (dlock_action){.what = 0};
    a->busy = true;
    a->starting = true;
    advance(c, a);
    a->starting = false;
    return DLOCK_OK;
}

static int start(dlock_client *c, dlock__async *a, dlock *l, dlock__op_kind kind, int64_t ttl_ms)
{
    return start_op(c, a, l, kind, ttl_ms, NULL, false);
}

int dlock_acquire_async(dlock_client *c, const char *key, const dlock_options *o,
                        dlock_acquired_fn fn, void *ud)
{
    int rc;
    dlock__async *a = idle_async(c);
    if (!a || !key || !fn)
        return DLOCK_EINVAL;
    if (o && o->renew && (rc = renewer_ready(c, a)) != DLOCK_OK)
        return rc;
    dlock *l = dlock__lock_prepare(c, key, o, &rc);
    if (!l)
        return rc;
    a->acquired = fn;
    a->ud = ud;
    if ((rc = start(c, a, l, DLOCK__OP_ACQUIRE, 0)) != DLOCK_OK)
        dlock__lock_free(l);
    return rc;
}

int dlock_release_async(dlock *l, dlock_done_fn fn, void *ud)
{
    dlock__async *a = l ? idle_async(l->client) : NULL;
    if (!a || !fn)
        return DLOCK_EINVAL;
    if (l->unrenew)
        l->unrenew(l);
    a->done = fn;
    a->ud = ud;
    return start(l->client, a, l, DLOCK__OP_RELEASE, 0);
}

int dlock_extend_async(dlock *l, int64_t ttl_ms, dlock_done_fn fn, void *ud)
{
    dlock__async *a = l ? idle_async(l->client) : NULL;
    if (!a || !fn || dlock__check_ttl(l->client, ttl_ms) != DLOCK_OK)
        return DLOCK_EINVAL;
    if (l->algo == &dlock__legacy) {
        dlock__client_set_err(l->client, "the legacy algorithm has no extend");
        return DLOCK_EINVAL;
    }
    a->done = fn;
    a->ud = ud;
    return start(l->client, a, l, DLOCK__OP_EXTEND, ttl_ms);
}

/* A fenced write (done told the result) or read (got told it and the value), on the lock of its
 * own that carries the fence and the writer. */
static int fenced_async(dlock_client *c, const char *key, uint64_t fence, const dlock *writer,
                        const char *value, dlock__step_fn step, dlock_done_fn done,
                        dlock_value_fn got, void *ud)
{
    dlock__async *a = idle_async(c);
    if (!a || !key || fence == 0 || (!done && !got) || (step == dlock__fenced_set_step && !value))
        return DLOCK_EINVAL;
    dlock *l = dlock__fenced_write_new(c, key, fence, writer, value);
    if (!l)
        return DLOCK_ENOMEM;
    a->done = done;
    a->got = got;
    a->ud = ud;
    int rc = start_op(c, a, l, DLOCK__OP_RUN, 0, step, true);
    if (rc != DLOCK_OK)
        dlock__lock_free(l);
    return rc;
}

int dlock_fenced_set_async(dlock_client *c, const char *key, uint64_t fence, const char *value,
                           dlock_done_fn fn, void *ud)
{
    return fenced_async(c, key, fence, NULL, value, dlock__fenced_set_step, fn, NULL, ud);
}

int dlock_fenced_write_async(dlock_client *c, const char *key, const dlock *l, const char *value,
                             dlock_done_fn fn, void *ud)
{
    return l && fn ? fenced_async(c, key, l->fence, l, value, dlock__fenced_set_step, fn, NULL, ud)
                   : DLOCK_EINVAL;
}

int dlock_fenced_read_async(dlock_client *c, const char *key, const dlock *l,
                            dlock_value_fn fn, void *ud)
{
    return l && fn ? fenced_async(c, key, l->fence, l, NULL, dlock__fenced_get_step, NULL, fn, ud)
                   : DLOCK_EINVAL;
}

void dlock_client_freeze(dlock_client *c, bool frozen)
{
    dlock__async *a = async_of(c);
    if (!a || a->frozen == frozen)
        return;
    a->frozen = frozen;
    dlock_client_freeze(a->renewer, frozen);  /* a paused process renews nothing */
    if (!frozen && a->held) {
        a->held = false;
        if (a->f)
            advance(c, a);
    }
    if (!frozen)
        renewals_kick(a);
}
