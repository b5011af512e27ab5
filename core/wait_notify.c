/* wait_notify.c -- the token lock with waiters woken by the releasing client.
 *
 *   acquire  as token (SET NX PX, or the fencing script)
 *   wait     BLPOP <key>:signal for at most the back-off delay, in slices; with a ttl of a
 *            second or more each slice carries the next try behind it
 *   release  notify_release.lua: compare-and-delete, then push one element to <key>:signal
 *
 * A release wakes one blocked waiter within a round trip instead of leaving everyone asleep for
 * a back-off step; with the try behind its BLPOP, the woken waiter has the lock before the
 * releasing client can try again. The signal is a list rather than a pub/sub message so that a
 * release which happens between a waiter's failed try and its BLPOP is kept, not lost.
 * Whatever goes wrong with a signal (the releaser crashed between DEL and RPUSH, a partition, a
 * newcomer took the lock first) costs time only: the waiter tries again when its slice ends
 * (with the try behind the BLPOP) or its back-off delay does, and a crashed holder's lock still
 * expires by its TTL. */
#include "internal.h"

static int notify_release(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                          dlock__batch *out)
{
    if (l->phase++ == 0) {
        dlock__add_script(out, 0, &dlock__script_notify_release, 2, l->key, l->signal_key,
                          l->token, NULL);
        return DLOCK__SEND;
    }
    return dlock__owner_reply(l, r[0], "release");
}

enum { BLPOP_SENT = 10, TRY_SENT };

/* Whether the next try rides behind the BLPOP, in the same write: Redis runs it the moment the
 * BLPOP returns, before the releasing client's own next try can arrive, so a woken waiter gets
 * the lock without a round trip of its own. Its lease is dated from the batch's send, up to a
 * slice and Redis's timer slack (200 ms) before Redis set it: a ttl of at least ten slices
 * loses at most a fifth of it. Never with ttl 0: the queued try runs even for a waiter that
 * froze in its BLPOP, and a lock that never expires would then stay with it for good; with a
 * ttl it holds the lock one ttl, as a poll client frozen with its SET in flight does. */
static bool try_rides_along(const dlock *l)
{
    return l->opt.ttl_ms > 0 && l->opt.ttl_ms * 1000 >= 10 * DLOCK__WAIT_SLICE_US;
}

/* Woken: try again now. Timed out: the driver waits on, or tries again once the back-off delay
 * is used up. With the try behind the BLPOP: taken, or held (woken or not), and the wait goes
 * on; at the end of the delay that try was the next one. */
static int notify_wait(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                       dlock__batch *out)
{
    switch (l->phase) {
    case 0:
        dlock__add_blpop(l, out, l->signal_key);
        l->phase = BLPOP_SENT;
        if (try_rides_along(l)) {
            l->phase = 0;
            dlock__token_acquire(l, now, NULL, 0, out);
            l->wait_tries++;
            l->phase = TRY_SENT;
        }
        return DLOCK__SEND;
    case BLPOP_SENT:
        if (dlock__reply_is_nil(r[0]))
            return DLOCK__WAITED;
        if (r[0] && r[0]->type == DLOCK_REPLY_ARRAY)
            return DLOCK_EBUSY;
        return dlock__reply_error(l, r[0], "BLPOP");
    default: {
        if (!dlock__reply_is_nil(r[0]) && !(r[0] && r[0]->type == DLOCK_REPLY_ARRAY))
            return dlock__reply_error(l, r[0], "BLPOP");
        l->phase = 1;  /* the try's reply, read by the try itself */
        int rc = dlock__token_acquire(l, now, r + 1, nr - 1, out);
        return rc == DLOCK_EBUSY ? DLOCK__TRIED : rc;
    }
    }
}

const dlock__algo dlock__token_notify = {
    .name = "token+notify",
    .acquire = dlock__token_acquire,
    .release = notify_release,
    .extend = dlock__token_extend,
    .wait = notify_wait,
};
