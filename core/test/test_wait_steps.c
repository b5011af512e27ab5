/* test_wait_steps.c -- redlock's quorum and validity, and the notify and FIFO wait steps,
 * driven by scripted replies. */
#include "scripted.h"

static dlock__now at(int64_t mono_us)
{
    return (dlock__now){.mono_us = mono_us, .wall_ms = 1000000};
}

static int feed(dlock *l, dlock__step_fn step, dlock__now now, dlock__batch *out, int n,
                const dlock_reply **r)
{
    out->n = 0;
    out->block_ms = 0;
    return step(l, &now, r, n, out);
}

static dlock *lock_with(dlock_algorithm a, dlock_wait w, int64_t ttl, bool fencing, int n)
{
    dlock_options o;
    dlock_options_init(&o);
    o.algorithm = a;
    o.wait = w;
    o.ttl_ms = ttl;
    o.fencing = fencing;
    dlock *l = scripted_lock(&o, n);
    l->phase = 0;
    return l;
}

/* ---- redlock ------------------------------------------------------------- */

static dlock_reply OK = R_STATUS("OK"), NIL = R_NIL, ONE = R_INT(1), ZERO = R_INT(0);

/* Sends SET to 5 servers at t0, replies with r at t1; returns the decision or SEND (undo). */
static int redlock_try(dlock *l, dlock__batch *b, const dlock_reply **r, int64_t t1)
{
    l->phase = 0;
    assert_int_equal(feed(l, dlock__redlock.acquire, at(0), b, 0, NULL), DLOCK__SEND);
    assert_int_equal(b->n, 5);
    for (int s = 0; s < 5; s++)
        assert_cmd(b, s, s, NULL, "SET", "res", l->token, "NX", "PX", "10000", NULL);
    return feed(l, dlock__redlock.acquire, at(t1), b, 5, r);
}

static void redlock_quorum_reached(void **state)
{
    dlock *l = lock_with(DLOCK_REDLOCK, DLOCK_WAIT_POLL, 10000, false, 5);
    SCRIPTED_BATCH(b);
    const dlock_reply *r[5] = {&OK, &OK, &NIL, &OK, NULL};
    assert_int_equal(redlock_try(l, &b, r, 5000), DLOCK_OK);
    /* validity = 10000 - 5 - (100 + 2) ms, from the reply's time */
    assert_int_equal(l->valid_until_us, 5000 + (10000000 - 5000 - 102000));
    dlock__lock_free(l);
}

static void redlock_quorum_missed_undoes_everywhere(void **state)
{
    dlock *l = lock_with(DLOCK_REDLOCK, DLOCK_WAIT_POLL, 10000, false, 5);
    SCRIPTED_BATCH(b);
    const dlock_reply *r[5] = {&OK, &OK, &NIL, &NIL, NULL};
    assert_int_equal(redlock_try(l, &b, r, 1000), DLOCK__SEND);
    assert_int_equal(b.n, 5);
    for (int s = 0; s < 5; s++)
        assert_cmd(&b, s, s, &dlock__script_release, "res", l->token, NULL);
    assert_non_null(strstr(dlock__lock_err(l), "2 of 5"));
    const dlock_reply *undo[5] = {&ONE, &ONE, &ZERO, &ZERO, NULL};
    assert_int_equal(feed(l, dlock__redlock.acquire, at(2000), &b, 5, undo), DLOCK_EBUSY);
    dlock__lock_free(l);
}

static void redlock_quorum_too_late_is_a_failure(void **state)
{
    dlock *l = lock_with(DLOCK_REDLOCK, DLOCK_WAIT_POLL, 10000, false, 5);
    SCRIPTED_BATCH(b);
    const dlock_reply *r[5] = {&OK, &OK, &OK, &OK, &OK};
    /* 9.9 s elapsed: 10000 - 9900 - 102 < 0 */
    assert_int_equal(redlock_try(l, &b, r, 9900000), DLOCK__SEND);
    assert_non_null(strstr(dlock__lock_err(l), "too late"));
    assert_int_equal(b.n, 5);
    dlock__lock_free(l);
}

static void redlock_release_and_extend_need_a_quorum(void **state)
{
    dlock *l = lock_with(DLOCK_REDLOCK, DLOCK_WAIT_POLL, 10000, false, 3);
    SCRIPTED_BATCH(b);
    const dlock_reply *two[3] = {&ONE, &ONE, NULL}, *one[3] = {&ONE, &ZERO, NULL},
               *none[3] = {&ONE, NULL, NULL};
    l->valid_until_us = 50000000;
    l->phase = 0;
    assert_int_equal(feed(l, dlock__redlock.release, at(0), &b, 0, NULL), DLOCK__SEND);
    assert_int_equal(b.n, 3);
    assert_int_equal(feed(l, dlock__redlock.release, at(10), &b, 3, two), DLOCK_OK);
    l->phase = 0;
    feed(l, dlock__redlock.release, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, dlock__redlock.release, at(10), &b, 3, one), DLOCK_ENOTOWNER);
    l->phase = 0;
    feed(l, dlock__redlock.release, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, dlock__redlock.release, at(10), &b, 3, none), DLOCK_EIO);

    dlock__set_ttl_arg(l, 10000);
    l->phase = 0;
    assert_int_equal(feed(l, dlock__redlock.extend, at(1000), &b, 0, NULL), DLOCK__SEND);
    assert_cmd(&b, 2, 2, &dlock__script_extend, "res", l->token, "10000", NULL);
    assert_int_equal(feed(l, dlock__redlock.extend, at(2000), &b, 3, two), DLOCK_OK);
    assert_int_equal(l->valid_until_us, 2000 + 10000000 - 1000 - 102000);
    /* an extend that starts after the validity ran out is refused without sending */
    l->valid_until_us = 100;
    l->phase = 0;
    assert_int_equal(feed(l, dlock__redlock.extend, at(1000), &b, 0, NULL), DLOCK_ENOTOWNER);
    assert_int_equal(b.n, 0);
    dlock__lock_free(l);
}

static void redlock_options_are_checked(void **state)
{
    dlock_options o;
    char err[160];
    dlock_options_init(&o);
    o.algorithm = DLOCK_REDLOCK;
    assert_int_equal(dlock__check_options(&o, 5, err, sizeof err), DLOCK_OK);
    assert_int_equal(dlock__check_options(&o, 4, err, sizeof err), DLOCK_EINVAL);
    o.fencing = true;
    assert_int_equal(dlock__check_options(&o, 5, err, sizeof err), DLOCK_EINVAL);
    assert_non_null(strstr(err, "fencing"));
    o.fencing = false;
    o.wait = DLOCK_WAIT_FIFO;
    assert_int_equal(dlock__check_options(&o, 5, err, sizeof err), DLOCK_EINVAL);
}

/* ---- notify -------------------------------------------------------------- */

static void notify_release_signals(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_NOTIFY, 30000, false, 1);
    SCRIPTED_BATCH(b);
    const dlock_reply *r[1] = {&ONE};
    assert_ptr_equal(l->algo, &dlock__token_notify);
    assert_int_equal(feed(l, l->algo->release, at(0), &b, 0, NULL), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_notify_release, "res", "res:signal", l->token, NULL);
    assert_int_equal(feed(l, l->algo->release, at(0), &b, 1, r), DLOCK_OK);
    dlock__lock_free(l);
}

/* A ttl under ten slices: the wait is the BLPOP alone, and a woken waiter tries again. */
static void notify_wait_blocks_for_the_backoff_then_retries(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_NOTIFY, 900, false, 1);
    SCRIPTED_BATCH(b);
    dlock_reply woken_el[2] = {R_STRING("res:signal"), R_STRING("1")};
    dlock_reply woken = {.type = DLOCK_REPLY_ARRAY, .elements = 2, .element = woken_el};
    const dlock_reply *r1[1] = {&woken}, *r2[1] = {&NIL}, *r3[1] = {NULL};
    l->wait_us = 64000;
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 0, NULL), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "BLPOP", "res:signal", "0.064", NULL);
    assert_int_equal(b.block_ms, 65 + DLOCK__BLOCK_SLACK_MS);  /* Redis may time it out late */
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 1, r1), DLOCK_EBUSY);  /* woken */
    l->phase = 0;
    l->wait_us = 0;  /* never BLPOP 0: that would block forever */
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_cmd(&b, 0, 0, NULL, "BLPOP", "res:signal", "0.001", NULL);
    /* a slice that passes with no signal says so; the driver waits on to the end of the
     * back-off delay and then tries again, so a lost signal only costs the back-off */
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 1, r2), DLOCK__WAITED);
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 1, r3), DLOCK_EIO);
    dlock__lock_free(l);
}

/* A ttl of ten slices or more: the next try rides behind the BLPOP in the same write (Redis
 * runs it the moment the BLPOP returns), its lease dated from the batch's send. */
static void notify_try_rides_behind_the_blpop(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_NOTIFY, 1000, false, 1);
    SCRIPTED_BATCH(b);
    dlock_reply woken_el[2] = {R_STRING("res:signal"), R_STRING("1")};
    dlock_reply woken = {.type = DLOCK_REPLY_ARRAY, .elements = 2, .element = woken_el};
    const dlock_reply *taken[2] = {&woken, &OK}, *barged[2] = {&woken, &NIL};
    const dlock_reply *quiet[2] = {&NIL, &NIL}, *free_anyway[2] = {&NIL, &OK}, *lost[2] = {NULL, NULL};
    l->wait_us = 64000;
    assert_int_equal(feed(l, l->algo->wait, at(5000000), &b, 0, NULL), DLOCK__SEND);
    assert_int_equal(b.n, 2);
    assert_cmd(&b, 0, 0, NULL, "BLPOP", "res:signal", "0.064", NULL);
    assert_cmd(&b, 1, 0, NULL, "SET", "res", l->token, "NX", "PX", "1000", NULL);
    assert_int_equal(l->wait_tries, 1);
    assert_int_equal(feed(l, l->algo->wait, at(5050000), &b, 2, taken), DLOCK_OK);
    assert_int_equal(l->valid_until_us, 5000000 + 1000000);  /* from the batch's send */
    /* woken, but another client took it first; or no signal, still held: the try was made
     * (the driver waits on, and at the end of the delay counts it as the next try) */
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 2, barged), DLOCK__TRIED);
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 2, quiet), DLOCK__TRIED);
    /* no signal but free (a lost signal): taken */
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 2, free_anyway), DLOCK_OK);
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 2, lost), DLOCK_EIO);
    assert_int_equal(l->wait_tries, 5);
    dlock__lock_free(l);
    /* never with ttl 0: a try queued for a waiter frozen in its BLPOP would keep the lock for
     * good */
    l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_NOTIFY, 0, false, 1);
    l->wait_us = 64000;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(b.n, 1);
    dlock__lock_free(l);
}

/* ---- fifo ---------------------------------------------------------------- */

static void fifo_acquire_joins_and_waits_its_turn(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_FIFO, 30000, true, 1);
    SCRIPTED_BATCH(b);
    dlock_reply waiting = R_INT(-1), got = R_INT(12);
    const dlock_reply *r1[1] = {&waiting}, *r2[1] = {&got};
    char member[64];
    snprintf(member, sizeof member, "%s:30000:1", l->token);
    assert_ptr_equal(l->algo, &dlock__token_fifo);
    assert_int_equal(feed(l, l->algo->acquire, at(0), &b, 0, NULL), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_fifo_acquire, "res", "res:queue", "res:queue:beat",
               "res:queue:seq", "res:fence", dlock__cmd_args(&b.cmd[0])[5], l->token, member, "30000", "2000",
               "1", NULL);
    assert_int_equal(b.cmd[0].nkeys, 6);
    assert_non_null(strstr(dlock__cmd_args(&b.cmd[0])[5], l->token));  /* our own signal list */
    assert_int_equal(feed(l, l->algo->acquire, at(0), &b, 1, r1), DLOCK_EBUSY);
    l->phase = 0;
    feed(l, l->algo->acquire, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->acquire, at(0), &b, 1, r2), DLOCK_OK);
    assert_int_equal(dlock_fencing_token(l), 12);
    dlock__lock_free(l);
}

static void fifo_wait_takes_the_handoff(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_FIFO, 30000, true, 1);
    SCRIPTED_BATCH(b);
    dlock_reply el[2] = {R_STRING("res:signal:x"), R_STRING("41")};
    dlock_reply handed = {.type = DLOCK_REPLY_ARRAY, .elements = 2, .element = el};
    const dlock_reply *r1[1] = {&handed}, *r2[1] = {&NIL};
    /* the back-off plays no part: the wait is the heartbeat period, cut to the deadline */
    l->wait_us = 5000;
    l->wait_left_us = INT64_MAX;
    assert_int_equal(feed(l, l->algo->wait, at(7000000), &b, 0, NULL), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "BLPOP", l->signal_key, "0.500", NULL);
    /* the hand-off lease is at most the waiter bound: a 30 s ttl is taken with an extend */
    assert_int_equal(feed(l, l->algo->wait, at(7100000), &b, 1, r1), DLOCK__SEND);
    assert_int_equal(dlock_fencing_token(l), 41);
    assert_cmd(&b, 0, 0, &dlock__script_extend, "res", l->token, "30000", NULL);
    const dlock_reply *one[1] = {&ONE}, *zero[1] = {&ZERO};
    assert_int_equal(feed(l, l->algo->wait, at(7200000), &b, 1, one), DLOCK_OK);
    assert_int_equal(l->valid_until_us, 7100000 + 30000000);  /* from the extend's start */
    /* the short lease ran out before the extend: back to the queue */
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    feed(l, l->algo->wait, at(0), &b, 1, r1);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 1, zero), DLOCK_EBUSY);
    l->phase = 0;
    l->wait_left_us = 120000;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_cmd(&b, 0, 0, NULL, "BLPOP", l->signal_key, "0.120", NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 1, r2), DLOCK_EBUSY);
    dlock__lock_free(l);
}

/* ttl 0 (never expires) is beyond any bound: the claim is sent only once the signal came, so a
 * waiter frozen after its heartbeat never makes a handed-over lock permanent; a stale signal
 * (from before we re-joined the queue) grants nothing. */
static void fifo_claim_is_not_queued_beyond_the_bound(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_FIFO, 0, false, 1);
    SCRIPTED_BATCH(b);
    dlock_reply el[2] = {R_STRING("res:signal:x"), R_STRING("0")};
    dlock_reply handed = {.type = DLOCK_REPLY_ARRAY, .elements = 2, .element = el};
    const dlock_reply *r1[1] = {&handed}, *ours[1] = {&ONE}, *stale[1] = {&ZERO};
    l->wait_left_us = INT64_MAX;
    feed(l, l->algo->wait, at(400000), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(450000), &b, 1, r1), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_extend, "res", l->token, "0", NULL);
    assert_int_equal(feed(l, l->algo->wait, at(451000), &b, 1, ours), DLOCK_OK);
    assert_int_equal(l->valid_until_us, INT64_MAX);  /* never expires */
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    feed(l, l->algo->wait, at(0), &b, 1, r1);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 1, stale), DLOCK_EBUSY);
    dlock__lock_free(l);
}

/* A ttl within the waiter bound: the claim rides behind the BLPOP in the same write, so a
 * hand-off costs no round trip of its own; the lease is dated from the batch's send, the slice
 * at most half the ttl. */
static void fifo_claim_rides_behind_the_blpop(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_FIFO, 2000, true, 1);
    SCRIPTED_BATCH(b);
    dlock_reply el[2] = {R_STRING("res:signal:x"), R_STRING("41")};
    dlock_reply handed = {.type = DLOCK_REPLY_ARRAY, .elements = 2, .element = el};
    dlock_reply fence42 = R_STRING("42");
    const dlock_reply *ours[2] = {&handed, &ONE}, *stale[2] = {&handed, &ZERO};
    const dlock_reply *nothing[2] = {&NIL, &ZERO}, *late[2] = {&NIL, &ONE}, *lost[2] = {NULL, NULL};
    const dlock_reply *lpop[1] = {&fence42};
    l->wait_left_us = INT64_MAX;
    assert_int_equal(feed(l, l->algo->wait, at(7000000), &b, 0, NULL), DLOCK__SEND);
    assert_int_equal(b.n, 2);
    assert_cmd(&b, 0, 0, NULL, "BLPOP", l->signal_key, "0.500", NULL);
    assert_cmd(&b, 1, 0, &dlock__script_extend, "res", l->token, "2000", NULL);
    assert_int_equal(feed(l, l->algo->wait, at(7100000), &b, 2, ours), DLOCK_OK);
    assert_int_equal(dlock_fencing_token(l), 41);
    assert_int_equal(l->valid_until_us, 7000000 + 2000000);  /* from the batch's send */
    /* a stale signal, or one whose lease ran out before the extend: back to the queue */
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 2, stale), DLOCK_EBUSY);
    /* a slice with nothing: try again (which refreshes the heartbeat) */
    l->phase = 0;
    l->wait_left_us = 120000;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_cmd(&b, 0, 0, NULL, "BLPOP", l->signal_key, "0.120", NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 2, nothing), DLOCK_EBUSY);
    /* handed over between the BLPOP's timeout and the extend: ours, the signal fetched after */
    l->phase = 0;
    l->wait_left_us = INT64_MAX;
    feed(l, l->algo->wait, at(9000000), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(9100000), &b, 2, late), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "LPOP", l->signal_key, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(9200000), &b, 1, lpop), DLOCK_OK);
    assert_int_equal(dlock_fencing_token(l), 42);
    assert_int_equal(l->valid_until_us, 9000000 + 2000000);
    /* no answer */
    l->phase = 0;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(0), &b, 2, lost), DLOCK_EIO);
    dlock__lock_free(l);
    /* a hand-off late in the slice (more than half the ttl after the send): one more extend
     * dates the lease from now, rather than granting what may be only a sliver of it */
    l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_FIFO, 300, false, 1);
    l->wait_left_us = INT64_MAX;
    feed(l, l->algo->wait, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->wait, at(400000), &b, 2, ours), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_extend, "res", l->token, "300", NULL);
    const dlock_reply *one[1] = {&ONE};
    assert_int_equal(feed(l, l->algo->wait, at(401000), &b, 1, one), DLOCK_OK);
    assert_int_equal(l->valid_until_us, 400000 + 300000);
    dlock__lock_free(l);
}

static void fifo_release_and_leave_hand_on(void **state)
{
    dlock *l = lock_with(DLOCK_TOKEN, DLOCK_WAIT_FIFO, 30000, false, 1);
    SCRIPTED_BATCH(b);
    const dlock_reply *r0[1] = {&ZERO}, *r1[1] = {&ONE};
    char member[64];
    snprintf(member, sizeof member, "%s:30000:0", l->token);
    assert_int_equal(feed(l, l->algo->release, at(0), &b, 0, NULL), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_fifo_release, "res", "res:queue", "res:queue:beat",
               "res:fence", l->token, member, "res:signal:", "2000", NULL);
    assert_int_equal(feed(l, l->algo->release, at(0), &b, 1, r1), DLOCK_OK);
    l->phase = 0;
    feed(l, l->algo->release, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->release, at(0), &b, 1, r0), DLOCK_ENOTOWNER);
    /* leaving: not holding the lock is the normal case */
    l->phase = 0;
    feed(l, l->algo->leave, at(0), &b, 0, NULL);
    assert_int_equal(feed(l, l->algo->leave, at(0), &b, 1, r0), DLOCK_OK);
    dlock__lock_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redlock_quorum_reached),
        cmocka_unit_test(redlock_quorum_missed_undoes_everywhere),
        cmocka_unit_test(redlock_quorum_too_late_is_a_failure),
        cmocka_unit_test(redlock_release_and_extend_need_a_quorum),
        cmocka_unit_test(redlock_options_are_checked),
        cmocka_unit_test(notify_release_signals),
        cmocka_unit_test(notify_wait_blocks_for_the_backoff_then_retries),
        cmocka_unit_test(notify_try_rides_behind_the_blpop),
        cmocka_unit_test(fifo_acquire_joins_and_waits_its_turn),
        cmocka_unit_test(fifo_wait_takes_the_handoff),
        cmocka_unit_test(fifo_claim_is_not_queued_beyond_the_bound),
        cmocka_unit_test(fifo_claim_rides_behind_the_blpop),
        cmocka_unit_test(fifo_release_and_leave_hand_on),
    };
    return cmocka_run_group_tests_name("wait_steps", tests, NULL, NULL);
}
