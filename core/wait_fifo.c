/* wait_fifo.c -- the token lock with waiters served in arrival order, and hand-off on release.
 *
 *   acquire  fifo_acquire.lua: join the queue <key>:queue (once, numbered by <key>:queue:seq),
 *            refresh our heartbeat in <key>:queue:beat, take the lock only if we are the head
 *            and it is free
 *   wait     BLPOP <key>:signal:<token>, DLOCK__FIFO_HEARTBEAT_MS (or less before the deadline);
 *            the back-off policy plays no part, since the hand-off wakes the waiter
 *   release  fifo_release.lua: compare-and-delete, then set the lock to the first live
 *            waiter's token, with a lease of at most the waiter bound, and push its fencing
 *            token to that waiter's signal list; the waiter's extend makes the lease its own
 *            ttl and confirms the lock is still its own: queued behind its BLPOP when its ttl
 *            is within the bound (no round trip of its own), else sent once the signal came
 *   leave    fifo_release.lua: a waiter that gives up leaves the queue, and passes the lock on
 *            if it was handed to it meanwhile
 *   with min_replicas, WAIT min_replicas replica_timeout_ms behind the try and behind every
 *   extend that claims a hand-off: a grant or claim fewer replicas acknowledged is given up with
 *   fifo_release.lua (the lock passes on, the waiter leaves the queue and joins it again at its
 *   next try) and counts as a failed try
 *
 * Order: a newcomer joins at the tail and can take the lock only from the head, so nobody jumps
 * the queue. Hand-off: the next holder owns the lock when the release script ends; its BLPOP
 * returns with the fencing token, and an extend makes the lease its own. Crashed waiters: every
 * try refreshes the waiter's heartbeat deadline (DLOCK__FIFO_WAITER_BOUND_MS ahead) and a waiter
 * blocks at most DLOCK__FIFO_HEARTBEAT_MS between tries, so a waiter that crashed or gave up
 * without leaving is dropped from the queue within the bound. A waiter that crashes after the
 * lock was handed to it holds it for at most the bound, since the hand-off lease is that short
 * until the live waiter extends it. */
#include <stdlib.h>

#include "internal.h"

#define STR(x) #x
#define XSTR(x) STR(x)

static int fifo_acquire(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                        dlock__batch *out)
{
    long long v;
    if (l->phase++ == 0) {
        l->started_us = now->mono_us;
        dlock__add_script(out, 0, &dlock__script_fifo_acquire, 6, l->key, l->queue_key,
                          l->beat_key, l->seq_key, l->fence_key, l->signal_key, l->token,
                          l->member, l->ttl_arg, XSTR(DLOCK__FIFO_WAITER_BOUND_MS),
                          l->opt.fencing ? "1" : "0", NULL);
        dlock__add_replica_wait(l, out, 0);
        return DLOCK__SEND;
    }
    if (!dlock__reply_int(r[0], &v))
        return dlock__reply_error(l, r[0], "fifo acquire");
    if (v < 0)
        return DLOCK_EBUSY;
    l->fence = (uint64_t)v;
    dlock__lease_from(l, l->started_us, l->opt.ttl_ms);
    return dlock__replicated(l, r, nr, 1) ? DLOCK_OK : DLOCK__UNREPLICATED;
}

/* The claim of a hand-off: extend.lua (and WAIT), sent with or after the signal. */
static void add_claim(dlock *l, dlock__batch *out)
{
    dlock__add_script(out, 0, &dlock__script_extend, 1, l->key, l->token, l->ttl_arg, NULL);
    dlock__add_replica_wait(l, out, 0);
}

static int fifo_release(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                        dlock__batch *out)
{
    if (l->phase++ == 0) {
        dlock__add_script(out, 0, &dlock__script_fifo_release, 4, l->key, l->queue_key,
                          l->beat_key, l->fence_key, l->token, l->member, l->signal_prefix,
                          XSTR(DLOCK__FIFO_WAITER_BOUND_MS), NULL);
        return DLOCK__SEND;
    }
    return dlock__owner_reply(l, r[0], "release");
}

enum { CLAIM_SENT = 1, SIGNAL_SENT, BLPOP_SENT, EXTEND_SENT };

/* Whether the claim may ride behind the BLPOP: only when the waiter's whole lease fits in the
 * waiter bound. A command queued behind a BLPOP runs when the BLPOP returns whether or not the
 * waiter is still there to read the reply -- a waiter frozen or cut off after its last heartbeat
 * would otherwise be given its full ttl (forever, with ttl 0) instead of the bound the release
 * script grants a hand-off. */
static bool claim_rides_along(const dlock *l)
{
    return l->opt.ttl_ms > 0 && l->opt.ttl_ms <= DLOCK__FIFO_WAITER_BOUND_MS;
}

/* Ours, through the claim behind the BLPOP; the lease counts from the batch's send. When the
 * BLPOP waited more than half the ttl that leaves less than half of it as far as we know (the
 * server set it later), so one more extend dates it from now. */
static int handed_over(dlock *l, const dlock__now *now, const dlock_reply *signal,
                       dlock__batch *out)
{
    l->fence = strtoull(signal->str, NULL, 10);
    if (now->mono_us - l->started_us <= l->opt.ttl_ms * 500) {
        dlock__lease_from(l, l->started_us, l->opt.ttl_ms);
        return DLOCK_OK;
    }
    l->started_us = now->mono_us;
    add_claim(l, out);
    l->phase = EXTEND_SENT;
    return DLOCK__SEND;
}

/* The hand-off arrives as our signal list's element: the fencing token. Its lease is at most
 * the waiter bound, and when it started is known only to the server, so the waiter takes the
 * lease as its own with an extend, which also says whether the lock is still ours (a stale
 * signal, or a hand-off whose lease ran out, grants nothing).
 *
 * With a ttl within the bound the extend is sent right behind the BLPOP, in the same write:
 * Redis runs a client's commands in order, so it runs the moment the BLPOP returns, and the
 * hand-off costs no round trip of its own. The lease is dated from the batch's send; a hand-off
 * late in the slice gets one more extend (handed_over). A hand-off that comes after the BLPOP
 * timed out is caught by the extend; its signal is fetched with one LPOP. With a longer ttl the
 * waiter reads the signal first, then extends (one round trip). */
static int fifo_wait(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                     dlock__batch *out)
{
    switch (l->phase) {
    case 0: {
        bool pipelined = claim_rides_along(l);
        l->wait_us = DLOCK__FIFO_HEARTBEAT_MS * 1000;
        if (l->wait_us > l->wait_left_us)
            l->wait_us = l->wait_left_us;
        l->started_us = now->mono_us;
        dlock__add_blpop(l, out, l->signal_key);
        if (pipelined)
            add_claim(l, out);
        l->phase = pipelined ? CLAIM_SENT : BLPOP_SENT;
        return DLOCK__SEND;
    }
    case CLAIM_SENT: {
        bool signalled = r[0] && r[0]->type == DLOCK_REPLY_ARRAY && r[0]->elements == 2 &&
                         r[0]->element[1].type == DLOCK_REPLY_STRING;
        if (!signalled && !dlock__reply_is_nil(r[0]))
            return dlock__reply_error(l, r[0], "BLPOP");
        int rc = dlock__owner_reply(l, r[1], "extend after hand-off");
        if (rc == DLOCK_ENOTOWNER)
            return DLOCK_EBUSY;  /* not handed to us, or its lease ran out first: queue again */
        if (rc != DLOCK_OK)
            return rc;
        if (!dlock__replicated(l, r, nr, 2))
            return DLOCK__UNREPLICATED;
        if (!signalled) {  /* handed over after the BLPOP timed out */
            dlock__add(out, 0, "LPOP", l->signal_key, NULL);
            l->phase = SIGNAL_SENT;
            return DLOCK__SEND;
        }
        return handed_over(l, now, &r[0]->element[1], out);
    }
    case SIGNAL_SENT:
        if (!r[0] || r[0]->type != DLOCK_REPLY_STRING)
            return dlock__reply_error(l, r[0], "LPOP of the hand-off signal");
        return handed_over(l, now, r[0], out);
    case BLPOP_SENT:
        if (dlock__reply_is_nil(r[0]))
            return DLOCK_EBUSY;
        if (!r[0] || r[0]->type != DLOCK_REPLY_ARRAY || r[0]->elements != 2 ||
            r[0]->element[1].type != DLOCK_REPLY_STRING)
            return dlock__reply_error(l, r[0], "BLPOP");
        l->fence = strtoull(r[0]->element[1].str, NULL, 10);
        l->started_us = now->mono_us;
        add_claim(l, out);
        l->phase = EXTEND_SENT;
        return DLOCK__SEND;
    default: {
        int rc = dlock__owner_reply(l, r[0], "extend after hand-off");
        if (rc == DLOCK_ENOTOWNER)
            return DLOCK_EBUSY;  /* the hand-off lease ran out first: queue again */
        if (rc != DLOCK_OK)
            return rc;
        if (!dlock__replicated(l, r, nr, 1))
            return DLOCK__UNREPLICATED;
        dlock__lease_from(l, l->started_us, l->opt.ttl_ms);
        return DLOCK_OK;
    }
    }
}

static int fifo_leave(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                      dlock__batch *out)
{
    int rc = fifo_release(l, now, r, nr, out);
    return rc == DLOCK_ENOTOWNER ? DLOCK_OK : rc;
}

const dlock__algo dlock__token_fifo = {
    .name = "token+fifo",
    .acquire = fifo_acquire,
    .release = fifo_release,
    .extend = dlock__token_extend,
    .wait = fifo_wait,
    .leave = fifo_leave,
    .keeps_lost_tries = true,  /* its acquire takes a lock holding our token as ours, and a
                                  release would lose our place in the queue */
};
