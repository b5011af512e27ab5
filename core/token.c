/* token.c -- the token lock on one server.
 *
 *   acquire  SET key token NX PX ttl          (PX left out when ttl is 0: never expires)
 *            or, with fencing, acquire_fenced.lua: the same SET and, if it took the lock,
 *            INCR <key>:fence in the same script, so tokens rise strictly with each holder
 *   release  release.lua: DEL only if the value is still our token
 *   extend   extend.lua:  PEXPIRE (or PERSIST) only if the value is still our token
 *   with min_replicas, WAIT min_replicas replica_timeout_ms behind the acquire and the extend,
 *   in the same batch: a grant fewer replicas acknowledged is undone by op.c (release.lua) and
 *   counts as a failed try; such an extend fails with DLOCK_EIO and keeps the old lease
 *   the protected resource's side of fencing, on its own store: fenced_set.lua (a write) and
 *   fenced_get.lua (a read), each refusing a token older than the highest seen there
 *
 * Safety: only the holder of the token can release or extend, so a client whose lease expired
 * cannot delete the next holder's lock. Mutual exclusion holds while the holder's work fits in
 * its lease; a pause longer than the lease (GC, VM, network) lets two clients act at once, which
 * only fencing, checked by the protected resource on every read and write, makes harmless.
 * Liveness: a crashed holder's lock expires after ttl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int dlock__token_acquire(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                         dlock__batch *out)
{
    long long v;
    switch (l->phase++) {
    case 0:
        l->started_us = now->mono_us;
        if (l->opt.fencing)
            dlock__add_script(out, 0, &dlock__script_acquire_fenced, 2, l->key, l->fence_key,
                              l->token, l->ttl_arg, NULL);
        else if (l->opt.ttl_ms > 0)
            dlock__add(out, 0, "SET", l->key, l->token, "NX", "PX", l->ttl_arg, NULL);
        else
            dlock__add(out, 0, "SET", l->key, l->token, "NX", NULL);
        dlock__add_replica_wait(l, out, 0);
        return DLOCK__SEND;
    default:
        if (l->opt.fencing && dlock__reply_int(r[0], &v) && v >= 0) {
            l->fence = (uint64_t)v;
            dlock__lease_from(l, l->started_us, l->opt.ttl_ms);  /* from the request, not the reply */
            if (v == 0)
                return DLOCK_EBUSY;
            return dlock__replicated(l, r, nr, 1) ? DLOCK_OK : DLOCK__UNREPLICATED;
        }
        if (!l->opt.fencing && dlock__reply_is_status(r[0], "OK")) {
            dlock__lease_from(l, l->started_us, l->opt.ttl_ms);  /* from the request, not the reply */
            return dlock__replicated(l, r, nr, 1) ? DLOCK_OK : DLOCK__UNREPLICATED;
        }
        if (!l->opt.fencing && dlock__reply_is_nil(r[0]))
            return DLOCK_EBUSY;
        return dlock__reply_error(l, r[0], "acquire");
    }
}

/* Reads the 1/0 answer of the compare-and-act scripts. */
int dlock__owner_reply(dlock *l, const dlock_reply *r, const char *what)
{
    long long v;
    if (!dlock__reply_int(r, &v))
        return dlock__reply_error(l, r, what);
    if (v == 1)
        return DLOCK_OK;
    return dlock__fail(l, DLOCK_ENOTOWNER, "%s: the lock expired or belongs to another client",
                       what);
}

static int token_release(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                         dlock__batch *out)
{
    if (l->phase++ == 0) {
        dlock__add_script(out, 0, &dlock__script_release, 1, l->key, l->token, NULL);
        return DLOCK__SEND;
    }
    return dlock__owner_reply(l, r[0], "release");
}

/* ttl_arg holds the new lease; opt.ttl_ms is updated by the caller on success. */
int dlock__token_extend(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                        dlock__batch *out)
{
    if (l->phase++ == 0) {
        l->started_us = now->mono_us;
        dlock__add_script(out, 0, &dlock__script_extend, 1, l->key, l->token, l->ttl_arg, NULL);
        dlock__add_replica_wait(l, out, 0);
        return DLOCK__SEND;
    }
    int rc = dlock__owner_reply(l, r[0], "extend");
    if (rc == DLOCK_OK && !dlock__replicated(l, r, nr, 1))
        return dlock__unreplicated_extend(l, "extend");
    if (rc == DLOCK_OK)
        dlock__lease_from(l, l->started_us, atoll(l->ttl_arg));
    return rc;
}

/* An extend the replicas did not acknowledge: the new lease may not survive a failover, so the
 * lock keeps the one it had (a watchdog tries again, and gives the lock up when that runs out).
 * DLOCK_EIO, but not one a second go on a fresh connection would mend (op.c). */
int dlock__unreplicated_extend(dlock *l, const char *what)
{
    char why[sizeof l->err];
    snprintf(why, sizeof why, "%s", l->err);
    l->unreplicated = true;
    return dlock__fail(l, DLOCK_EIO, "%s: %s", what, why);
}

/* The protected resource's side of fencing (dlock_fenced_set, dlock_fenced_write, and the read,
 * below):
 * fenced_set.lua writes l->payload to the key if l->value is newer than the token in
 * <key>:fence, or equal to it and the writer l->token (empty: not named) is the one in
 * <key>:fence:owner. */
int dlock__fenced_set_step(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                           dlock__batch *out)
{
    long long v;
    if (l->phase++ == 0) {
        dlock__add_script(out, 0, &dlock__script_fenced_set, 3, l->key, l->fence_key,
                          l->owner_key, l->value, l->payload, l->token, NULL);
        return DLOCK__SEND;
    }
    if (!dlock__reply_int(r[0], &v))
        return dlock__reply_error(l, r[0], "fenced write");
    return v == 1 ? DLOCK_OK : DLOCK_ESTALE;
}

/* The read beside it (dlock_fenced_read): fenced_get.lua refuses l->value (the token) and the
 * reader l->token on the same terms as the write, and otherwise records them as the highest seen
 * and answers the key's value, which goes to l->payload (NULL when the key has none). The value
 * is a string or nil; the refusal is the integer 0, which no GET answers. */
int dlock__fenced_get_step(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                           dlock__batch *out)
{
    long long v;
    if (l->phase++ == 0) {
        dlock__add_script(out, 0, &dlock__script_fenced_get, 3, l->key, l->fence_key,
                          l->owner_key, l->value, l->token, NULL);
        return DLOCK__SEND;
    }
    if (dlock__reply_int(r[0], &v) && v == 0)
        return dlock__fail(l, DLOCK_ESTALE, "fenced read: a newer fencing token, or another "
                                            "holder of this one, came first");
    if (dlock__reply_is_nil(r[0]))
        return DLOCK_OK;
    if (!r[0] || r[0]->type != DLOCK_REPLY_STRING)
        return dlock__reply_error(l, r[0], "fenced read");
    free(l->payload);
    if (!(l->payload = malloc(r[0]->len + 1)))
        return dlock__fail(l, DLOCK_ENOMEM, "fenced read: no memory for the value");
    memcpy(l->payload, r[0]->str, r[0]->len);
    l->payload[r[0]->len] = '\0';
    return DLOCK_OK;
}

const dlock__algo dlock__token = {
    .name = "token",
    .acquire = dlock__token_acquire,
    .release = token_release,
    .extend = dlock__token_extend,
};
