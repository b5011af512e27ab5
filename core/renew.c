/* renew.c -- the watchdog: a thread per client that extends the leases of its renewed locks.
 *
 * A lock taken with renew is extended every ttl/3 on the watchdog's own connections (a client's
 * connections belong to its thread), through the client's hook like every other command, so a
 * paused client's renewals pause with it. An extension that finds the lock gone, or that cannot
 * reach the servers before the lease runs out, marks the lock lost: dlock_is_lost() turns true,
 * extend and release return DLOCK_ENOTOWNER, and on_lost is called, from the watchdog thread.
 *
 * The watchdog works on a private copy of the lock (its step state must not race with the
 * owner's), and publishes only `lost` and `valid_until_us`, which are atomic. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

typedef struct dlock__renewal {
    dlock *lock;                 /* the owner's lock */
    dlock shadow;                /* the watchdog's copy: same key and token, own step state */
    int64_t next_us;             /* when to extend next */
    bool busy;                   /* the watchdog is extending it, or telling on_lost, right now */
    bool done;                   /* lost: nothing more to do */
    bool orphaned;               /* its lock stopped it from inside on_lost: free it after */
    struct dlock__renewal *next;
} renewal;

typedef struct dlock__watchdog dlock__watchdog;

struct dlock__watchdog {
    dlock_client *owner;
    dlock_client *conn;          /* the watchdog's own connections */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* monotonic: wakes the thread, and waiters on busy */
    bool stop;
    renewal *list;
};

/* After a renewal that could not reach the servers, try again this many times per period. */
#define RETRIES_PER_PERIOD 4

/* How often a lease is renewed: every third of it, so two renewals can fail before it lapses. */
static int64_t period_us(const dlock *l)
{
    return l->opt.ttl_ms * 1000 / 3;
}

/* When to renew next after a lease was set at start_us; never for a lock that never expires. */
static int64_t next_renewal(const dlock *l, int64_t start_us)
{
    return l->opt.ttl_ms > 0 ? start_us + period_us(l) : INT64_MAX;
}

static void wait_until(dlock__watchdog *w, int64_t when_us)
{
    if (when_us == INT64_MAX) {
        pthread_cond_wait(&w->cv, &w->mu);
        return;
    }
    struct timespec ts = {.tv_sec = when_us / 1000000, .tv_nsec = when_us % 1000000 * 1000};
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

static renewal *next_due(dlock__watchdog *w, int64_t *when_us)
{
    renewal *due = NULL;
    *when_us = INT64_MAX;
    for (renewal *r = w->list; r; r = r->next) {
        if (!r->busy && !r->done && r->next_us < *when_us) {
            *when_us = r->next_us;
            due = r;
        }
    }
    return due;
}

static void renewal_free(renewal *r)
{
    free(r->shadow.err);
    free(r);
}

static void unlink_renewal(dlock__watchdog *w, renewal *r)
{
    for (renewal **p = &w->list; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

/* Calls on_lost without the mutex, and busy: the owner's release waits for the callback to
 * return (the key it was given stays valid meanwhile). A release from inside the callback runs
 * on this thread; it orphans the renewal, which is freed here afterwards. */
static void tell_lost(dlock__watchdog *w, renewal *r)
{
    dlock_lost_fn fn = r->shadow.opt.on_lost;
    if (!fn)
        return;
    r->busy = true;
    pthread_mutex_unlock(&w->mu);
    fn(r->shadow.opt.on_lost_ud, r->shadow.key);
    pthread_mutex_lock(&w->mu);
    r->busy = false;
    pthread_cond_broadcast(&w->cv);
    if (r->orphaned) {
        unlink_renewal(w, r);
        renewal_free(r);
    }
}

/* One extension, made with the watchdog's mutex released; decides what happens next. */
static void extend_one(dlock__watchdog *w, renewal *r)
{
    r->busy = true;
    pthread_mutex_unlock(&w->mu);
    int rc = dlock__run_on(&r->shadow, w->conn, r->shadow.algo->extend);
    int64_t now = dlock__mono_us();
    pthread_mutex_lock(&w->mu);
    r->busy = false;
    pthread_cond_broadcast(&w->cv);
    if (rc == DLOCK_OK) {
        atomic_store(&r->lock->valid_until_us, atomic_load(&r->shadow.valid_until_us));
        r->next_us = next_renewal(&r->shadow, r->shadow.started_us);
    } else if (rc == DLOCK_ENOTOWNER || now >= atomic_load(&r->lock->valid_until_us)) {
        r->done = true;
        atomic_store(&r->lock->lost, true);
        tell_lost(w, r);
    } else {
        r->next_us = now + period_us(&r->shadow) / RETRIES_PER_PERIOD;  /* unreachable: retry */
    }
}

static void *watchdog_main(void *arg)
{
    dlock__watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int64_t when;
        renewal *r = next_due(w, &when);
        if (r && when <= dlock__mono_us())
            extend_one(w, r);
        else
            wait_until(w, when);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static dlock__watchdog *watchdog_new(dlock_client *owner)
{
    char err[256];
    dlock__watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->owner = owner;
    w->conn = dlock__client_clone(owner, err, sizeof err);
    if (!w->conn) {
        dlock__client_set_err(owner, err);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    dlock__cond_init_monotonic(&w->cv);
    if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
        dlock_client_free(w->conn);
        free(w);
        return NULL;
    }
    return w;
}

/* The client's cleanup of its watchdog (dlock__client_set_ext). */
static void watchdog_free(void *ext)
{
    dlock__watchdog *w = ext;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->list) {
        renewal *r = w->list;
        w->list = r->next;
        r->lock->renewal = NULL;
        renewal_free(r);
    }
    dlock_client_free(w->conn);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int dlock__renew_start(dlock *l)
{
    if (!l->opt.renew || l->opt.ttl_ms == 0)
        return DLOCK_OK;  /* a lock that never expires needs no renewing */
    dlock__watchdog *w = dlock__client_ext(l->client);
    if (!w) {
        if (!(w = watchdog_new(l->client)))
            return DLOCK_EIO;
        dlock__client_set_ext(l->client, w, watchdog_free);
    }
    renewal *r = calloc(1, sizeof *r);
    if (!r)
        return DLOCK_ENOMEM;
    r->lock = l;
    r->shadow = *l;
    r->shadow.err = NULL;  /* its own, made by its own failures */
    r->shadow.client = w->conn;
    r->shadow.renewal = NULL;
    r->shadow.unrenew = NULL;
    /* From the lease's start, not from now: creating the watchdog took time. */
    r->next_us = next_renewal(l, atomic_load(&l->valid_until_us) - l->opt.ttl_ms * 1000);
    pthread_mutex_lock(&w->mu);
    r->next = w->list;
    w->list = r;
    l->renewal = r;
    l->unrenew = dlock__renew_stop;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return DLOCK_OK;
}

/* Stops renewing l, waiting for an extension (or an on_lost call) in flight to finish -- unless
 * it is that on_lost call stopping it, on the watchdog's own thread. */
void dlock__renew_stop(dlock *l)
{
    renewal *r = l->renewal;
    if (!r)
        return;
    dlock__watchdog *w = dlock__client_ext(l->client);
    pthread_mutex_lock(&w->mu);
    l->renewal = NULL;
    if (pthread_equal(pthread_self(), w->thread)) {
        r->orphaned = true;
        pthread_mutex_unlock(&w->mu);
        return;
    }
    while (r->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    unlink_renewal(w, r);
    pthread_mutex_unlock(&w->mu);
    renewal_free(r);
}

/* The owner's extend of a renewed lock: the watchdog holds off meanwhile (so the two never
 * race over the lease they report), then renews at the new ttl. */
int dlock__renew_extend(dlock *l, int64_t ttl_ms)
{
    dlock__watchdog *w = dlock__client_ext(l->client);
    renewal *r = l->renewal;
    pthread_mutex_lock(&w->mu);
    while (r->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    r->busy = true;
    pthread_mutex_unlock(&w->mu);
    int rc = dlock__extend_now(l, ttl_ms);
    pthread_mutex_lock(&w->mu);
    r->busy = false;
    if (rc == DLOCK_OK) {
        r->shadow.opt.ttl_ms = ttl_ms;
        dlock__set_ttl_arg(&r->shadow, ttl_ms);
        r->next_us = next_renewal(&r->shadow, l->started_us);
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}
