/* lock.c -- options, error strings, and a lock's state apart from any I/O. */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void dlock_options_init(dlock_options *o)
{
    *o = (dlock_options){
        .algorithm = DLOCK_TOKEN,
        .ttl_ms = 30000,
        .wait_timeout_ms = -1,
        .wait = DLOCK_WAIT_POLL,
        .backoff = {.policy = DLOCK_BACKOFF_EXPONENTIAL, .base_ms = 1, .cap_ms = 100},
        .renew = false,
        .fencing = false,
        .drift_factor = 0.01,
        .command_timeout_ms = 1000,
        .seed = 0,
        .min_replicas = 0,
        .replica_timeout_ms = 100,
    };
}

const char *dlock_strerror(int code)
{
    switch (code) {
    case DLOCK_OK: return "ok";
    case DLOCK_ETIMEDOUT: return "timed out waiting for the lock";
    case DLOCK_EBUSY: return "the lock is held";
    case DLOCK_ENOTOWNER: return "the lock is no longer ours";
    case DLOCK_EIO: return "Redis I/O or protocol error";
    case DLOCK_EINVAL: return "invalid argument";
    case DLOCK_ECANCELED: return "canceled";
    case DLOCK_ENOMEM: return "out of memory";
    case DLOCK_ESTALE: return "stale fencing token";
    }
    return "unknown error";
}

/* Durations become microseconds added to clock readings (deadlines, leases, back-off
 * delays): one past DLOCK_MAX_DURATION_MS could overflow int64 on the way. The messages state
 * the bound. */
_Static_assert(DLOCK_MAX_DURATION_MS == 1000000000000LL, "the messages below give the bound");

static bool in_range(int64_t ms, int64_t lo)
{
    return ms >= lo && ms <= DLOCK_MAX_DURATION_MS;
}

#define TTL_RANGE "ttl_ms must be 0 (never expires) to 1000000000000 (DLOCK_MAX_DURATION_MS)"

int dlock__check_ttl(dlock_client *c, int64_t ttl_ms)
{
    if (in_range(ttl_ms, 0))
        return DLOCK_OK;
    if (c)
        dlock__client_set_err(c, TTL_RANGE);
    return DLOCK_EINVAL;
}

/* Option combinations that cannot work and values out of range, refused before anything is
 * sent. */
int dlock__check_options(const dlock_options *o, int nservers, char *err, size_t errlen)
{
    const char *why = NULL;
    bool redlock = o->algorithm == DLOCK_REDLOCK;
    if ((unsigned)o->algorithm > DLOCK_REDLOCK)
        why = "unknown algorithm";
    else if (!redlock && nservers != 1)
        why = "token and legacy locks take exactly one server URL";
    else if (redlock && (nservers % 2 == 0 || nservers > DLOCK__MAX_SERVERS))
        why = "redlock takes an odd number of servers, 1 to 9";
    else if (!in_range(o->ttl_ms, 0))
        why = TTL_RANGE;
    else if (!in_range(o->wait_timeout_ms, -1))
        why = "wait_timeout_ms must be -1 (forever), 0 (try once) or up to 1000000000000 "
              "(DLOCK_MAX_DURATION_MS)";
    else if (!in_range(o->command_timeout_ms, 1))
        why = "command_timeout_ms must be 1 to 1000000000000 (DLOCK_MAX_DURATION_MS)";
    else if (o->backoff.base_ms < 0 || o->backoff.cap_ms < o->backoff.base_ms ||
             !in_range(o->backoff.cap_ms, 0))
        why = "backoff needs 0 <= base_ms <= cap_ms <= 1000000000000 (DLOCK_MAX_DURATION_MS)";
    else if ((unsigned)o->backoff.policy > DLOCK_BACKOFF_SERVICESTACK)
        why = "unknown backoff policy";
    else if ((unsigned)o->wait > DLOCK_WAIT_FIFO)
        why = "unknown wait mode";
    else if (o->wait != DLOCK_WAIT_POLL && o->algorithm != DLOCK_TOKEN)
        why = "notify and fifo waiting need the token algorithm";
    else if (o->fencing && redlock)
        why = "fencing needs one source of strictly increasing tokens; redlock has N servers";
    else if (o->fencing && o->algorithm != DLOCK_TOKEN)
        why = "fencing needs the token algorithm";
    else if (o->renew && o->algorithm == DLOCK_LEGACY)
        why = "the legacy algorithm cannot renew (it has no extend)";
    else if (redlock && !(o->drift_factor >= 0 && o->drift_factor < 1))   /* NaN too */
        why = "drift_factor must be in [0, 1)";
    else if (o->min_replicas < 0)
        why = "min_replicas must be 0 (off) or more";
    else if (o->min_replicas > 0 && !in_range(o->replica_timeout_ms, 1))
        why = "replica_timeout_ms must be 1 to 1000000000000 (DLOCK_MAX_DURATION_MS) with "
              "min_replicas (WAIT n 0 would block forever)";
    if (why)
        snprintf(err, errlen, "%s", why);
    return why ? DLOCK_EINVAL : DLOCK_OK;
}

/* Redlock's allowance for clock drift between servers: ttl * drift_factor + 2 ms. */
int64_t dlock__drift_us(const dlock_options *o)
{
    return (int64_t)((double)o->ttl_ms * 1000.0 * o->drift_factor) + 2000;
}

static void hex_token(const unsigned char raw[16], char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
}

void dlock__set_ttl_arg(dlock *l, int64_t ttl_ms)
{
    snprintf(l->ttl_arg, sizeof l->ttl_arg, "%" PRId64, ttl_ms);
}

void dlock__lease_from(dlock *l, int64_t start_us, int64_t ttl_ms)
{
    atomic_store(&l->valid_until_us, ttl_ms > 0 ? start_us + ttl_ms * 1000 : INT64_MAX);
}

const dlock__algo *dlock__algo_of(const dlock_options *o)
{
    if (o->algorithm == DLOCK_LEGACY)
        return &dlock__legacy;
    if (o->algorithm == DLOCK_REDLOCK)
        return &dlock__redlock;
    if (o->wait == DLOCK_WAIT_NOTIFY)
        return &dlock__token_notify;
    if (o->wait == DLOCK_WAIT_FIFO)
        return &dlock__token_fifo;
    return &dlock__token;
}

/* The auxiliary keys of the wait modes, named from the lock's key (and token). */
static bool name_wait_keys(dlock *l)
{
    const char *k = l->key;
    if (l->opt.wait == DLOCK_WAIT_NOTIFY)
        return asprintf(&l->signal_key, "%s:signal", k) >= 0;
    if (l->opt.wait != DLOCK_WAIT_FIFO)
        return true;
    snprintf(l->member, sizeof l->member, "%s:%lld:%d", l->token, (long long)l->opt.ttl_ms,
             l->opt.fencing ? 1 : 0);
    return asprintf(&l->signal_key, "%s:signal:%s", k, l->token) >= 0 &&
           asprintf(&l->signal_prefix, "%s:signal:", k) >= 0 &&
           asprintf(&l->queue_key, "%s:queue", k) >= 0 &&
           asprintf(&l->beat_key, "%s:queue:beat", k) >= 0 &&
           asprintf(&l->seq_key, "%s:queue:seq", k) >= 0;
}

dlock *dlock__lock_new(dlock_client *c, const char *key, const dlock_options *o, int nservers,
                       const unsigned char token[16])
{
    dlock *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->client = c;
    l->opt = *o;
    l->algo = dlock__algo_of(o);
    l->nservers = nservers;
    l->valid_until_us = INT64_MAX;
    l->key = strdup(key);
    hex_token(token, l->token);
    if (!l->key || asprintf(&l->fence_key, "%s:fence", key) < 0 || !name_wait_keys(l)) {
        dlock__lock_free(l);
        return NULL;
    }
    dlock__set_ttl_arg(l, o->ttl_ms);
    snprintf(l->replicas_arg, sizeof l->replicas_arg, "%d", o->min_replicas);
    snprintf(l->replica_timeout_arg, sizeof l->replica_timeout_arg, "%" PRId64,
             o->replica_timeout_ms);
    return l;
}

dlock *dlock__lock_prepare(dlock_client *c, const char *key, const dlock_options *o, int *rc)
{
    dlock_options defaults;
    char err[160];
    if (!o) {
        dlock_options_init(&defaults);
        o = &defaults;
    }
    *rc = dlock__check_options(o, dlock__client_nservers(c), err, sizeof err);
    if (*rc != DLOCK_OK) {
        dlock__client_set_err(c, err);
        return NULL;
    }
    unsigned char token[16];
    if (dlock__random_bytes(token, sizeof token) < 0) {
        dlock__client_set_err(c, "no random bytes for the token (getrandom failed)");
        *rc = DLOCK_EIO;
        return NULL;
    }
    dlock *l = dlock__lock_new(c, key, o, dlock__client_nservers(c), token);
    explicit_bzero(token, sizeof token);
    if (!l)
        *rc = DLOCK_ENOMEM;
    return l;
}

dlock *dlock__fenced_write_new(dlock_client *c, const char *key, uint64_t fence,
                               const dlock *writer, const char *value)
{
    static const unsigned char no_token[16];
    dlock_options o;
    dlock_options_init(&o);
    o.command_timeout_ms = DLOCK__CONNECT_TIMEOUT_MS;
    dlock *l = dlock__lock_new(c, key, &o, 1, no_token);
    if (!l)
        return NULL;
    if ((value && !(l->payload = strdup(value))) ||
        asprintf(&l->owner_key, "%s:fence:owner", key) < 0) {
        l->owner_key = NULL;
        dlock__lock_free(l);
        return NULL;
    }
    snprintf(l->value, sizeof l->value, "%" PRIu64, fence);
    memcpy(l->token, writer ? writer->token : "", writer ? sizeof l->token : 1);
    return l;
}

void dlock__lock_free(dlock *l)
{
    if (!l)
        return;
    free(l->key);
    free(l->fence_key);
    free(l->signal_key);
    free(l->signal_prefix);
    free(l->queue_key);
    free(l->beat_key);
    free(l->seq_key);
    free(l->payload);
    free(l->owner_key);
    free(l);
}

uint64_t dlock_fencing_token(const dlock *l)
{
    return l ? l->fence : 0;
}

const char *dlock_key(const dlock *l)
{
    return l ? l->key : NULL;
}

bool dlock_is_lost(const dlock *l)
{
    return l && atomic_load(&l->lost);
}

int64_t dlock_validity_ms(const dlock *l)
{
    if (!l)
        return 0;
    int64_t until = atomic_load(&l->valid_until_us);
    if (until == INT64_MAX)
        return -1;
    int64_t left = until - dlock__mono_us();
    return left > 0 ? left / 1000 : 0;
}
