/* driver.c -- the blocking driver: runs an operation's state machine (op.c) over a client's
 * blocking connections, sleeping on the client's condition variable between tries, and the
 * public calls built on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int drive(dlock__op *op)
{
    for (;;) {
        switch (dlock__op_next(op)) {
        case DLOCK__NEED_EXCHANGE:
            op->xrc = dlock__exchange(op->c, &op->batch, op->replies, op->l->opt.command_timeout_ms);
            break;
        case DLOCK__NEED_SLEEP:
            dlock__client_sleep(op->c, op->sleep_until_us - dlock__mono_us());
            break;
        case DLOCK__NEED_NOTHING:
        default:
            return op->rc;
        }
    }
}

static int drive_kind(dlock *l, dlock_client *c, dlock__op_kind kind, dlock__step_fn step)
{
    dlock__op op;
    dlock__op_init(&op, l, c, kind, step);
    return drive(&op);
}

/* Runs one step function to its decision, on client c. */
int dlock__run_on(dlock *l, dlock_client *c, dlock__step_fn step)
{
    return drive_kind(l, c, DLOCK__OP_RUN, step);
}

int dlock__run(dlock *l, dlock__step_fn step)
{
    return dlock__run_on(l, l->client, step);
}

int dlock_acquire(dlock_client *c, const char *key, const dlock_options *o, dlock **out)
{
    int rc;
    if (!c || !key || !out || dlock__client_on_loop(c))
        return DLOCK_EINVAL;
    *out = NULL;
    dlock *l = dlock__lock_prepare(c, key, o, &rc);
    if (!l)
        return rc;
    rc = drive_kind(l, c, DLOCK__OP_ACQUIRE, NULL);
    if (rc == DLOCK_OK && (rc = dlock__renew_start(l)) != DLOCK_OK)
        dlock__run(l, l->algo->release);  /* no watchdog: do not leave the lock behind */
    if (rc == DLOCK_OK)
        *out = l;
    else
        dlock__lock_free(l);
    return rc;
}

int dlock_release(dlock *l)
{
    if (!l || dlock__client_on_loop(l->client))
        return DLOCK_EINVAL;
    dlock__renew_stop(l);
    int rc = drive_kind(l, l->client, DLOCK__OP_RELEASE, NULL);
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
    int rc = drive_kind(l, l->client, DLOCK__OP_EXTEND, NULL);
    if (rc == DLOCK_OK)
        l->opt.ttl_ms = ttl_ms;
    else
        memcpy(l->ttl_arg, old, sizeof old);
    return rc;
}

int dlock_extend(dlock *l, int64_t ttl_ms)
{
    if (!l || dlock__check_ttl(l->client, ttl_ms) != DLOCK_OK ||
        dlock__client_on_loop(l->client))
        return DLOCK_EINVAL;
    if (atomic_load(&l->lost))
        return DLOCK_ENOTOWNER;
    if (l->renewal)
        return dlock__renew_extend(l, ttl_ms);
    return dlock__extend_now(l, ttl_ms);
}
