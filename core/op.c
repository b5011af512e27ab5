/* op.c -- an operation (an acquire with its waits, a release, an extend, one run of a step) as
 * a machine (dlock_machine.h) that is handed the time, the interrupt state and the replies to
 * its last batch, and answers what to do next: send a batch, wait until a time, or done. It
 * reads no clock, does no I/O, never sleeps and draws no randomness (the back-off generator and
 * the token are the driver's), so every driver runs the same decisions: driver.c over blocking
 * connections and condition-variable sleeps, loop.c over non-blocking connections and timers,
 * a caller's own event loop, and a simulator in virtual time.
 *
 * acquire: try; if the lock is held (or Redis could not be reached), wait -- sleep the back-off
 * delay, or run the wait mode's wait step (BLPOP on a signal, in slices) -- and try again, until
 * the lock is taken, wait_timeout_ms runs out, the client is interrupted, or another error
 * occurs -- a server that refused us (NOAUTH, WRONGPASS, NOPERM, a command it does not know)
 * among them: no wait mends a refusal, so the acquire ends with DLOCK_EIO and the server's
 * answer instead of retrying as if Redis were out of reach. The deadline is on the monotonic
 * clock: the last wait is cut to it and one last try is made there, then DLOCK_ETIMEDOUT (or
 * DLOCK_EIO when that try could not reach Redis). A try-once returns the first try's result. A
 * wait mode that keeps state on the server (a FIFO queue entry) gets a leave step when the
 * caller gives up; a try whose reply was lost is undone by token (see undo).
 *
 * release and extend are safe to repeat (compare-and-act), so an I/O error gets one more go on
 * a fresh connection: a connection left over from before a server restart fails once. A
 * refusal gets none.
 *
 * Scripts go as EVALSHA; the commands a server answers NOSCRIPT (a restart, SCRIPT FLUSH) go
 * again as EVAL, in one more round trip, before the step sees the batch's replies. Every
 * command's replies are due command_timeout_ms after the batch is written, plus what a
 * blocking command may legitimately take. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
    S_RUN_STEP = 1,    /* call op->running with the replies (none at first) */
    S_EXCHANGED,       /* the driver exchanged the batch: the input says how */
    S_RESENT,          /* the NOSCRIPT resend came back */
    S_UNDONE,          /* the undo's release ran */
    S_LATE,            /* a grant with no lease left was undone */
    S_UNREPLICATED,    /* a grant WAIT did not confirm was undone */
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

/* What a transition leaves the machine needing. */
typedef enum {
    DLOCK__NEED_STEP,       /* keep going */
    DLOCK__NEED_SLEEP,      /* wait until op->sleep_until_us */
    DLOCK__NEED_NOTHING     /* op->rc is the result */
} dlock__need;

static int64_t now_us(const dlock__op *op)
{
    return op->in->now_us;
}

static bool interrupted(const dlock__op *op)
{
    return op->in->interrupted && !op->interrupt_taken;
}

static void set_err(dlock__op *op, const char *msg)
{
    if (msg != op->err)
        dlock__set_text(&op->err, DLOCK__OP_ERR_LEN, "%s", msg);
}

const char *dlock__op_error(const dlock__op *op)
{
    return op->err ? op->err : "";
}

/* The action's view of the batch, and where each resent command's reply goes: in the batch's
 * allocation, after its commands. */
static dlock_command *batch_view(const dlock__op *op)
{
    return (dlock_command *)(void *)(op->batch.cmd + op->batch.cap);
}

static int *resend_from(const dlock__op *op)
{
    return (int *)(void *)(batch_view(op) + op->batch.cap);
}

/* The batch has room at first for what the lock's usual step sends each server -- a command
 * (with a fence key, the scripts' longest: fencing, fifo, the fenced write) and with
 * min_replicas the WAIT behind it -- so that an acquire does not grow it every time; it grows
 * when a step needs more (legacy's MULTI and EXEC), and exists only while the operation runs. */
int dlock__op_init(dlock__op *op, dlock *l, dlock__op_kind kind, dlock__step_fn step,
                   dlock__rng *rng)
{
    memset(op, 0, sizeof *op);
    int servers = l->nservers > 0 ? l->nservers : 1, waits = dlock__replica_waits(l);
    int cap = servers * (1 + waits);
    int acap = servers * ((l->fence_key ? DLOCK__CMD_MAX_ARGC : DLOCK__BATCH_ARGS(1)) +
                          waits * 3);  /* WAIT n timeout */
    char *mem = malloc(dlock__batch_bytes(cap, acap));
    if (!mem)
        return DLOCK_ENOMEM;
    op->batch = (dlock__batch){.cap = cap, .max = DLOCK__BATCH_CAP(servers), .acap = acap,
                               .cmd = (dlock__cmd *)(void *)mem,
                               .args = (const char **)(void *)(mem + dlock__batch_args_at(cap))};
    op->l = l;
    op->kind = kind;
    op->step = step;
    op->rng = rng ? rng : &op->own_rng;
    op->state = kind == DLOCK__OP_ACQUIRE ? A_BEGIN : kind == DLOCK__OP_RUN ? X_BEGIN : R_BEGIN;
    return DLOCK_OK;
}

void dlock__op_clear(dlock__op *op)
{
    free(op->batch.cmd);
    op->batch.cmd = NULL;
    free(op->kept);
    op->kept = NULL;
    free(op->saved_err);
    op->saved_err = NULL;
    free(op->err);
    op->err = NULL;
    op->state = S_DONE;
}

bool dlock__op_reads_wall_clock(const dlock__op *op)
{
    return op->l->algo->wall_clock;
}

uint64_t dlock__op_tries(const dlock__op *op)
{
    return op->tries + op->l->wait_tries;
}

/* Runs step to its decision (op->step_rc), then goes on at resume. */
static void run(dlock__op *op, dlock__step_fn step, int resume)
{
    op->running = step;
    op->resume = resume;
    op->l->phase = 0;
    if (op->l->err)
        op->l->err[0] = '\0';
    op->l->refused = false;
    op->l->unreplicated = false;
    op->state = S_RUN_STEP;
}

/* Deletes the lock if it holds our token (op->undo_ours says whether it did), then goes on at
 * resume. A try whose reply was lost may have taken the lock all the same, and every later try
 * of this call would then be refused by our own token until its TTL -- forever without one.
 * Algorithms that keep their lost tries (legacy, fifo) are left alone. */
/* The lock's error is put aside while an undo runs: the undo's own failure must not replace
 * the reason the try failed. */
static void save_lock_err(dlock__op *op)
{
    free(op->saved_err);
    op->saved_err = op->l->err;
    op->l->err = NULL;
}

static void restore_lock_err(dlock__op *op)
{
    free(op->l->err);
    op->l->err = op->saved_err;
    op->saved_err = NULL;
}

static void undo(dlock__op *op, int resume)
{
    dlock *l = op->l;
    op->undo_ours = false;
    op->undo_resume = resume;
    if (l->algo->keeps_lost_tries) {
        op->state = resume;
        return;
    }
    save_lock_err(op);
    run(op, l->algo->release, S_UNDONE);
}

/* A grant fewer replicas acknowledged than min_replicas asks for (DLOCK__UNREPLICATED) could be
 * lost in a failover, and another client then granted the same lock: it is deleted again --
 * only while it holds our value, by the algorithm's own script, even one that keeps its lost
 * tries, since this grant is known -- and counts as a failed try whose reason (the step's, in
 * op->err) is WAIT's. A WAIT that was refused ends the acquire as any refusal does. */
static void undo_unreplicated(dlock__op *op, int resume)
{
    dlock *l = op->l;
    op->refused = l->refused;   /* the undo's step leaves op->refused alone */
    op->granted_resume = resume;
    save_lock_err(op);          /* WAIT's reason */
    run(op, l->algo->unreplicated ? l->algo->unreplicated : l->algo->release, S_UNREPLICATED);
}

/* A lock granted with no lease left (the reply, or a FIFO hand-off, took longer than the ttl)
 * may already be someone else's: it counts as a failed try, as does one WAIT did not confirm.
 * Sets op->cur, goes on at resume. */
static void check_granted(dlock__op *op, int rc, int resume)
{
    dlock *l = op->l;
    if (rc == DLOCK__UNREPLICATED) {
        undo_unreplicated(op, resume);
        return;
    }
    op->cur = rc;
    op->refused = rc == DLOCK_EIO && op->step_refused;
    op->state = resume;
    if (rc == DLOCK_OK && !l->algo->takes_late_grants &&
        atomic_load(&l->valid_until_us) <= now_us(op)) {
        op->granted_resume = resume;
        undo(op, S_LATE);
    }
}

/* Redis unreachable is a failed try like a held lock while there is time to wait: the next try
 * reconnects (a restarted server, a dropped connection). A server that refused us is not: it
 * answered, and will answer the next try alike until someone changes its configuration or
 * ours. */
static bool retryable(const dlock__op *op)
{
    return op->cur == DLOCK_EBUSY || (op->cur == DLOCK_EIO && !op->refused);
}

static void set_timeout_err(dlock__op *op)
{
    const char *last = dlock__lock_err(op->l);
    dlock__set_text(&op->err, DLOCK__OP_ERR_LEN, "timed out waiting for the lock%s%s%s",
                    last[0] ? " (last try: " : "", last, last[0] ? ")" : "");
}

/* The driver waits until t, unless the caller has asked to stop: then the machine goes on at
 * once (the next try reports the interrupt). */
static dlock__need wait_until(dlock__op *op, int64_t t, int resume)
{
    op->state = resume;
    if (t <= now_us(op) || interrupted(op))
        return DLOCK__NEED_STEP;
    op->sleep_until_us = t;
    return DLOCK__NEED_SLEEP;
}

/* After a try that failed with time to wait: the delay, then a sleep or the wait step. */
static dlock__need decide_wait(dlock__op *op)
{
    dlock *l = op->l;
    const dlock_options *o = &l->opt;
    int64_t now = now_us(op);
    if (!retryable(op) || o->wait_timeout_ms == 0) {
        if (op->cur == DLOCK_EBUSY && dlock__lock_err(l)[0])
            set_err(op, dlock__lock_err(l));  /* a try once that failed for a reason (redlock, WAIT) */
        op->state = A_FINISH;
        return DLOCK__NEED_STEP;
    }
    if (now >= op->deadline) {
        if (op->cur == DLOCK_EBUSY) {
            op->cur = DLOCK_ETIMEDOUT;
            set_timeout_err(op);
        }
        op->state = A_FINISH;
        return DLOCK__NEED_STEP;
    }
    op->left_us = op->deadline == INT64_MAX ? INT64_MAX : op->deadline - now;
    int64_t delay = dlock__backoff_us(&o->backoff, op->failures, &op->prev_us, op->rng);
    if (delay > op->left_us)
        delay = op->left_us;
    op->wait_end_us = now + delay;
    if (!l->algo->wait)
        return wait_until(op, op->wait_end_us, A_SLEPT);
    op->state = A_SLICE;
    return DLOCK__NEED_STEP;
}

/* One transition of an acquire; DLOCK__NEED_STEP = call again at once. */
static dlock__need acquire_next(dlock__op *op)
{
    dlock *l = op->l;
    const dlock_options *o = &l->opt;
    switch (op->state) {
    case A_BEGIN:
        op->start_us = now_us(op);
        op->deadline = o->wait_timeout_ms > 0 ? op->start_us + o->wait_timeout_ms * 1000 : INT64_MAX;
        op->failures = 1;
        l->wait_tries = 0;
        op->state = A_TRY;
        break;
    case A_TRY:
        if (interrupted(op)) {
            op->interrupt_taken = true;
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
        if (op->cur == DLOCK_EIO && !op->refused) {
            op->unconfirmed = true;  /* a refused command did not run: nothing to undo */
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
        if (interrupted(op)) {
            op->unconfirmed = true;
            op->state = A_TRY;  /* reports the interrupt */
            break;
        }
        op->failures++;
        op->cur = DLOCK_EIO;
        op->refused = false;  /* a slice that could not reach Redis: refusals end at A_SLICED */
        op->state = A_AFTER_TRY;
        break;
    case A_SLICE: {
        /* A wait blocked in Redis cannot be woken from here, so it goes in slices, and an
         * interrupt is seen within one. */
        int64_t rest = op->wait_end_us - now_us(op);
        l->wait_us = rest < DLOCK__WAIT_SLICE_US ? rest : DLOCK__WAIT_SLICE_US;
        l->wait_left_us = op->left_us;
        op->wait_tries_before = l->wait_tries;
        run(op, l->algo->wait, A_SLICED);
        break;
    }
    case A_SLICED: {
        bool more = now_us(op) < op->wait_end_us && !interrupted(op);
        if ((op->step_rc == DLOCK__WAITED || op->step_rc == DLOCK__TRIED) && more) {
            op->state = A_SLICE;
            break;
        }
        if (op->step_rc == DLOCK__UNREPLICATED ||
            (op->step_rc == DLOCK__TRIED && !interrupted(op))) {
            /* the try behind the last slice was this step's try, so no second one right after;
             * or the wait's try or hand-off claim was granted but not replicated (undone by
             * check_granted): a failed try, and the back-off before the next */
            op->failures++;
            check_granted(op, op->step_rc == DLOCK__TRIED ? DLOCK_EBUSY : op->step_rc,
                          A_AFTER_TRY);
            break;
        }
        if (op->step_rc == DLOCK_EIO && op->step_refused) {
            /* refused: no wait mends it (A_AFTER_WAIT ends the acquire); a try that rode with
             * the wait may have got through all the same (an ACL that allows SET but not BLPOP) */
            op->unconfirmed |= l->wait_tries != op->wait_tries_before;
        } else if (op->step_rc == DLOCK_EIO) {
            /* Redis unreachable: the rest of the delay is slept, not spun through in tries. A
             * try that rode with the wait was this step's try (A_AFTER_TRY marks it
             * unconfirmed: it may have taken the lock). */
            bool tried = l->wait_tries != op->wait_tries_before;
            if (now_us(op) < op->wait_end_us)
                return wait_until(op, op->wait_end_us, tried ? A_SLEPT_TRIED : A_SLEPT);
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
        if (!retryable(op)) {
            op->state = A_FINISH;  /* handed to us, cancelled by the hook, or refused */
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
        if (op->cur == DLOCK_ECANCELED && strncmp(dlock__op_error(op), "canceled", 8) != 0)
            set_err(op, "canceled");  /* by an interrupt; the hook's says so */
        op->rc = op->cur;
        op->state = S_DONE;
        return DLOCK__NEED_NOTHING;
    }
    return DLOCK__NEED_STEP;
}

/* One transition of a release, an extend or a single run. */
static dlock__need simple_next(dlock__op *op)
{
    dlock *l = op->l;
    switch (op->state) {
    case R_BEGIN:
        if (op->kind == DLOCK__OP_EXTEND) {
            memcpy(op->old_ttl_arg, l->ttl_arg, sizeof op->old_ttl_arg);
            dlock__set_ttl_arg(l, op->extend_ttl_ms);
        }
        run(op, op->kind == DLOCK__OP_RELEASE ? l->algo->release : l->algo->extend, R_FIRST);
        break;
    case R_FIRST:
        if (op->step_rc == DLOCK_EIO && !op->step_refused && !l->unreplicated) {
            op->fresh = true;
            run(op, op->running, R_SECOND);
            break;
        }
        /* fall through */
    case R_SECOND:
        if (op->kind == DLOCK__OP_EXTEND && op->step_rc == DLOCK_OK)
            l->opt.ttl_ms = op->extend_ttl_ms;
        else if (op->kind == DLOCK__OP_EXTEND)
            memcpy(l->ttl_arg, op->old_ttl_arg, sizeof l->ttl_arg);
        /* fall through */
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

/* ---- sending, and the NOSCRIPT resend -------------------------------------------------- */

/* Sends the first n commands of the view. */
static dlock_action send_view(dlock__op *op, int n)
{
    dlock_action a = {.what = DLOCK_DO_SEND, .commands = batch_view(op), .ncommands = n,
                      .timeout_us = (op->l->opt.command_timeout_ms + op->batch.block_ms) * 1000,
                      .reconnect = op->fresh};
    op->fresh = false;
    return a;
}

static dlock_action send_batch(dlock__op *op)
{
    const dlock__batch *b = &op->batch;
    dlock_command *view = batch_view(op);
    for (int i = 0; i < b->n; i++)
        view[i] = (dlock_command){b->cmd[i].server, b->cmd[i].argc, b->cmd[i].argv};
    return send_view(op, b->n);
}

/* Notes which commands were answered NOSCRIPT (where their replies go); how many. */
static int collect_noscript(dlock__op *op, const dlock_reply *const *r)
{
    const dlock__batch *b = &op->batch;
    int *from = resend_from(op);
    op->nresend = 0;
    for (int i = 0; i < b->n; i++)
        if (b->cmd[i].script && dlock__reply_is_noscript(r[i]))
            from[op->nresend++] = i;
    return op->nresend;
}

/* Sends those commands again, as EVAL: the batch's first round is over, so they are changed
 * where they are. */
static dlock_action send_resend(dlock__op *op)
{
    const int *from = resend_from(op);
    dlock_command *view = batch_view(op);
    for (int k = 0; k < op->nresend; k++) {
        dlock__cmd *c = &op->batch.cmd[from[k]];
        c->argv[0] = "EVAL";
        c->argv[1] = c->script->text;
        view[k] = (dlock_command){c->server, c->argc, c->argv};
    }
    return send_view(op, op->nresend);
}

/* A copy's pieces stay aligned for the replies that follow them. */
static size_t aligned(size_t n)
{
    return (n + _Alignof(dlock_reply) - 1) & ~(size_t)(_Alignof(dlock_reply) - 1);
}

static size_t reply_size(const dlock_reply *r)
{
    size_t n = sizeof *r + (r->str ? aligned(r->len + 1) : 0);
    for (size_t i = 0; i < r->elements; i++)
        n += reply_size(&r->element[i]);
    return n;
}

/* Copies r into *to, its elements and strings from *mem on. */
static void reply_copy(const dlock_reply *r, dlock_reply *to, char **mem)
{
    *to = *r;
    if (r->elements) {
        dlock_reply *el = (dlock_reply *)(void *)*mem;
        *mem += r->elements * sizeof *el;
        to->element = el;
        for (size_t i = 0; i < r->elements; i++)
            reply_copy(&r->element[i], &el[i], mem);
    }
    if (r->str) {
        memcpy(*mem, r->str, r->len + 1);
        to->str = *mem;
        *mem += aligned(r->len + 1);
    }
}

/* The first round's replies are the driver's only during this call: the ones the step will
 * read after the resend are copied (a rare path: a server lost its scripts). The copy starts
 * with the array of pointers the step is given, filled from the resend's replies later. */
static bool keep_replies(dlock__op *op, const dlock_reply *const *r)
{
    int n = op->batch.n;
    size_t size = aligned((size_t)n * sizeof(dlock_reply *));
    for (int i = 0; i < n; i++)
        if (r[i] && !dlock__reply_is_noscript(r[i]))
            size += reply_size(r[i]);
    free(op->kept);
    if (!(op->kept = malloc(size)))
        return false;
    const dlock_reply **ptr = (const dlock_reply **)(void *)op->kept;
    char *mem = (char *)op->kept + aligned((size_t)n * sizeof(dlock_reply *));
    for (int i = 0; i < n; i++) {
        ptr[i] = NULL;
        if (!r[i] || dlock__reply_is_noscript(r[i]))
            continue;
        dlock_reply *to = (dlock_reply *)(void *)mem;
        mem += sizeof *to;
        reply_copy(r[i], to, &mem);
        ptr[i] = to;
    }
    return true;
}

static const dlock_reply *const *merge_resent(dlock__op *op, const dlock_reply *const *again)
{
    const dlock_reply **ptr = (const dlock_reply **)(void *)op->kept;
    const int *from = resend_from(op);
    for (int k = 0; k < op->nresend; k++)
        ptr[from[k]] = again ? again[k] : NULL;
    return ptr;
}

/* ---- the machine ------------------------------------------------------------------------- */

static bool canceled(dlock__op *op)
{
    if (!op->in->canceled)
        return false;
    set_err(op, "canceled by the client's hook");
    op->step_rc = DLOCK_ECANCELED;  /* nothing was sent */
    op->state = op->resume;
    return true;
}

dlock_action dlock__op_next(dlock__op *op, const dlock_input *in)
{
    dlock *l = op->l;
    const dlock_reply *const *replies = NULL;
    int nreplies = 0;
    op->in = in;
    op->interrupt_taken = false;
    for (;;) {
        dlock__need need = DLOCK__NEED_STEP;
        switch (op->state) {
        case S_RUN_STEP: {
            dlock__now now = {.mono_us = in->now_us, .wall_ms = l->algo->wall_clock ? in->wall_ms : 0};
            op->batch.n = 0;
            op->batch.block_ms = 0;
            op->batch.oom = false;
            op->batch.waits_replicas = false;
            int rc = op->running(l, &now, replies, nreplies, &op->batch);
            replies = NULL;
            nreplies = 0;
            free(op->kept);  /* a resend's replies, read */
            op->kept = NULL;
            if (rc == DLOCK__SEND && op->batch.oom)
                rc = dlock__fail(l, DLOCK_ENOMEM, "out of memory for the step's commands");
            if (rc == DLOCK__SEND) {
                op->state = S_EXCHANGED;
                dlock_action a = send_batch(op);
                a.interrupt_taken = op->interrupt_taken;
                return a;
            }
            /* an undo's failure is not the operation's: it says why the try failed */
            bool undoing = op->resume == S_UNDONE || op->resume == S_UNREPLICATED;
            if (rc != DLOCK_OK && rc != DLOCK_EBUSY && dlock__lock_err(l)[0] && !undoing)
                set_err(op, dlock__lock_err(l));
            if (!undoing)  /* likewise */
                op->step_refused = rc == DLOCK_EIO && l->refused;
            op->step_rc = rc;
            op->state = op->resume;
            break;
        }
        case S_EXCHANGED:
            if (canceled(op))
                break;
            if (collect_noscript(op, in->replies) > 0 && keep_replies(op, in->replies)) {
                op->state = S_RESENT;
                return send_resend(op);
            }
            replies = in->replies;
            nreplies = op->batch.n;
            op->state = S_RUN_STEP;
            break;
        case S_RESENT:
            replies = merge_resent(op, in->canceled ? NULL : in->replies);
            nreplies = op->batch.n;
            op->state = S_RUN_STEP;
            break;
        case S_UNDONE:
            op->undo_ours = op->step_rc == DLOCK_OK;
            if (op->step_rc == DLOCK_EIO)
                op->unconfirmed = true;  /* the undo itself was lost: the lock may still be ours */
            restore_lock_err(op);
            op->state = op->undo_resume;
            break;
        case S_LATE:
            op->cur = dlock__fail(l, DLOCK_EBUSY, "granted after its lease had run out");
            op->state = op->granted_resume;
            break;
        case S_UNREPLICATED:
            if (op->step_rc == DLOCK_EIO)
                op->unconfirmed = true;  /* the undo was lost: the lock may still be ours */
            restore_lock_err(op);
            op->cur = op->refused ? DLOCK_EIO : DLOCK_EBUSY;
            op->state = op->granted_resume;
            break;
        case S_DONE:
            return (dlock_action){.what = DLOCK_DO_DONE, .rc = op->rc,
                                  .interrupt_taken = op->interrupt_taken};
        default:
            need = op->kind == DLOCK__OP_ACQUIRE ? acquire_next(op) : simple_next(op);
            break;
        }
        if (need == DLOCK__NEED_SLEEP)
            return (dlock_action){.what = DLOCK_DO_WAIT, .until_us = op->sleep_until_us,
                                  .interrupt_taken = op->interrupt_taken};
        /* DLOCK__NEED_NOTHING: S_DONE answers */
    }
}

/* ---- the public face (dlock_machine.h) -------------------------------------------------- */

/* step: DLOCK__OP_RUN's step (NULL for the other kinds). */
static dlock_machine *machine_new(dlock *l, dlock__op_kind kind, dlock__step_fn step,
                                  bool owns_lock)
{
    dlock_machine *m = malloc(sizeof *m);
    if (!m || dlock__op_init(m, l, kind, step, NULL) != DLOCK_OK) {
        free(m);
        return NULL;
    }
    m->owns_lock = owns_lock;
    return m;
}

dlock_machine *dlock_machine_acquire(const char *key, const dlock_options *o, int nservers,
                                     const unsigned char token[16], uint64_t jitter_seed,
                                     char *err, size_t errlen)
{
    dlock_options defaults;
    char scratch[8];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    if (!o) {
        dlock_options_init(&defaults);
        o = &defaults;
    }
    if (!key || !token) {
        snprintf(err, errlen, "a key and a token are needed");
        return NULL;
    }
    if (dlock__check_options(o, nservers, err, errlen) != DLOCK_OK)
        return NULL;
    dlock *l = dlock__lock_new(NULL, key, o, nservers, token);
    dlock_machine *m = l ? machine_new(l, DLOCK__OP_ACQUIRE, NULL, true) : NULL;
    if (!m) {
        dlock__lock_free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dlock__rng_seed(&m->own_rng, o->seed ? o->seed : jitter_seed);
    return m;
}

dlock_machine *dlock_machine_release(dlock *l)
{
    return l ? machine_new(l, DLOCK__OP_RELEASE, NULL, false) : NULL;
}

dlock_machine *dlock_machine_extend(dlock *l, int64_t ttl_ms)
{
    if (!l || ttl_ms < 0 || l->algo == &dlock__legacy)
        return NULL;
    dlock_machine *m = machine_new(l, DLOCK__OP_EXTEND, NULL, false);
    if (m)
        m->extend_ttl_ms = ttl_ms;
    return m;
}

static dlock_machine *fenced_write(const char *key, uint64_t fence, const dlock *writer,
                                   const char *value)
{
    if (!key || !value || fence == 0)
        return NULL;
    dlock *l = dlock__fenced_write_new(NULL, key, fence, writer, value);
    dlock_machine *m = l ? machine_new(l, DLOCK__OP_RUN, dlock__fenced_set_step, true) : NULL;
    if (!m)
        dlock__lock_free(l);
    return m;
}

dlock_machine *dlock_machine_fenced_set(const char *key, uint64_t fence, const char *value)
{
    return fenced_write(key, fence, NULL, value);
}

dlock_machine *dlock_machine_fenced_write(const char *key, const dlock *l, const char *value)
{
    return l ? fenced_write(key, l->fence, l, value) : NULL;
}

dlock_machine *dlock_machine_fenced_read(const char *key, const dlock *l)
{
    if (!key || !l || l->fence == 0)
        return NULL;
    dlock *r = dlock__fenced_write_new(NULL, key, l->fence, l, NULL);
    dlock_machine *m = r ? machine_new(r, DLOCK__OP_RUN, dlock__fenced_get_step, true) : NULL;
    if (!m)
        dlock__lock_free(r);
    return m;
}

const char *dlock_machine_value(const dlock_machine *m)
{
    if (!m || m->step != dlock__fenced_get_step || m->state != S_DONE || m->rc != DLOCK_OK)
        return NULL;
    return m->l->payload;
}

dlock_action dlock_machine_next(dlock_machine *m, const dlock_input *in)
{
    return dlock__op_next(m, in);
}

bool dlock_machine_reads_wall_clock(const dlock_machine *m)
{
    return m && dlock__op_reads_wall_clock(m);
}

dlock *dlock_machine_take_lock(dlock_machine *m)
{
    if (!m || m->kind != DLOCK__OP_ACQUIRE || m->state != S_DONE || m->rc != DLOCK_OK ||
        !m->owns_lock)
        return NULL;
    m->owns_lock = false;
    return m->l;
}

const char *dlock_machine_error(const dlock_machine *m)
{
    return m ? dlock__op_error(m) : "no machine";
}

uint64_t dlock_machine_tries(const dlock_machine *m)
{
    return m ? dlock__op_tries(m) : 0;
}

void dlock_machine_free(dlock_machine *m)
{
    if (!m)
        return;
    dlock__op_clear(m);
    if (m->owns_lock)
        dlock__lock_free(m->l);
    free(m);
}
