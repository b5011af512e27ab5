/* loop.c -- the event loop: epoll over descriptors, a binary heap of timers, and an eventfd to
 * wake it from other threads. It knows nothing of locks or clients (as redis's ae.c knows
 * nothing of its clients): async.c runs clients on it, and a caller may watch its own
 * descriptors and start its own timers beside them. Starting a timer never allocates. */
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
    void *ext;                 /* the layer above's (async.c: its attached clients) */
    void (*ext_wake)(void *ext);
    void (*ext_free)(void *ext);
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

static void on_wake(void *ud, bool readable, bool writable)
{
    dlock_loop *lp = ud;
    uint64_t v;
    (void)writable;
    if (readable && read(lp->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
        return;
    if (lp->ext_wake)
        lp->ext_wake(lp->ext);
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
    if (lp->ext_free)
        lp->ext_free(lp->ext);
    reap_watches(lp);
    if (lp->wakefd >= 0)
        close(lp->wakefd);
    if (lp->epfd >= 0)
        close(lp->epfd);
    free(lp->heap);
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


void dlock__loop_set_ext(dlock_loop *lp, void *ext, void (*wake)(void *ext),
                         void (*cleanup)(void *ext))
{
    lp->ext = ext;
    lp->ext_wake = wake;
    lp->ext_free = cleanup;
}

void *dlock__loop_ext(const dlock_loop *lp)
{
    return lp->ext;
}

size_t dlock__timer_size(void)
{
    return sizeof(struct dlock_timer);
}
