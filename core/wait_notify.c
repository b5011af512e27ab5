/* wait_notify.c -- the token lock with waiters woken by the releasing client.
 *
 *   acquire  as token (SET NX PX, or the fencing script)
 *   wait     BLPOP <key>:signal for at most the back-off delay
 *   release  notify_release.lua: compare-and-delete, then push one element to <key>:signal
 *
 * A release wakes one blocked waiter within a round trip instead of leaving everyone asleep for
 * a back-off step. The signal is a list rather than a pub/sub message so that a release which
 * happens between a waiter's failed try and its BLPOP is kept, not lost. Whatever goes wrong
 * with a signal (the releaser crashed between DEL and RPUSH, a partition, a newcomer took the
 * lock first) costs time only: BLPOP returns after the back-off delay and the waiter tries
 * again, and a crashed holder's lock still expires by its TTL. */
#include "internal.h"

static int notify_release(dlock *l, const dlock__now *now, redisReply *const *r, int nr,
                          dlock__batch *out)
{
    if (l->phase++ == 0) {
        dlock__add_script(out, 0, &dlock__script_notify_release, 2, l->key, l->signal_key,
                          l->token, NULL);
        return DLOCK__SEND;
    }
    return dlock__owner_reply(l, r[0], "release");
}

/* Woken: try again now. Timed out: the driver waits on, or tries again once the back-off delay
 * is used up. */
static int notify_wait(dlock *l, const dlock__now *now, redisReply *const *r, int nr,
                       dlock__batch *out)
{
    if (l->phase++ == 0) {
        dlock__add_blpop(l, out, l->signal_key);
        return DLOCK__SEND;
    }
    if (dlock__reply_is_nil(r[0]))
        return DLOCK__WAITED;
    if (r[0] && r[0]->type == REDIS_REPLY_ARRAY)
        return DLOCK_EBUSY;
    return dlock__reply_error(l, r[0], "BLPOP");
}

const dlock__algo dlock__token_notify = {
    .name = "token+notify",
    .acquire = dlock__token_acquire,
    .release = notify_release,
    .extend = dlock__token_extend,
    .wait = notify_wait,
};
