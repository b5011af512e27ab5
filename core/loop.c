/* loop.c -- the event-loop driver: many clients on one thread.
 *
 * The loop is epoll over the clients' connections (and the caller's own descriptors), a
 * binary heap of timers, and an eventfd to wake it from other threads. Each attached client
 * runs one operation at a time: the same state machine as the blocking driver (op.c), with an
 * exchange that writes the batch and returns (client.c reads the replies as they come and
 * calls dlock__loop_exchanged), and a timer instead of a sleep. Nothing here allocates per
 * command: an operation, its batch and its timer live in the client's async block. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "connect.h"
#include "internal.h"

struct dlock_timer {
    dlock_loop *loop;
    dlock_timer_fn fn;
    void *ud;
    int64_t at_us;
    uint64_t seq;     /* start order: equal times fire in the order they were started */
    size_t slot;      /* index in the heap, SIZE_MAX when not running */
};

struct dlock_watch {
    dlock_loop *loop;
    int fd;
    uint32_t events;
    dlock_io_fn fn;   /* NULL once freed: its events still in this round are skipped */
    void *ud;
    dlock_watch *next_dead;
};

struct dlock_loop {
    int epfd;
    int wakefd;
    dlock_watch wake;          /* the eventfd's watch */
    dlock_timer **heap;
    size_t ntimers, cap;       /* running; room in the heap */
    size_t ntimers_made;       /* in existence: cap never falls below it */
    uint64_t seq;
    dlock_watch *dead;         /* freed watches, released after the round that may still name them */
    bool running;              /* inside dlock_loop_run: a nested call is refused */
    dlock_client **clients;    /* attached, to deliver interrupts to sleeping operations */
    size_t nclients, ccap;
    uint64_t interrupt_pass;   /* counts deliver_interrupts passes */
};

/* A client's part in the loop: its operation and what it reports to. */
struct dlock__async {
    dlock_loop *loop;
    dlock__op op;
    dlock_timer *timer;        /* the operation's sleeps, and completions deferred out of a start */
    bool busy;                 /* an operation is in flight */
    bool sleeping;             /* the timer goes on with the operation: a sleep, or a step
                                  deferred to the next round */
    bool completing;           /* the timer delivers the result */
    bool starting;             /* inside the call that started it: callbacks must wait */
    uint64_t interrupt_pass;   /* the last deliver_interrupts pass that woke it */
    dlock_acquired_fn acquired;
    dlock_done_fn done;
    void *ud;
    int64_t extend_ttl_ms;
    char old_ttl_arg[24];
};

/* ---- timers ---------------------------------------------------------------------------- */

static bool timer_before(const dlock_timer *a, const dlock_timer *b)
{
    return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

static void heap_set(dlock_loop *lp, size_t i, dlock_timer *t)
{
    lp->heap[i] = t;
    t->slot = i;
}

static void sift_up(dlock_loop *lp, size_t i)
{
    dlock_timer *t = lp->heap[i];
    while (i > 0 && timer_before(t, lp->heap[(i - 1) / 2])) {
        heap_set(lp, i, lp->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(lp, i, t);
}

static void sift_down(dlock_loop *lp, size_t i)
{
    dlock_timer *t = lp->heap[i];
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= lp->ntimers)
            break;
        if (k + 1 < lp->ntimers && timer_before(lp->heap[k + 1], lp->heap[k]))
            k++;
        if (!timer_before(lp->heap[k], t))
            break;
        heap_set(lp, i, lp->heap[k]);
        i = k;
    }
    heap_set(lp, i, t);
}

dlock_timer *dlock_timer_new(dlock_loop *lp, dlock_timer_fn fn, void *ud)
{
    if (!lp || !fn)
        return NULL;
    dlock_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    /* room in the heap for every timer there is, so that starting one never allocates */
    if (lp->ntimers_made == lp->cap) {
        size_t cap = lp->cap ? lp->cap * 2 : 64;
        dlock_timer **h = realloc(lp->heap, cap * sizeof *h);
        if (!h) {
            free(t);
            return NULL;
        }
        lp->heap = h;
        lp->cap = cap;
    }
    lp->ntimers_made++;
    t->loop = lp;
    t->fn = fn;
    t->ud = ud;
    t->slot = SIZE_MAX;
    return t;
}

void dlock_timer_stop(dlock_timer *t)
{
    if (!t || t->slot == SIZE_MAX)
        return;
    dlock_loop *lp = t->loop;
    size_t i = t->slot;
    t->slot = SIZE_MAX;
    dlock_timer *last = lp->heap[--lp->ntimers];
    if (last == t)
        return;
    heap_set(lp, i, last);
    sift_up(lp, i);
    sift_down(lp, last->slot);
}

void dlock_timer_start(dlock_timer *t, int64_t after_us)
{
    if (!t)
        return;
    dlock_timer_stop(t);
    dlock_loop *lp = t->loop;
    t->at_us = dlock__mono_us() + (after_us > 0 ? after_us : 0);
    t->seq = lp->seq++;
    heap_set(lp, lp->ntimers++, t);
    sift_up(lp, t->slot);
}

void dlock_timer_free(dlock_timer *t)
{
    if (!t)
        return;
    dlock_timer_stop(t);
    t->loop->ntimers_made--;
    free(t);
}

/* ---- watches --------------------------------------------------------------------------- */

static int watch_ctl(dlock_watch *w, int op)
{
    struct epoll_event ev = {.events = w->events, .data.ptr = w};
    return epoll_ctl(w->loop->epfd, op, w->fd, &ev);
}

dlock_watch *dlock_watch_new(dlock_loop *lp, int fd, dlock_io_fn fn, void *ud)
{
    if (!lp || fd < 0 || !fn)
        return NULL;
    dlock_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    *w = (dlock_watch){.loop = lp, .fd = fd, .events = EPOLLIN, .fn = fn, .ud = ud};
    if (watch_ctl(w, EPOLL_CTL_ADD) < 0) {
        free(w);
        return NULL;
    }
    return w;
}

void dlock_watch_want_write(dlock_watch *w, bool on)
{
    uint32_t events = EPOLLIN | (on ? EPOLLOUT : 0);
    if (!w || !w->fn || w->events == events)
        return;
    w->events = events;
    watch_ctl(w, EPOLL_CTL_MOD);
}

void dlock_watch_free(dlock_watch *w)
{
    if (!w || !w->fn)
        return;
    watch_ctl(w, EPOLL_CTL_DEL);
    w->fn = NULL;
    w->next_dead = w->loop->dead;
    w->loop->dead = w;
}

static void reap_watches(dlock_loop *lp)
{
    while (lp->dead) {
        dlock_watch *w = lp->dead;
        lp->dead = w->next_dead;
        free(w);
    }
}

/* ---- the loop -------------------------------------------------------------------------- */

static void deliver_interrupts(dlock_loop *lp);

static void on_wake(void *ud, bool readable, bool writable)
{
    dlock_loop *lp = ud;
    uint64_t v;
    (void)writable;
    if (readable && read(lp->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
        return;
    deliver_interrupts(lp);
}

dlock_loop *dlock_loop_new(char *err, size_t errlen)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    dlock_loop *lp = calloc(1, sizeof *lp);
    if (!lp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    lp->wake = (dlock_watch){.loop = lp, .fd = lp->wakefd, .events = EPOLLIN, .fn = on_wake,
                             .ud = lp};
    if (lp->epfd < 0 || lp->wakefd < 0 || watch_ctl(&lp->wake, EPOLL_CTL_ADD) < 0) {
        snprintf(err, errlen, "event loop: %s", strerror(errno));
        dlock_loop_free(lp);
        return NULL;
    }
    return lp;
}

void dlock_loop_free(dlock_loop *lp)
{
    if (!lp)
        return;
    reap_watches(lp);
    if (lp->wakefd >= 0)
        close(lp->wakefd);
    if (lp->epfd >= 0)
        close(lp->epfd);
    free(lp->heap);
    free(lp->clients);
    free(lp);
}

void dlock_loop_wake(dlock_loop *lp)
{
    uint64_t one = 1;
    if (lp && write(lp->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        return;  /* a full counter is a pending wake-up already */
}

int dlock_loop_run(dlock_loop *lp, int64_t timeout_ms)
{
    struct epoll_event evs[64];
    if (!lp || lp->running) {
        errno = lp ? EDEADLK : EINVAL;  /* run from its own callback: the round is not done */
        return -1;
    }
    int64_t now = dlock__mono_us();
    int64_t wait_us = timeout_ms < 0 ? INT64_MAX : timeout_ms * 1000;
    if (lp->ntimers > 0 && lp->heap[0]->at_us - now < wait_us)
        wait_us = lp->heap[0]->at_us - now;
    int wait_ms = wait_us == INT64_MAX ? -1 : wait_us <= 0 ? 0
                  : wait_us > INT32_MAX / 2 ? INT32_MAX / 2 : (int)((wait_us + 999) / 1000);
    int n = epoll_wait(lp->epfd, evs, (int)(sizeof evs / sizeof evs[0]), wait_ms);
    if (n < 0 && errno != EINTR)
        return -1;
    int ran = 0;
    lp->running = true;
    dlock__pipe_guard g;
    dlock__sigpipe_hold(&g);  /* once for the round's writes, not once per write */
    for (int i = 0; i < n; i++) {
        dlock_watch *w = evs[i].data.ptr;
        if (!w->fn)
            continue;  /* freed by an earlier callback of this round */
        bool rd = evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP);
        bool wr = evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP);
        w->fn(w->ud, rd, wr && (w->events & EPOLLOUT));
        ran++;
    }
    /* Timers due now, but only those started before this pass: a callback that starts a timer
     * for "now" is served in the next round, after I/O gets its turn. */
    now = dlock__mono_us();
    uint64_t seq_limit = lp->seq;
    while (lp->ntimers > 0 && lp->heap[0]->at_us <= now && lp->heap[0]->seq < seq_limit) {
        dlock_timer *t = lp->heap[0];
        dlock_timer_stop(t);
        t->fn(t->ud);
        ran++;
    }
    dlock__sigpipe_release(&g);
    lp->running = false;
    reap_watches(lp);
    return ran;
}

/* ---- clients on the loop --------------------------------------------------------------- */

static void async_timer(void *ud);

int dlock_client_attach(dlock_client *c, dlock_loop *lp)
{
    if (!c || !lp || *dlock__client_async(c))
        return DLOCK_EINVAL;
    if (*dlock__client_watchdog(c)) {
        dlock__client_set_err(c, "a client with a watchdog cannot move onto a loop");
        return DLOCK_EINVAL;
    }
    if (lp->nclients == lp->ccap) {
        size_t cap = lp->ccap ? lp->ccap * 2 : 16;
        dlock_client **cs = realloc(lp->clients, cap * sizeof *cs);
        if (!cs)
            return DLOCK_ENOMEM;
        lp->clients = cs;
        lp->ccap = cap;
    }
    dlock__async *a = calloc(1, sizeof *a);
    if (!a || !(a->timer = dlock_timer_new(lp, async_timer, c))) {
        free(a);
        return DLOCK_ENOMEM;
    }
    a->loop = lp;
    *dlock__client_async(c) = a;
    if (dlock__client_go_nonblocking(c) != DLOCK_OK) {
        *dlock__client_async(c) = NULL;
        dlock_timer_free(a->timer);
        free(a);
        return DLOCK_ENOMEM;
    }
    lp->clients[lp->nclients++] = c;
    return DLOCK_OK;
}

/* Called by dlock_client_free. */
void dlock__async_free(dlock_client *c, dlock__async *a)
{
    if (!a)
        return;
    dlock_loop *lp = a->loop;
    for (size_t i = 0; i < lp->nclients; i++) {
        if (lp->clients[i] == c) {
            lp->clients[i] = lp->clients[--lp->nclients];
            break;
        }
    }
    if (a->busy) {
        dlock__op_clear(&a->op);
        if (a->op.kind == DLOCK__OP_ACQUIRE || a->op.kind == DLOCK__OP_RELEASE)
            dlock__lock_free(a->op.l);
    }
    dlock_timer_free(a->timer);
    free(a);
}

dlock_loop *dlock__async_loop(const dlock__async *a)
{
    return a ? a->loop : NULL;
}

static void deliver(dlock__async *a)
{
    dlock__op *op = &a->op;
    dlock *l = op->l;
    int rc = op->rc;
    a->busy = false;
    switch (op->kind) {
    case DLOCK__OP_ACQUIRE:
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
    case DLOCK__OP_EXTEND:
    default:
        if (rc == DLOCK_OK)
            l->opt.ttl_ms = a->extend_ttl_ms;
        else
            memcpy(l->ttl_arg, a->old_ttl_arg, sizeof l->ttl_arg);
        a->done(a->ud, rc);
        break;
    }
}

/* Runs the operation until it waits for I/O or time, or ends. */
static void advance(dlock_client *c, dlock__async *a)
{
    for (;;) {
        switch (dlock__op_next(&a->op)) {
        case DLOCK__NEED_EXCHANGE: {
            bool pending;
            int rc = dlock__exchange_start(c, &a->op.batch, a->op.replies,
                                           a->op.l->opt.command_timeout_ms, &pending);
            a->op.xrc = rc;
            if (pending)
                return;  /* dlock__loop_exchanged goes on */
            /* Nothing went out (no server could be reached, or the hook cancelled): go on in
             * the next round. Going on here would let a client whose every command fails at
             * once (a server down, with no back-off, or a wait step that fails straight back
             * to a try) run its whole wait inside this call, holding up the loop. */
            a->sleeping = true;
            dlock_timer_start(a->timer, 0);
            return;
        }
        case DLOCK__NEED_SLEEP: {
            int64_t left = a->op.sleep_until_us - dlock__mono_us();
            if (left <= 0 || dlock__client_interrupt_pending(c))
                break;
            a->sleeping = true;
            dlock_timer_start(a->timer, left);
            return;
        }
        case DLOCK__NEED_NOTHING:
        default:
            if (a->starting) {  /* never call back from inside the start */
                a->completing = true;
                dlock_timer_start(a->timer, 0);
            } else {
                deliver(a);
            }
            return;
        }
    }
}

void dlock__loop_exchanged(dlock_client *c)
{
    dlock__async *a = *dlock__client_async(c);
    a->op.xrc = DLOCK_OK;
    advance(c, a);
}

static void async_timer(void *ud)
{
    dlock_client *c = ud;
    dlock__async *a = *dlock__client_async(c);
    if (a->completing) {
        a->completing = false;
        deliver(a);
    } else if (a->sleeping) {
        a->sleeping = false;
        advance(c, a);
    }
}

/* An interrupted client's sleep ends now; a wait blocked in Redis ends with its slice. A
 * callback run from here may free clients (the list is compacted, moving a client not yet seen
 * into a slot already passed) or attach others: after each wake-up the scan starts over,
 * skipping the clients this pass has woken already. */
static void deliver_interrupts(dlock_loop *lp)
{
    uint64_t pass = ++lp->interrupt_pass;
    for (size_t i = 0; i < lp->nclients;) {
        dlock_client *c = lp->clients[i];
        dlock__async *a = *dlock__client_async(c);
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
    dlock__async *a = c ? *dlock__client_async(c) : NULL;
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

static void start(dlock_client *c, dlock__async *a, dlock *l, dlock__op_kind kind)
{
    dlock__op_init(&a->op, l, c, kind, NULL);
    a->busy = true;
    a->starting = true;
    advance(c, a);
    a->starting = false;
}

int dlock_acquire_async(dlock_client *c, const char *key, const dlock_options *o,
                        dlock_acquired_fn fn, void *ud)
{
    int rc;
    dlock__async *a = idle_async(c);
    if (!a || !key || !fn)
        return DLOCK_EINVAL;
    if (o && o->renew) {
        dlock__client_set_err(c, "renew needs the blocking calls: its watchdog is a thread");
        return DLOCK_EINVAL;
    }
    dlock *l = dlock__lock_prepare(c, key, o, &rc);
    if (!l)
        return rc;
    a->acquired = fn;
    a->ud = ud;
    start(c, a, l, DLOCK__OP_ACQUIRE);
    return DLOCK_OK;
}

int dlock_release_async(dlock *l, dlock_done_fn fn, void *ud)
{
    dlock__async *a = l ? idle_async(l->client) : NULL;
    if (!a || !fn)
        return DLOCK_EINVAL;
    a->done = fn;
    a->ud = ud;
    start(l->client, a, l, DLOCK__OP_RELEASE);
    return DLOCK_OK;
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
    a->extend_ttl_ms = ttl_ms;
    memcpy(a->old_ttl_arg, l->ttl_arg, sizeof a->old_ttl_arg);
    dlock__set_ttl_arg(l, ttl_ms);
    start(l->client, a, l, DLOCK__OP_EXTEND);
    return DLOCK_OK;
}
