/* driver.c -- the blocking driver: runs an operation's machine (op.c) over a client's blocking
 * connections, sleeping on the client's condition variable when it says wait, and the public
 * calls built on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int drive(dlock__op *op, dlock_client *c)
{
    dlock__answers ans = {.n = 0};
    dlock_input in = dlock__client_input(c, op);
    for (;;) {
        dlock_action a = dlock__op_next(op, &in);
        dlock__answers_clear(&ans);
        if (a.interrupt_taken)
            dlock__client_clear_interrupt(c);
        int rc = DLOCK_OK;
        switch (a.what) {
        case DLOCK_DO_SEND:
            rc = dlock__exchange(c, &a, &ans);
            break;
        case DLOCK_DO_WAIT:
            dlock__client_sleep(c, a.until_us - dlock__mono_us());
            break;
        case DLOCK_DO_DONE:
        default:
            if (a.rc != DLOCK_OK && op->err[0])
                dlock__client_set_err(c, op->err);
            return a.rc;
        }
        in = dlock__client_input(c, op);
        in.replies = a.what == DLOCK_DO_SEND ? ans.reply : NULL;
        in.canceled = rc == DLOCK_ECANCELED;
    }
}

static int drive_kind(dlock *l, dlock_client *c, dlock__op_kind kind, dlock__step_fn step,
                      int64_t ttl_ms)
{
    dlock__op op;
    dlock__rng *rng = kind == DLOCK__OP_ACQUIRE ? dlock__client_rng(c, l->opt.seed) : NULL;
    if (dlock__op_init(&op, l, kind, step, rng) != DLOCK_OK)
        return DLOCK_ENOMEM;
    op.extend_ttl_ms = ttl_ms;
    if (kind == DLOCK__OP_ACQUIRE)
        dlock__client_begin_acquire(c);
    int rc = drive(&op, c);
    if (kind == DLOCK__OP_ACQUIRE)
        dlock__client_end_acquire(c, dlock__op_tries(&op), dlock__mono_us() - op.start_us);
    dlock__op_clear(&op);
    return rc;
}

/* Runs one step function to its decision, on client c. */
int dlock__run_on(dlock *l, dlock_client *c, dlock__step_fn step)
{
    return drive_kind(l, c, DLOCK__OP_RUN, step, 0);
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
    rc = drive_kind(l, c, DLOCK__OP_ACQUIRE, NULL, 0);
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
    if (l->unrenew)
        l->unrenew(l);
    int rc = drive_kind(l, l->client, DLOCK__OP_RELEASE, NULL, 0);
    if (atomic_load(&l->lost))
        rc = DLOCK_ENOTOWNER;  /* the delete was best effort: the lease had already lapsed */
    dlock__lock_free(l);
    return rc;
}

void dlock_abandon(dlock *l)
{
    if (!l)
        return;
    if (l->unrenew)
        l->unrenew(l);
    dlock__lock_free(l);
}

int dlock__extend_now(dlock *l, int64_t ttl_ms)
{
    return drive_kind(l, l->client, DLOCK__OP_EXTEND, NULL, ttl_ms);
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

static int fenced_write(dlock_client *c, const char *key, uint64_t fence, const dlock *writer,
                        const char *value)
{
    if (!c || !key || !value || fence == 0 || dlock__client_on_loop(c))
        return DLOCK_EINVAL;
    dlock *l = dlock__fenced_write_new(c, key, fence, writer, value);
    if (!l)
        return DLOCK_ENOMEM;
    int rc = dlock__run(l, dlock__fenced_set_step);
    dlock__lock_free(l);
    return rc;
}

int dlock_fenced_set(dlock_client *c, const char *key, uint64_t fence, const char *value)
{
    return fenced_write(c, key, fence, NULL, value);
}

int dlock_fenced_write(dlock_client *c, const char *key, const dlock *l, const char *value)
{
    return l ? fenced_write(c, key, l->fence, l, value) : DLOCK_EINVAL;
}

int dlock_fenced_read(dlock_client *c, const char *key, const dlock *l, char **value_out)
{
    if (value_out)
        *value_out = NULL;
    if (!c || !key || !l || !value_out || l->fence == 0 || dlock__client_on_loop(c))
        return DLOCK_EINVAL;
    dlock *r = dlock__fenced_write_new(c, key, l->fence, l, NULL);
    if (!r)
        return DLOCK_ENOMEM;
    int rc = dlock__run(r, dlock__fenced_get_step);
    if (rc == DLOCK_OK) {
        *value_out = r->payload;  /* the caller's now */
        r->payload = NULL;
    }
    dlock__lock_free(r);
    return rc;
}
