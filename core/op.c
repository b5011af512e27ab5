/* op.c -- an operation (an acquire with its waits, a release, an extend, one run of a step) as
 * a state machine that says what it needs next: a batch exchanged with Redis, a sleep until a
 * time, or nothing more (it has its result). It reads the clock but does no I/O and never
 * sleeps, so one machine serves both drivers: driver.c runs it over blocking connections and
 * condition-variable sleeps, loop.c over non-blocking connections and timers.
 *
 * acquire: try; if the lock is held (or Redis could not be reached), wait -- sleep the back-off
 * delay, or run the wait mode's wait step (BLPOP on a signal, in slices) -- and try again, until
 * the lock is taken, wait_timeout_ms runs out, the client is interrupted, or another error
 * occurs. The deadline is on the monotonic clock: the last wait is cut to it and one last try
 * is made there, then DLOCK_ETIMEDOUT (or DLOCK_EIO when that try could not reach Redis). A
 * try-once returns the first try's result. A wait mode that keeps state on the server (a FIFO
 * queue entry) gets a leave step when the caller gives up; a try whose reply was lost is
 * undone by token (see undo).
 *
 * release and extend are safe to repeat (compare-and-act), so an I/O error gets one more go on
 * a fresh connection: a connection left over from before a server restart fails once. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

enum {
    S_RUN_STEP = 1,    /* call op->running with the replies (none at first) */
    S_EXCHANGED,       /* the driver exchanged the batch: op->xrc says how */
    S_UNDONE,          /* the undo's release ran */
    S_LATE,            /* a grant with no lease left was undone */
    S_DONE,
    A_BEGIN,
    A_TRY,
    A_TRIED,
    A_AFTER_TRY,
    A_LOST_UNDONE,
    A_DECIDE,
    A_SLEPT,
    A_SLEPT_TRIED,
    A_SLICE,
    A_SLICED,
    A_AFTER_WAIT,
    A_FINISH,
    A_UNDONE_FINISH,
    A_LEFT,
    R_BEGIN,
    R_FIRST,
    R_SECOND,
    X_BEGIN,
    X_RAN,
};

/* The time a step is given; the wall clock (through the caller's hook, if any) only for an
 * algorithm that reads it: a step is taken for every command batch. */
static dlock__now now_of(const dlock *l)
{
    dlock__now n = {.mono_us = dlock__mono_us()};
    if (l->algo->wall_clock)
        n.wall_ms = l->opt.wallclock ? l->opt.wallclock(l->opt.wallclock_ud) : dlock__wall_ms();
    return n;
}

static void free_replies(dlock__op *op)
{
    for (int i = 0; i < op->nreplies; i++) {
        freeReplyObject(op->replies[i]);
        op->replies[i] = NULL;
    }
    op->nreplies = 0;
}

void dlock__op_init(dlock__op *op, dlock *l, dlock_client *c, dlock__op_kind kind,
                    dlock__step_fn step)
{
    memset(op, 0, sizeof *op);
    op->l = l;
    op->c = c;
    op->kind = kind;
    op->step = step;
    op->state = kind == DLOCK__OP_ACQUIRE ? A_BEGIN : kind == DLOCK__OP_RUN ? X_BEGIN : R_BEGIN;
}

void dlock__op_clear(dlock__op *op)
{
    free_replies(op);
    op->state = S_DONE;
}

/* Runs step to its decision (op->step_rc), then goes on at resume. */
static void run(dlock__op *op, dlock__step_fn step, int resume)
{
    op->running = step;
    op->resume = resume;
    op->l->phase = 0;
    op->l->err[0] = '\0';
    op->state = S_RUN_STEP;
}

/* Deletes the lock if it holds our token (op->undo_ours says whether it did), then goes on at
 * resume. A try whose reply was lost may have taken the lock all the same, and every later try
 * of this call would then be refused by our own token until its TTL -- forever without one.
 * Algorithms that keep their lost tries (legacy, fifo) are left alone. */
static void undo(dlock__op *op, int resume)
{
    dlock *l = op->l;
    op->undo_ours = false;
    op->undo_resume = resume;
    if (l->algo->keeps_lost_tries) {
        op->state = resume;
        return;
    }
    memcpy(op->saved_err, l->err, sizeof op->saved_err);
    run(op, l->algo->release, S_UNDONE);
}

/* A lock granted with no lease left (the reply, or a FIFO hand-off, took longer than the ttl)
 * may already be someone else's: it counts as a failed try. Sets op->cur, goes on at resume. */
static void check_granted(dlock__op *op, int rc, int resume)
{
    dlock *l = op->l;
    op->cur = rc;
    op->state = resume;
    if (rc == DLOCK_OK && !l->algo->takes_late_grants &&
        atomic_load(&l->valid_until_us) <= dlock__mono_us()) {
        op->granted_resume = resume;
        undo(op, S_LATE);
    }
}

/* Redis unreachable is a failed try like a held lock while there is time to wait: the next try
 * reconnects (a restarted server, a dropped connection). */
static bool retryable(int rc)
{
    return rc == DLOCK_EBUSY || rc == DLOCK_EIO;
}

static void set_timeout_err(dlock *l)
{
    char msg[256];
    snprintf(msg, sizeof msg, "timed out waiting for the lock%s%s%s", l->err[0] ? " (last try: " : "",
             l->err, l->err[0] ? ")" : "");
    dlock__client_set_err(l->client, msg);
}

/* After a try that failed with time to wait: the delay, then a sleep or the wait step. */
static dlock__need decide_wait(dlock__op *op)
{
    dlock *l = op->l;
    const dlock_options *o = &l->opt;
    int64_t now = dlock__mono_us();
    if (!retryable(op->cur) || o->wait_timeout_ms == 0) {
        op->state = A_FINISH;
        return DLOCK__NEED_STEP;
    }
    if (now >= op->deadline) {
        if (op->cur == DLOCK_EBUSY) {
            op->cur = DLOCK_ETIMEDOUT;
            set_timeout_err(l);
        }
        op->state = A_FINISH;
        return DLOCK__NEED_STEP;
    }
    op->left_us = op->deadline == INT64_MAX ? INT64_MAX : op->deadline - now;
    int64_t delay = dlock__backoff_us(&o->backoff, op->failures, &op->prev_us, op->rng);
    if (delay > op->left_us)
        delay = op->left_us;
    op->wait_end_us = now + delay;
    if (!l->algo->wait) {
        op->sleep_until_us = op->wait_end_us;
        op->state = A_SLEPT;
        return DLOCK__NEED_SLEEP;
    }
    op->state = A_SLICE;
    return DLOCK__NEED_STEP;
}

/* One transition of an acquire; DLOCK__NEED_STEP = call again at once. */
static dlock__need acquire_next(dlock__op *op)
{
    dlock *l = op->l;
    dlock_client *c = op->c;
    const dlock_options *o = &l->opt;
    switch (op->state) {
    case A_BEGIN:
        op->rng = dlock__client_rng(c, o->seed);
        op->start_us = dlock__mono_us();
        op->deadline = o->wait_timeout_ms > 0 ? op->start_us + o->wait_timeout_ms * 1000 : INT64_MAX;
        op->failures = 1;
        l->wait_tries = 0;
        dlock__client_begin_acquire(c);
        op->state = A_TRY;
        break;
    case A_TRY:
        if (dlock__client_interrupted(c)) {
            op->cur = DLOCK_ECANCELED;
            op->state = A_FINISH;
            break;
        }
        op->tries++;
        run(op, l->algo->acquire, A_TRIED);
        break;
    case A_TRIED:
        check_granted(op, op->step_rc, A_AFTER_TRY);
        break;
    case A_AFTER_TRY:
        op->state = A_DECIDE;
        if (op->cur == DLOCK_EIO) {
            op->unconfirmed = true;
        } else if (op->cur == DLOCK_EBUSY && op->unconfirmed) {
            op->unconfirmed = false;
            undo(op, A_LOST_UNDONE);
        }
        break;
    case A_LOST_UNDONE:
        /* our own lost try was what held it: try again at once, as the same attempt */
        op->state = op->undo_ours ? A_TRY : A_DECIDE;
        break;
    case A_DECIDE:
        return decide_wait(op);
    case A_SLEPT:
        op->cur = DLOCK_EBUSY;  /* an interrupted sleep too: the next A_TRY reports it */
        op->state = A_AFTER_WAIT;
        break;
    case A_SLEPT_TRIED:
        if (dlock__client_interrupt_pending(c)) {
            op->unconfirmed = true;
            op->state = A_TRY;  /* reports the interrupt */
            break;
        }
        op->failures++;
        op->cur = DLOCK_EIO;
        op->state = A_AFTER_TRY;
        break;
    case A_SLICE: {
        /* A wait blocked in Redis cannot be woken from here, so it goes in slices, and an
         * interrupt is seen within one. */
        int64_t rest = op->wait_end_us - dlock__mono_us();
        l->wait_us = rest < DLOCK__WAIT_SLICE_US ? rest : DLOCK__WAIT_SLICE_US;
        l->wait_left_us = op->left_us;
        op->wait_tries_before = l->wait_tries;
        run(op, l->algo->wait, A_SLICED);
        break;
    }
    case A_SLICED: {
        bool more = dlock__mono_us() < op->wait_end_us && !dlock__client_interrupt_pending(c);
        if ((op->step_rc == DLOCK__WAITED || op->step_rc == DLOCK__TRIED) && more) {
            op->state = A_SLICE;
            break;
        }
        if (op->step_rc == DLOCK__TRIED && !dlock__client_interrupt_pending(c)) {
            /* the try behind the last slice was this step's try: no second one right after */
            op->failures++;
            op->cur = DLOCK_EBUSY;
            op->state = A_AFTER_TRY;
            break;
        }
        if (op->step_rc == DLOCK_EIO) {
            /* Redis unreachable: the rest of the delay is slept, not spun through in tries. A
             * try that rode with the wait was this step's try (A_AFTER_TRY marks it
             * unconfirmed: it may have taken the lock). */
            bool tried = l->wait_tries != op->wait_tries_before;
            if (dlock__mono_us() < op->wait_end_us) {
                op->sleep_until_us = op->wait_end_us;
                op->state = tried ? A_SLEPT_TRIED : A_SLEPT;
                return DLOCK__NEED_SLEEP;
            }
            if (tried) {
                op->state = A_SLEPT_TRIED;
                break;
            }
        }
        bool nothing = op->step_rc == DLOCK__WAITED || op->step_rc == DLOCK__TRIED;
        check_granted(op, nothing ? DLOCK_EBUSY : op->step_rc, A_AFTER_WAIT);
        break;
    }
    case A_AFTER_WAIT:
        if (!retryable(op->cur)) {
            op->state = A_FINISH;  /* handed to us, or cancelled by the hook */
            break;
        }
        op->failures++;
        op->state = A_TRY;
        break;
    case A_FINISH:
        op->state = A_UNDONE_FINISH;
        if (op->cur != DLOCK_OK && op->unconfirmed) {
            op->unconfirmed = false;
            undo(op, A_UNDONE_FINISH);
        }
        break;
    case A_UNDONE_FINISH:
        op->state = A_LEFT;
        if (op->cur != DLOCK_OK && l->algo->leave)
            run(op, l->algo->leave, A_LEFT);  /* a crash (the hook cancels) cannot leave: the bound does */
        break;
    case A_LEFT:
        dlock__client_end_acquire(c, op->tries + l->wait_tries, dlock__mono_us() - op->start_us);
        if (op->cur == DLOCK_ECANCELED)
            dlock__client_set_err(c, "canceled");
        op->rc = op->cur;
        op->state = S_DONE;
        return DLOCK__NEED_NOTHING;
    }
    return DLOCK__NEED_STEP;
}

/* One transition of a release, an extend or a single run. */
static dlock__need simple_next(dlock__op *op)
{
    switch (op->state) {
    case R_BEGIN:
        run(op, op->kind == DLOCK__OP_RELEASE ? op->l->algo->release : op->l->algo->extend, R_FIRST);
        break;
    case R_FIRST:
        if (op->step_rc == DLOCK_EIO) {
            run(op, op->running, R_SECOND);
            break;
        }
        /* fall through */
    case R_SECOND:
    case X_RAN:
        op->rc = op->step_rc;
        op->state = S_DONE;
        return DLOCK__NEED_NOTHING;
    case X_BEGIN:
        run(op, op->step, X_RAN);
        break;
    }
    return DLOCK__NEED_STEP;
}

dlock__need dlock__op_next(dlock__op *op)
{
    dlock *l = op->l;
    for (;;) {
        dlock__need need = DLOCK__NEED_STEP;
        switch (op->state) {
        case S_RUN_STEP: {
            dlock__now now = now_of(l);
            op->batch.n = 0;
            op->batch.block_ms = 0;
            int rc = op->running(l, &now, op->replies, op->nreplies, &op->batch);
            free_replies(op);
            if (rc == DLOCK__SEND) {
                op->state = S_EXCHANGED;
                return DLOCK__NEED_EXCHANGE;
            }
            if (rc != DLOCK_OK && rc != DLOCK_EBUSY && l->err[0])
                dlock__client_set_err(op->c, l->err);
            op->step_rc = rc;
            op->state = op->resume;
            break;
        }
        case S_EXCHANGED:
            if (op->xrc != DLOCK_OK) {  /* the hook cancelled: nothing was sent */
                op->step_rc = op->xrc;
                op->state = op->resume;
            } else {
                op->nreplies = op->batch.n;
                op->state = S_RUN_STEP;
            }
            break;
        case S_UNDONE:
            op->undo_ours = op->step_rc == DLOCK_OK;
            if (op->step_rc == DLOCK_EIO)
                op->unconfirmed = true;  /* the undo itself was lost: the lock may still be ours */
            memcpy(l->err, op->saved_err, sizeof op->saved_err);
            op->state = op->undo_resume;
            break;
        case S_LATE:
            op->cur = dlock__fail(l, DLOCK_EBUSY, "granted after its lease had run out");
            op->state = op->granted_resume;
            break;
        case S_DONE:
            return DLOCK__NEED_NOTHING;
        default:
            need = op->kind == DLOCK__OP_ACQUIRE ? acquire_next(op) : simple_next(op);
            break;
        }
        if (need != DLOCK__NEED_STEP)
            return need;
    }
}
