/* lock.c -- options, error strings, and a lock's state apart from any I/O. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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

/* Option combinations that cannot work, refused before anything is sent. */
int dlock__check_options(const dlock_options *o, int nservers, char *err, size_t errlen)
{
    const char *why = NULL;
    if (o->algorithm != DLOCK_TOKEN && o->algorithm != DLOCK_LEGACY)
        why = "unknown or unsupported algorithm";
    else if (nservers != 1)
        why = "token and legacy locks take exactly one server";
    else if (o->ttl_ms < 0)
        why = "ttl_ms must be >= 0";
    else if (o->wait_timeout_ms < -1)
        why = "wait_timeout_ms must be -1, 0 or positive";
    else if (o->command_timeout_ms <= 0)
        why = "command_timeout_ms must be positive";
    else if (o->backoff.base_ms < 0 || o->backoff.cap_ms < o->backoff.base_ms)
        why = "backoff needs 0 <= base_ms <= cap_ms";
    else if ((unsigned)o->backoff.policy > DLOCK_BACKOFF_SERVICESTACK)
        why = "unknown backoff policy";
    else if (o->wait != DLOCK_WAIT_POLL)
        why = "wait mode not supported yet; use DLOCK_WAIT_POLL";
    else if (o->fencing && o->algorithm != DLOCK_TOKEN)
        why = "fencing needs the token algorithm";
    else if (o->renew && o->algorithm == DLOCK_LEGACY)
        why = "the legacy algorithm cannot renew (it has no extend)";
    else if (o->renew)
        why = "renew not supported yet";
    if (why)
        snprintf(err, errlen, "%s", why);
    return why ? DLOCK_EINVAL : DLOCK_OK;
}

int dlock__random_token(char out[33])
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

void dlock__set_ttl_arg(dlock *l, int64_t ttl_ms)
{
    snprintf(l->ttl_arg, sizeof l->ttl_arg, "%" PRId64, ttl_ms);
}

static const dlock__algo *algo_of(dlock_algorithm a)
{
    return a == DLOCK_LEGACY ? &dlock__legacy : &dlock__token;
}

dlock *dlock__lock_new(dlock_client *c, const char *key, const dlock_options *o, int nservers)
{
    dlock *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->client = c;
    l->opt = *o;
    l->algo = algo_of(o->algorithm);
    l->nservers = nservers;
    l->key = strdup(key);
    if (!l->key || asprintf(&l->fence_key, "%s:fence", key) < 0 ||
        dlock__random_token(l->token) < 0) {
        dlock__lock_free(l);
        return NULL;
    }
    dlock__set_ttl_arg(l, o->ttl_ms);
    return l;
}

void dlock__lock_free(dlock *l)
{
    if (!l)
        return;
    free(l->key);
    free(l->fence_key);
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
