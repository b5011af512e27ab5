/* legacy.c -- the classic SETNX lock (ServiceStack.Redis RedisLock), reproduced with its flaws
 * so the harness can show them.
 *
 *   acquire  value = wall clock (Unix ms) + lease + 1, lease = ttl or 365 days
 *            SETNX key value                      -> 1: acquired
 *            WATCH key; GET key                   -> not a number, or later than our own wall
 *                                                    clock: UNWATCH, busy
 *            MULTI; SET key value; EXEC           -> committed: acquired (taken over);
 *                                                    aborted (the key changed): busy
 *   release  DEL key, unconditionally
 *   with min_replicas, WAIT min_replicas replica_timeout_ms behind the SETNX and behind the
 *   EXEC: a grant fewer replicas acknowledged is deleted again by release.lua on our value (a
 *   compare-and-delete, unlike the release) and counts as a failed try
 *
 * No Redis TTL is ever set; expiry is judged by each client's wall clock. Known flaws, kept:
 * a holder whose lease ran out deletes its successor's lock on release; a client whose clock
 * runs ahead takes over a live lock; a lock left by a crashed client blocks everyone for the
 * whole lease (365 days without a ttl). The step reads time only from its `now` argument. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define LEGACY_FOREVER_MS (365LL * 24 * 3600 * 1000)

enum { SETNX_SENT = 1, WATCH_SENT, EXEC_SENT, UNWATCH_SENT };

/* The stored expiry, if the value is a whole number (the seed's long.TryParse). */
static bool parse_expiry(const dlock_reply *r, int64_t *out)
{
    if (!r || r->type != DLOCK_REPLY_STRING || r->len == 0)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(r->str, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static int acquired(dlock *l, const dlock_reply *const *r, int nr, int wait_at)
{
    dlock__lease_from(l, l->started_us, l->opt.ttl_ms > 0 ? l->opt.ttl_ms : LEGACY_FOREVER_MS);
    return dlock__replicated(l, r, nr, wait_at) ? DLOCK_OK : DLOCK__UNREPLICATED;
}

static int legacy_acquire(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                          dlock__batch *out)
{
    long long v;
    int64_t expiry;
    switch (l->phase) {
    case 0: {
        int64_t lease = l->opt.ttl_ms > 0 ? l->opt.ttl_ms : LEGACY_FOREVER_MS;
        l->started_us = now->mono_us;
        snprintf(l->value, sizeof l->value, "%" PRId64, now->wall_ms + lease + 1);
        dlock__add(out, 0, "SETNX", l->key, l->value, NULL);
        dlock__add_replica_wait(l, out, 0);
        l->phase = SETNX_SENT;
        return DLOCK__SEND;
    }
    case SETNX_SENT:
        if (!dlock__reply_int(r[0], &v))
            return dlock__reply_error(l, r[0], "SETNX");
        if (v == 1)
            return acquired(l, r, nr, 1);
        dlock__add(out, 0, "WATCH", l->key, NULL);
        dlock__add(out, 0, "GET", l->key, NULL);
        l->phase = WATCH_SENT;
        return DLOCK__SEND;
    case WATCH_SENT:
        if (!dlock__reply_is_status(r[0], "OK"))
            return dlock__reply_error(l, r[0], "WATCH");
        if (r[1] && r[1]->type == DLOCK_REPLY_ERROR)
            return dlock__reply_error(l, r[1], "GET");
        if (!parse_expiry(r[1], &expiry) || expiry > now->wall_ms) {
            dlock__add(out, 0, "UNWATCH", NULL);
            l->phase = UNWATCH_SENT;
            return DLOCK__SEND;
        }
        dlock__add(out, 0, "MULTI", NULL);
        dlock__add(out, 0, "SET", l->key, l->value, NULL);
        dlock__add(out, 0, "EXEC", NULL);
        dlock__add_replica_wait(l, out, 0);
        l->phase = EXEC_SENT;
        return DLOCK__SEND;
    case EXEC_SENT:
        if (!dlock__reply_is_status(r[0], "OK"))
            return dlock__reply_error(l, r[0], "MULTI");
        if (dlock__reply_is_nil(r[2]))
            return DLOCK_EBUSY;  /* another client changed the key after our WATCH */
        if (r[2] && r[2]->type == DLOCK_REPLY_ARRAY)
            return acquired(l, r, nr, 3);
        return dlock__reply_error(l, r[2], "EXEC");
    case UNWATCH_SENT:
        if (!dlock__reply_is_status(r[0], "OK"))
            return dlock__reply_error(l, r[0], "UNWATCH");
        return DLOCK_EBUSY;
    }
    return dlock__fail(l, DLOCK_EINVAL, "legacy acquire: bad phase %d", l->phase);
}

static int legacy_release(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                          dlock__batch *out)
{
    long long v;
    if (l->phase++ == 0) {
        dlock__add(out, 0, "DEL", l->key, NULL);
        return DLOCK__SEND;
    }
    return dlock__reply_int(r[0], &v) ? DLOCK_OK : dlock__reply_error(l, r[0], "DEL");
}

/* A grant WAIT did not confirm: deleted only while it holds the value we wrote, so that a
 * client that took it over meanwhile keeps it. */
static int legacy_unreplicated(dlock *l, const dlock__now *now, const dlock_reply *const *r,
                               int nr, dlock__batch *out)
{
    if (l->phase++ == 0) {
        dlock__add_script(out, 0, &dlock__script_release, 1, l->key, l->value, NULL);
        return DLOCK__SEND;
    }
    return dlock__owner_reply(l, r[0], "undo");
}

static int legacy_extend(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                         dlock__batch *out)
{
    return dlock__fail(l, DLOCK_EINVAL, "the legacy algorithm has no extend");
}

const dlock__algo dlock__legacy = {
    .name = "legacy",
    .acquire = legacy_acquire,
    .release = legacy_release,
    .extend = legacy_extend,
    .unreplicated = legacy_unreplicated,
    .wall_clock = true,
    .keeps_lost_tries = true,   /* it cannot tell its own value from another's */
    .takes_late_grants = true,  /* as the seed did */
};
