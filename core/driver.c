/* driver.c -- the blocking driver: runs an algorithm's step functions over a client's
 * connections, and the wait between tries.
 *
 * acquire: try; if the lock is held (or Redis could not be reached), wait -- sleep the back-off
 * delay, or run the wait mode's wait step (BLPOP on a signal, in slices) -- and try again, until
 * the lock is taken, wait_timeout_ms runs out, the client is interrupted, or another error
 * occurs. The deadline is on the monotonic clock: the last wait is cut to it and one last try
 * is made there, then DLOCK_ETIMEDOUT (or DLOCK_EIO when that try could not reach Redis). A
 * try-once returns the first try's result. A wait mode that keeps state on the server (a FIFO
 * queue entry) gets a leave step when the caller gives up; a try whose reply was lost is
 * undone by token (see undo_unconfirmed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static dlock__now now_of(const dlock *l)
{
    dlock__now n = {.mono_us = dlock__mono_us()};
    n.wall_ms = l->opt.wallclock ? l->opt.wallclock(l->opt.wallclock_ud) : dlock__wall_ms();
    return n;
}

static void free_replies(redisReply **r, int n)
{
    for (int i = 0; i < n; i++) {
        freeReplyObject(r[i]);
        r[i] = NULL;
    }
}

/* Runs one operation (a try, a wait, a release, an extend) to its decision, on client c. */
int dlock__run_on(dlock *l, dlock_client *c, dlock__step_fn step)
{
    dlock__batch out;
    redisReply *replies[DLOCK__MAX_BATCH];
    int nreplies = 0, rc;

    l->phase = 0;
    l->err[0] = '\0';
    for (;;) {
        dlock__now now = now_of(l);
        out.n = 0;
        out.block_ms = 0;
        rc = step(l, &now, replies, nreplies, &out);
        free_replies(replies, nreplies);
        if (rc != DLOCK__SEND)
            break;
        rc = dlock__exchange(c, &out, replies, l->opt.command_timeout_ms);
        if (rc != DLOCK_OK)
            return rc;
        nreplies = out.n;
    }
    if (rc != DLOCK_OK && rc != DLOCK_EBUSY && l->err[0])
        dlock__client_set_err(c, l->err);
    return rc;
}

int dlock__run(dlock *l, dlock__step_fn step)
{
    return dlock__run_on(l, l->client, step);
}

/* Between two tries: OK = the lock was handed to us, EBUSY = try again (also after an
 * interrupted sleep: the loop's check reports it), ECANCELED = the hook cancelled, EIO. */
static int wait_between(dlock *l, int64_t delay_us, int64_t left_us)
{
    if (!l->algo->wait) {
        dlock__client_sleep(l->client, delay_us);
        return DLOCK_EBUSY;
    }
    /* A wait blocked in Redis cannot be woken from here, so it goes in slices, and an
     * interrupt is seen within one. */
    int64_t end = dlock__mono_us() + delay_us;
    int rc;
    do {
        int64_t rest = end - dlock__mono_us();
        l->wait_us = rest < DLOCK__WAIT_SLICE_US ? rest : DLOCK__WAIT_SLICE_US;
        l->wait_left_us = left_us;
        rc = dlock__run(l, l->algo->wait);
    } while (rc == DLOCK__WAITED && dlock__mono_us() < end &&
             !dlock__client_interrupt_pending(l->client));
    return rc == DLOCK__WAITED ? DLOCK_EBUSY : rc;
}

static void set_timeout_err(dlock *l)
{
    char msg[256];
    snprintf(msg, sizeof msg, "timed out waiting for the lock%s%s%s", l->err[0] ? " (last try: " : "",
             l->err, l->err[0] ? ")" : "");
    dlock__client_set_err(l->client, msg);
}

/* Deletes the lock if it holds our token; true when it did. A try whose reply was lost may have
 * taken the lock all the same, and every later try of this call would then be refused by our own
 * token until its TTL -- forever without one. The legacy lock cannot tell its own value from
 * another's, so it is left alone. */
static bool undo_unconfirmed(dlock *l)
{
    char err[sizeof l->err];
    /* legacy cannot tell; fifo needs no undo: its acquire script takes a lock that holds our
     * token as ours, and its release would cost us our place in the queue. */
    if (l->algo == &dlock__legacy || l->algo == &dlock__token_fifo)
        return false;
    memcpy(err, l->err, sizeof err);
    bool ours = dlock__run(l, l->algo->release) == DLOCK_OK;
    memcpy(l->err, err, sizeof err);
    return ours;
}

/* A lock granted with no lease left (the reply, or a FIFO hand-off, took longer than the ttl)
 * may already be someone else's: it counts as a failed try. */
static int check_granted(dlock *l, int rc)
{
    if (rc == DLOCK_OK && l->algo != &dlock__legacy &&
        atomic_load(&l->valid_until_us) <= dlock__mono_us()) {
        undo_unconfirmed(l);
        return dlock__fail(l, DLOCK_EBUSY, "granted after its lease had run out");
    }
    return rc;
}

/* Redis unreachable is a failed try like a held lock while there is time to wait: the next try
 * reconnects (a restarted server, a dropped connection). */
static bool retryable(int rc)
{
    return rc == DLOCK_EBUSY || rc == DLOCK_EIO;
}

static int wait_loop(dlock *l)
{
    dlock_client *c = l->client;
    const dlock_options *o = &l->opt;
    dlock__rng *rng = dlock__client_rng(c, o->seed);
    int64_t start = dlock__mono_us();
    int64_t deadline = o->wait_timeout_ms > 0 ? start + o->wait_timeout_ms * 1000 : INT64_MAX;
    int64_t prev_us = 0;
    uint64_t tries = 0;
    bool unconfirmed = false;  /* a try failed without an answer: it may hold the lock */
    int rc;

    dlock__client_begin_acquire(c);
    for (int failures = 1;; failures++) {
        if (dlock__client_interrupted(c)) {
            rc = DLOCK_ECANCELED;
            break;
        }
        tries++;
        rc = check_granted(l, dlock__run(l, l->algo->acquire));
        if (rc == DLOCK_EIO) {
            unconfirmed = true;
        } else if (rc == DLOCK_EBUSY && unconfirmed) {
            unconfirmed = false;
            if (undo_unconfirmed(l)) {
                failures--;  /* it was our own lost try that held it: try again at once */
                continue;
            }
        }
        if (!retryable(rc) || o->wait_timeout_ms == 0)
            break;
        int64_t now = dlock__mono_us();
        if (now >= deadline) {
            if (rc == DLOCK_EBUSY) {
                rc = DLOCK_ETIMEDOUT;
                set_timeout_err(l);
            }
            break;
        }
        int64_t left = deadline == INT64_MAX ? INT64_MAX : deadline - now;
        int64_t delay = dlock__backoff_us(&o->backoff, failures, &prev_us, rng);
        if (delay > left)
            delay = left;
        rc = check_granted(l, wait_between(l, delay, left));
        if (!retryable(rc))
            break;  /* handed to us, or cancelled by the hook */
    }
    if (rc != DLOCK_OK && unconfirmed)
        undo_unconfirmed(l);
    if (rc != DLOCK_OK && l->algo->leave)
        dlock__run(l, l->algo->leave);  /* a crash (the hook cancels) cannot leave: the bound does */
    dlock__client_end_acquire(c, tries, dlock__mono_us() - start);
    if (rc == DLOCK_ECANCELED)
        dlock__client_set_err(c, "canceled");
    return rc;
}

int dlock_acquire(dlock_client *c, const char *key, const dlock_options *o, dlock **out)
{
    dlock_options defaults;
    char err[160];
    if (!c || !key || !out)
        return DLOCK_EINVAL;
    *out = NULL;
    if (!o) {
        dlock_options_init(&defaults);
        o = &defaults;
    }
    if (dlock__check_options(o, dlock__client_nservers(c), err, sizeof err) != DLOCK_OK) {
        dlock__client_set_err(c, err);
        return DLOCK_EINVAL;
    }
    dlock *l = dlock__lock_new(c, key, o, dlock__client_nservers(c));
    if (!l)
        return DLOCK_ENOMEM;
    int rc = wait_loop(l);
    if (rc == DLOCK_OK && (rc = dlock__renew_start(l)) != DLOCK_OK)
        dlock__run(l, l->algo->release);  /* no watchdog: do not leave the lock behind */
    if (rc == DLOCK_OK)
        *out = l;
    else
        dlock__lock_free(l);
    return rc;
}

/* Release and extend are safe to repeat (compare-and-act), so an I/O error gets one more go
 * on a fresh connection: a connection left over from before a server restart fails once. */
static int run_twice_on_eio(dlock *l, dlock__step_fn step)
{
    int rc = dlock__run(l, step);
    return rc == DLOCK_EIO ? dlock__run(l, step) : rc;
}

int dlock_release(dlock *l)
{
    if (!l)
        return DLOCK_EINVAL;
    dlock__renew_stop(l);
    int rc = run_twice_on_eio(l, l->algo->release);
    if (atomic_load(&l->lost))
        rc = DLOCK_ENOTOWNER;  /* the delete was best effort: the lease had already lapsed */
    dlock__lock_free(l);
    return rc;
}

void dlock_abandon(dlock *l)
{
    if (!l)
        return;
    dlock__renew_stop(l);
    dlock__lock_free(l);
}

int dlock__extend_now(dlock *l, int64_t ttl_ms)
{
    char old[sizeof l->ttl_arg];
    memcpy(old, l->ttl_arg, sizeof old);
    dlock__set_ttl_arg(l, ttl_ms);
    int rc = run_twice_on_eio(l, l->algo->extend);
    if (rc == DLOCK_OK)
        l->opt.ttl_ms = ttl_ms;
    else
        memcpy(l->ttl_arg, old, sizeof old);
    return rc;
}

int dlock_extend(dlock *l, int64_t ttl_ms)
{
    if (!l || ttl_ms < 0)
        return DLOCK_EINVAL;
    if (atomic_load(&l->lost))
        return DLOCK_ENOTOWNER;
    if (l->renewal)
        return dlock__renew_extend(l, ttl_ms);
    return dlock__extend_now(l, ttl_ms);
}
