/* redlock.c -- the token lock on N independent servers with a quorum (Redlock).
 *
 *   acquire  SET key token NX PX ttl on every server, all sent before any reply is read;
 *            held if at least N/2+1 said OK and validity = ttl - elapsed - drift > 0, with
 *            drift = ttl * drift_factor + 2 ms and elapsed on the monotonic clock; otherwise
 *            release.lua on every server (a server that timed out may still have set it) and
 *            try again later
 *   release  release.lua on every server
 *   extend   extend.lua on every server; held again only with a quorum inside the validity
 *   with min_replicas, WAIT min_replicas replica_timeout_ms behind the SET and the extend on each
 *   server: a server whose WAIT falls short has not granted (nor extended)
 *
 * Safety needs a majority of servers that did not lose the key: a server that restarts without
 * fsync'd persistence, or before the TTL passed, can let a second client reach a quorum. A
 * server that is down or slow costs one command timeout (the driver reads all servers against
 * one deadline); with a majority down, tries fail until the wait deadline. A majority that
 * refuses us (NOAUTH, NOPERM, ...) ends the acquire with DLOCK_EIO: no wait mends that. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static int quorum(const dlock *l)
{
    return l->nservers / 2 + 1;
}

/* The validity left after an operation that started at l->started_us. */
static int64_t validity_us(const dlock *l, const dlock__now *now)
{
    if (l->opt.ttl_ms == 0)
        return INT64_MAX;
    return l->opt.ttl_ms * 1000 - (now->mono_us - l->started_us) - dlock__drift_us(&l->opt);
}

static void send_all_release(dlock *l, dlock__batch *out)
{
    for (int s = 0; s < l->nservers; s++)
        dlock__add_script(out, s, &dlock__script_release, 1, l->key, l->token, NULL);
}

typedef struct tally {
    int yes;       /* did it */
    int answered;  /* replied at all, yes or no */
    int unreplicated;  /* did it, but WAIT fell short */
} tally;

/* A script's 1/0 on each server, every step-th reply (step 2: each followed by its WAIT); with a
 * WAIT, a server whose WAIT fell short counts as not done (the last such reason left in
 * l->err). */
static tally count_ones(dlock *l, const dlock_reply *const *r, int nr, int step)
{
    tally t = {0, 0, 0};
    long long v;
    for (int i = 0; i < nr; i += step) {
        if (!dlock__reply_int(r[i], &v))
            continue;
        t.answered++;
        if (v == 1 && (step == 1 || dlock__replicated(l, r, nr, i + 1)))
            t.yes++;
        else if (v == 1)
            t.unreplicated++;
    }
    return t;
}

enum { SET_SENT = 1, UNDO_SENT };

static int redlock_acquire(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                           dlock__batch *out)
{
    switch (l->phase) {
    case 0:
        l->started_us = now->mono_us;
        for (int s = 0; s < l->nservers; s++) {
            if (l->opt.ttl_ms > 0)
                dlock__add(out, s, "SET", l->key, l->token, "NX", "PX", l->ttl_arg, NULL);
            else
                dlock__add(out, s, "SET", l->key, l->token, "NX", NULL);
            dlock__add_replica_wait(l, out, s);
        }
        l->phase = SET_SENT;
        return DLOCK__SEND;
    case SET_SENT: {
        int ok = 0, held = 0, refused = 0, unreplicated = 0, step = 1 + dlock__replica_waits(l);
        const dlock_reply *refusal = NULL;
        char why[DLOCK__LOCK_ERR_LEN + 32] = "";
        for (int i = 0; i < nr; i += step) {
            bool granted = dlock__reply_is_status(r[i], "OK");
            if (granted && !dlock__replicated(l, r, nr, i + 1)) {
                granted = false;
                snprintf(why, sizeof why, ", %d unreplicated: %s", ++unreplicated, dlock__lock_err(l));
            }
            ok += granted;
            held += dlock__reply_is_nil(r[i]);
            if (dlock__reply_is_refusal(r[i])) {
                refused++;
                refusal = refusal ? refusal : r[i];
            }
        }
        l->refused = false;  /* a refused WAIT is a server that did not grant, no more */
        int64_t valid = validity_us(l, now);
        if (ok >= quorum(l) && valid > 0) {
            l->valid_until_us = valid == INT64_MAX ? INT64_MAX : now->mono_us + valid;
            return DLOCK_OK;
        }
        /* Servers that refuse us (NOAUTH, NOPERM, ...) will refuse the next try alike: with too
         * many of them no quorum can ever be had, and the acquire should end rather than wait. */
        l->refused = refused > l->nservers - quorum(l);
        if (l->refused)
            dlock__fail(l, DLOCK_EIO, "%d of %d servers refused: %s", refused, l->nservers,
                        refusal->str);
        else
            dlock__fail(l, DLOCK_EBUSY,
                        "%d of %d servers granted (%d held elsewhere, %d failed%s)%s", ok,
                        l->nservers, held, l->nservers - ok - held, why,
                        ok >= quorum(l) ? ", too late for the validity" : "");
        send_all_release(l, out);
        l->phase = UNDO_SENT;
        return DLOCK__SEND;
    }
    default:
        /* undone or not, the try failed; TTLs clean up what is left */
        return l->refused ? DLOCK_EIO : DLOCK_EBUSY;
    }
}

static int redlock_release(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                           dlock__batch *out)
{
    if (l->phase++ == 0) {
        send_all_release(l, out);
        return DLOCK__SEND;
    }
    tally t = count_ones(l, r, nr, 1);
    if (t.yes >= quorum(l))
        return DLOCK_OK;
    if (t.answered >= quorum(l))
        return dlock__fail(l, DLOCK_ENOTOWNER, "release: only %d of %d servers still held it",
                           t.yes, l->nservers);
    return dlock__fail(l, DLOCK_EIO, "release: only %d of %d servers answered", t.answered,
                       l->nservers);
}

static int redlock_extend(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                          dlock__batch *out)
{
    if (l->phase++ == 0) {
        if (now->mono_us >= l->valid_until_us)
            return dlock__fail(l, DLOCK_ENOTOWNER, "extend: the validity already ran out");
        l->started_us = now->mono_us;
        for (int s = 0; s < l->nservers; s++) {
            dlock__add_script(out, s, &dlock__script_extend, 1, l->key, l->token, l->ttl_arg,
                              NULL);
            dlock__add_replica_wait(l, out, s);
        }
        return DLOCK__SEND;
    }
    tally t = count_ones(l, r, nr, 1 + dlock__replica_waits(l));
    l->refused = false;
    dlock_options o = l->opt;
    o.ttl_ms = atoll(l->ttl_arg);
    int64_t valid = o.ttl_ms == 0 ? INT64_MAX
                                  : o.ttl_ms * 1000 - (now->mono_us - l->started_us) -
                                        dlock__drift_us(&o);
    if (t.yes >= quorum(l) && valid > 0) {
        l->valid_until_us = valid == INT64_MAX ? INT64_MAX : now->mono_us + valid;
        return DLOCK_OK;
    }
    if (t.yes < quorum(l) && t.yes + t.unreplicated >= quorum(l))
        return dlock__unreplicated_extend(l, "extend");  /* still ours: the old validity holds */
    if (t.answered >= quorum(l) || t.yes >= quorum(l))
        return dlock__fail(l, DLOCK_ENOTOWNER, "extend: %d of %d servers extended it%s", t.yes,
                           l->nservers, t.yes >= quorum(l) ? ", too late" : "");
    return dlock__fail(l, DLOCK_EIO, "extend: only %d of %d servers answered", t.answered,
                       l->nservers);
}

const dlock__algo dlock__redlock = {
    .name = "redlock",
    .acquire = redlock_acquire,
    .release = redlock_release,
    .extend = redlock_extend,
};
