/* test_op.c -- the operation machine (dlock_machine.h) with scripted replies and a fake clock.
 *
 * No server and no real time: each test plays a driver that hands the machine a time of its
 * choosing and the replies it wants, and asserts the exact sequence of actions the machine
 * answers -- which commands, with which timeout, which waits until when, which result. */
#include <stdlib.h>
#include <string.h>

#include "scripted.h"

static const unsigned char TOKEN[16] = {0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
#define TOK "abcd0000000000000000000000000001"

/* A driver run by hand: the machine, the time and the last action. */
typedef struct player {
    dlock_machine *m;
    int64_t now_us;
    bool interrupted;
    dlock_action a;
} player;

static dlock_options opts(dlock_wait wait, int64_t ttl_ms, int64_t wait_timeout_ms)
{
    dlock_options o;
    dlock_options_init(&o);
    o.wait = wait;
    o.ttl_ms = ttl_ms;
    o.wait_timeout_ms = wait_timeout_ms;
    o.backoff.policy = DLOCK_BACKOFF_CONSTANT;
    o.backoff.base_ms = 10;
    o.backoff.cap_ms = 10;
    o.seed = 7;
    return o;
}

static void begin(player *p, const dlock_options *o)
{
    char err[128] = "";
    p->now_us = 1000000;
    p->interrupted = false;
    p->m = dlock_machine_acquire("res", o, 1, TOKEN, 99, err, sizeof err);
    assert_non_null(p->m);
    dlock_input in = {.now_us = p->now_us};
    p->a = dlock_machine_next(p->m, &in);
}

/* Answers the last action at time t_us: with n replies (after a send), or none. */
static void answer(player *p, int64_t t_us, int n, ...)
{
    const dlock_reply *r[DLOCK__MAX_BATCH];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        r[i] = va_arg(ap, const dlock_reply *);
    va_end(ap);
    if (p->a.what == DLOCK_DO_SEND)
        assert_int_equal(n, p->a.ncommands);
    p->now_us = t_us;
    dlock_input in = {.now_us = t_us, .interrupted = p->interrupted,
                      .replies = p->a.what == DLOCK_DO_SEND ? r : NULL};
    p->a = dlock_machine_next(p->m, &in);
    if (p->a.interrupt_taken)
        p->interrupted = false;
}

/* Asserts the last action sends exactly these commands' names (argv[0]), NULL-terminated. */
static void expect_send(const player *p, int64_t timeout_us, ...)
{
    va_list ap;
    int n = 0;
    assert_int_equal(p->a.what, DLOCK_DO_SEND);
    va_start(ap, timeout_us);
    for (const char *name = va_arg(ap, const char *); name; name = va_arg(ap, const char *)) {
        assert_in_range(n, 0, p->a.ncommands - 1);
        assert_int_equal(p->a.commands[n].server, 0);
        assert_string_equal(p->a.commands[n].argv[0], name);
        n++;
    }
    va_end(ap);
    assert_int_equal(n, p->a.ncommands);
    assert_int_equal(p->a.timeout_us, timeout_us);
}

static void expect_arg(const player *p, int cmd, int arg, const char *want)
{
    assert_in_range(arg, 0, p->a.commands[cmd].argc - 1);
    assert_string_equal(p->a.commands[cmd].argv[arg], want);
}

static void expect_wait(const player *p, int64_t until_us)
{
    assert_int_equal(p->a.what, DLOCK_DO_WAIT);
    assert_int_equal(p->a.until_us, until_us);
}

static void expect_done(const player *p, int rc)
{
    assert_int_equal(p->a.what, DLOCK_DO_DONE);
    assert_int_equal(p->a.rc, rc);
}

static void finish(player *p)
{
    dlock_machine_free(p->m);
    p->m = NULL;
}

static dlock_reply OK = R_STATUS("OK"), NIL = R_NIL, ONE = R_INT(1), ZERO = R_INT(0);
static const dlock_reply *LOST = NULL;
#define MS 1000
#define T0 1000000

/* ---- tries ------------------------------------------------------------------------------ */

static void a_free_lock_is_taken_with_one_set(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    player p;
    begin(&p, &o);
    expect_send(&p, 1000 * MS, "SET", NULL);
    expect_arg(&p, 0, 2, TOK);
    expect_arg(&p, 0, 5, "30000");
    answer(&p, T0 + 300, 1, &OK);
    expect_done(&p, DLOCK_OK);
    assert_int_equal(dlock_machine_tries(p.m), 1);
    dlock *l = dlock_machine_take_lock(p.m);
    assert_non_null(l);
    assert_null(dlock_machine_take_lock(p.m));  /* taken once */
    finish(&p);
    /* the lease counts from the send, not the reply */
    assert_int_equal(atomic_load(&l->valid_until_us), T0 + 30000 * MS);
    dlock_abandon(l);
}

/* The batch's timeout is the command timeout the options give. */
static void the_command_timeout_is_the_machines(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, 0);
    o.command_timeout_ms = 250;
    player p;
    begin(&p, &o);
    expect_send(&p, 250 * MS, "SET", NULL);
    answer(&p, T0 + 250 * MS, 1, LOST);  /* the driver gave up at the timeout */
    expect_send(&p, 250 * MS, "EVALSHA", NULL);   /* giving up: the lost try may hold it */
    expect_arg(&p, 0, 1, dlock__script_release.sha);
    answer(&p, T0 + 251 * MS, 1, &ZERO);
    expect_done(&p, DLOCK_EIO);
    assert_non_null(strstr(dlock_machine_error(p.m), "no reply"));
    finish(&p);
}

/* A try whose reply was lost may have taken the lock: when the next try finds it held, the
 * machine releases by token; if that was ours, it tries again at once, as the same attempt. */
static void a_lost_reply_is_undone_by_token(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, 1000);
    player p;
    begin(&p, &o);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 5 * MS, 1, LOST);
    expect_wait(&p, T0 + 15 * MS);                     /* the back-off: 10 ms */
    answer(&p, T0 + 15 * MS, 0);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 16 * MS, 1, &NIL);                 /* held: by our lost try? */
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);       /* release.lua by our token */
    expect_arg(&p, 0, 1, dlock__script_release.sha);
    expect_arg(&p, 0, 4, TOK);
    answer(&p, T0 + 17 * MS, 1, &ONE);                 /* it was ours */
    expect_send(&p, 1000 * MS, "SET", NULL);           /* so: again, at once */
    answer(&p, T0 + 18 * MS, 1, &OK);
    expect_done(&p, DLOCK_OK);
    assert_int_equal(dlock_machine_tries(p.m), 3);
    dlock_abandon(dlock_machine_take_lock(p.m));
    finish(&p);
}

/* A grant that comes back after the whole lease may be someone else's by now: the machine
 * deletes it by token and counts a failed try. */
static void a_grant_with_no_lease_left_is_undone_and_retried(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 100, 1000);
    player p;
    begin(&p, &o);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 150 * MS, 1, &OK);                 /* 150 ms for a 100 ms lease */
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_release.sha);
    answer(&p, T0 + 151 * MS, 1, &ONE);
    expect_wait(&p, T0 + 161 * MS);
    answer(&p, T0 + 161 * MS, 0);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 162 * MS, 1, &OK);
    expect_done(&p, DLOCK_OK);
    dlock_abandon(dlock_machine_take_lock(p.m));
    finish(&p);
}

/* The last wait is cut to the deadline and one last try is made there. */
static void the_deadline_cuts_the_wait_and_gets_a_last_try(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, 25);
    player p;
    begin(&p, &o);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 1 * MS, 1, &NIL);
    expect_wait(&p, T0 + 11 * MS);
    answer(&p, T0 + 11 * MS, 0);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 12 * MS, 1, &NIL);
    expect_wait(&p, T0 + 22 * MS);
    answer(&p, T0 + 22 * MS, 0);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 23 * MS, 1, &NIL);
    expect_wait(&p, T0 + 25 * MS);                     /* 2 ms left, not 10 */
    answer(&p, T0 + 25 * MS, 0);
    expect_send(&p, 1000 * MS, "SET", NULL);           /* the last try, at the deadline */
    answer(&p, T0 + 26 * MS, 1, &NIL);
    expect_done(&p, DLOCK_ETIMEDOUT);
    assert_int_equal(dlock_machine_tries(p.m), 4);
    assert_non_null(strstr(dlock_machine_error(p.m), "timed out"));
    assert_null(dlock_machine_take_lock(p.m));
    finish(&p);
}

/* ---- refusals ---------------------------------------------------------------------------- */

/* A server that refuses us will refuse every retry alike: the acquire ends at the first such
 * answer with DLOCK_EIO and the server's words, however long it was allowed to wait. */
static void a_refusal_ends_the_acquire_at_once(void **state)
{
    static const char *const refusals[] = {
        "NOAUTH Authentication required.",
        "WRONGPASS invalid username-password pair or user is disabled.",
        "NOPERM this user has no permissions to run the 'set' command",
        "ERR unknown command 'SET', with args beginning with: ",
        "ERR wrong number of arguments for 'set' command",
    };
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);  /* wait forever */
        dlock_reply no = {.type = DLOCK_REPLY_ERROR, .str = refusals[i],
                          .len = strlen(refusals[i])};
        player p;
        begin(&p, &o);
        expect_send(&p, 1000 * MS, "SET", NULL);
        answer(&p, T0 + 1 * MS, 1, &no);
        expect_done(&p, DLOCK_EIO);                    /* no wait, no second try, no undo */
        assert_int_equal(dlock_machine_tries(p.m), 1);
        assert_non_null(strstr(dlock_machine_error(p.m), refusals[i]));
        finish(&p);
    }
}

/* An error that says the server cannot serve us now (loading, busy, out of memory) is waited
 * out as before, like a server out of reach. */
static void a_passing_error_is_retried(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    dlock_reply loading = R_ERROR("LOADING Redis is loading the dataset in memory");
    player p;
    begin(&p, &o);
    answer(&p, T0 + 1 * MS, 1, &loading);
    expect_wait(&p, T0 + 11 * MS);
    answer(&p, T0 + 11 * MS, 0);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 12 * MS, 1, &OK);
    expect_done(&p, DLOCK_OK);
    dlock_abandon(dlock_machine_take_lock(p.m));
    finish(&p);
}

/* A refusal after a try whose reply was lost: that try may hold the lock, so it is undone by
 * token on the way out (refused too, here), and the acquire reports the refusal, not the undo. */
static void a_refusal_after_a_lost_reply_still_undoes_it(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    dlock_reply noauth = R_ERROR("NOAUTH Authentication required.");
    player p;
    begin(&p, &o);
    answer(&p, T0 + 1000 * MS, 1, LOST);               /* the connection dropped */
    expect_wait(&p, T0 + 1010 * MS);
    answer(&p, T0 + 1010 * MS, 0);
    expect_send(&p, 1000 * MS, "SET", NULL);           /* reconnected: no AUTH any more */
    answer(&p, T0 + 1011 * MS, 1, &noauth);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_release.sha);
    answer(&p, T0 + 1012 * MS, 1, &noauth);
    expect_done(&p, DLOCK_EIO);
    assert_string_equal(dlock_machine_error(p.m), "acquire: NOAUTH Authentication required.");
    finish(&p);
}

/* notify: a slice refused, with the next try behind its BLPOP. No sleeping out the rest of the
 * delay and no further slice: the acquire ends, after undoing the try that rode along (an ACL
 * may refuse the BLPOP and let the SET through). */
static void a_refused_wait_slice_ends_the_acquire(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_NOTIFY, 30000, -1);  /* the try rides behind the BLPOP */
    o.backoff.base_ms = o.backoff.cap_ms = 1000;
    dlock_reply noperm = R_ERROR("NOPERM this user has no permissions to access one of the keys");
    player p;
    begin(&p, &o);
    answer(&p, T0, 1, &NIL);
    expect_send(&p, (1000 + 100 + 1 + DLOCK__BLOCK_SLACK_MS) * MS, "BLPOP", "SET", NULL);
    answer(&p, T0 + 1 * MS, 2, &noperm, &NIL);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);       /* the ridden try, undone by token */
    expect_arg(&p, 0, 1, dlock__script_notify_release.sha);
    answer(&p, T0 + 2 * MS, 1, &ZERO);
    expect_done(&p, DLOCK_EIO);
    assert_non_null(strstr(dlock_machine_error(p.m), "NOPERM"));
    finish(&p);
}

/* A refused release gets no second go on a fresh connection: it would be refused alike. */
static void a_refused_release_is_not_repeated(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    dlock_reply noauth = R_ERROR("NOAUTH Authentication required.");
    player p;
    begin(&p, &o);
    answer(&p, T0, 1, &OK);
    dlock *l = dlock_machine_take_lock(p.m);
    finish(&p);

    p.m = dlock_machine_release(l);
    dlock_input in = {.now_us = T0 + 10 * MS};
    p.a = dlock_machine_next(p.m, &in);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    answer(&p, T0 + 11 * MS, 1, &noauth);
    expect_done(&p, DLOCK_EIO);
    finish(&p);
    dlock_abandon(l);
}

/* Redlock on 3 servers: one refusing server leaves a quorum possible, so the acquire waits on;
 * two leave none, so after undoing the grant it ends with DLOCK_EIO. */
static void redlock_ends_only_when_refusals_rule_out_a_quorum(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    o.algorithm = DLOCK_REDLOCK;
    dlock_reply noauth = R_ERROR("NOAUTH Authentication required.");
    dlock_machine *m = dlock_machine_acquire("res", &o, 3, TOKEN, 1, NULL, 0);
    assert_non_null(m);
    dlock_input in = {.now_us = T0};
    dlock_action a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    assert_int_equal(a.ncommands, 3);
    const dlock_reply *one[3] = {&OK, &NIL, &noauth};   /* 1 granted, 1 held, 1 refused */
    in = (dlock_input){.now_us = T0 + 1 * MS, .replies = one};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);            /* the grant undone on every server */
    const dlock_reply *undone[3] = {&ONE, &ZERO, &noauth};
    in = (dlock_input){.now_us = T0 + 2 * MS, .replies = undone};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_WAIT);            /* a quorum is still possible */
    in = (dlock_input){.now_us = a.until_us};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    const dlock_reply *two[3] = {&OK, &noauth, &noauth};
    in = (dlock_input){.now_us = T0 + 20 * MS, .replies = two};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    in = (dlock_input){.now_us = T0 + 21 * MS, .replies = undone};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_DONE);
    assert_int_equal(a.rc, DLOCK_EIO);
    assert_string_equal(dlock_machine_error(m),
                        "2 of 3 servers refused: NOAUTH Authentication required.");
    assert_int_equal(dlock_machine_tries(m), 2);
    dlock_machine_free(m);
}

/* The replies kept across a NOSCRIPT resend are packed into one block: each must start
 * aligned whatever the length of the string before it (under UBSan, a misaligned copy fails
 * here). Redlock's release on 3 servers: an error of odd length, a NOSCRIPT, a 1. */
static void kept_replies_stay_aligned(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    o.algorithm = DLOCK_REDLOCK;
    dlock_machine *m = dlock_machine_acquire("res", &o, 3, TOKEN, 1, NULL, 0);
    dlock_input in = {.now_us = T0};
    dlock_action a = dlock_machine_next(m, &in);
    const dlock_reply *granted[3] = {&OK, &OK, &OK};
    in = (dlock_input){.now_us = T0 + 1 * MS, .replies = granted};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_DONE);
    assert_int_equal(a.rc, DLOCK_OK);
    dlock *l = dlock_machine_take_lock(m);
    dlock_machine_free(m);

    m = dlock_machine_release(l);
    in = (dlock_input){.now_us = T0 + 10 * MS};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    assert_int_equal(a.ncommands, 3);
    dlock_reply odd = R_ERROR("ERR x"), noscript = R_ERROR("NOSCRIPT No matching script.");
    const dlock_reply *first[3] = {&odd, &noscript, &ONE};
    in = (dlock_input){.now_us = T0 + 11 * MS, .replies = first};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    assert_int_equal(a.ncommands, 1);
    assert_string_equal(a.commands[0].argv[0], "EVAL");
    const dlock_reply *again[1] = {&ONE};
    in = (dlock_input){.now_us = T0 + 12 * MS, .replies = again};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_DONE);
    dlock_machine_free(m);
    dlock_abandon(l);
}

/* ---- waits ------------------------------------------------------------------------------ */

/* notify waits in BLPOP slices of at most 100 ms, each given its block time on top of the
 * command timeout, the last one cut to the back-off delay; then it tries again. */
static void notify_waits_in_slices(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_NOTIFY, 500, -1);  /* < 1 s: no try behind the BLPOP */
    o.backoff.base_ms = o.backoff.cap_ms = 250;
    player p;
    begin(&p, &o);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0, 1, &NIL);
    int64_t slice_timeout = (1000 + 100 + 1 + DLOCK__BLOCK_SLACK_MS) * MS;
    expect_send(&p, slice_timeout, "BLPOP", NULL);
    expect_arg(&p, 0, 1, "res:signal");
    expect_arg(&p, 0, 2, "0.100");
    answer(&p, T0 + 100 * MS, 1, &NIL);
    expect_send(&p, slice_timeout, "BLPOP", NULL);
    expect_arg(&p, 0, 2, "0.100");
    answer(&p, T0 + 200 * MS, 1, &NIL);
    expect_send(&p, (1000 + 50 + 1 + DLOCK__BLOCK_SLACK_MS) * MS, "BLPOP", NULL);
    expect_arg(&p, 0, 2, "0.050");                     /* what is left of the 250 ms */
    answer(&p, T0 + 250 * MS, 1, &NIL);
    expect_send(&p, 1000 * MS, "SET", NULL);
    answer(&p, T0 + 251 * MS, 1, &OK);
    expect_done(&p, DLOCK_OK);
    dlock_abandon(dlock_machine_take_lock(p.m));
    finish(&p);
}

/* An interrupt is seen between slices: no next slice, the acquire ends canceled, and the
 * machine says it took the interrupt (an interrupt cancels one acquire). */
static void an_interrupt_is_seen_between_slices(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_NOTIFY, 500, -1);
    o.backoff.base_ms = o.backoff.cap_ms = 1000;
    player p;
    begin(&p, &o);
    answer(&p, T0, 1, &NIL);
    expect_send(&p, (1000 + 100 + 1 + DLOCK__BLOCK_SLACK_MS) * MS, "BLPOP", NULL);
    p.interrupted = true;
    answer(&p, T0 + 100 * MS, 1, &NIL);
    expect_done(&p, DLOCK_ECANCELED);
    assert_true(p.a.interrupt_taken);
    assert_string_equal(dlock_machine_error(p.m), "canceled");
    finish(&p);
}

/* An interrupt ends a back-off wait at once: the next call cancels. */
static void an_interrupt_ends_a_backoff_wait(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    o.backoff.base_ms = o.backoff.cap_ms = 10000;
    player p;
    begin(&p, &o);
    answer(&p, T0, 1, &NIL);
    expect_wait(&p, T0 + 10000 * MS);
    p.interrupted = true;
    answer(&p, T0 + 5 * MS, 0);                        /* woken early */
    expect_done(&p, DLOCK_ECANCELED);
    assert_true(p.a.interrupt_taken);
    finish(&p);
}

/* With an interrupt already pending, the machine does not ask to wait at all. */
static void no_wait_is_asked_with_an_interrupt_pending(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    player p;
    begin(&p, &o);
    p.interrupted = true;
    answer(&p, T0, 1, &NIL);
    expect_done(&p, DLOCK_ECANCELED);
    finish(&p);
}

/* A fifo waiter that gives up leaves the queue (fifo_release.lua by its token). */
static void a_fifo_waiter_leaves_the_queue_when_it_gives_up(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_FIFO, 30000, 0);  /* try once */
    dlock_reply queued = R_INT(-1);
    player p;
    begin(&p, &o);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_fifo_acquire.sha);
    answer(&p, T0 + 1 * MS, 1, &queued);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_fifo_release.sha);
    answer(&p, T0 + 2 * MS, 1, &ZERO);                 /* not the holder: just left */
    expect_done(&p, DLOCK_EBUSY);
    finish(&p);
}

/* ---- the exchange's outcomes -------------------------------------------------------------- */

/* A server that lost its scripts answers NOSCRIPT: only those commands go again, as EVAL with
 * the script's text, and the step reads both rounds' replies together. The first round's
 * replies are the driver's only during its call: the machine must keep its own copy. */
static void noscript_resends_only_the_scripts_as_eval(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_NOTIFY, 30000, -1);  /* the try rides behind the BLPOP */
    o.fencing = true;
    o.backoff.base_ms = o.backoff.cap_ms = 100;
    player p;
    begin(&p, &o);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    answer(&p, T0, 1, &ZERO);                          /* held */
    expect_send(&p, (1000 + 100 + 1 + DLOCK__BLOCK_SLACK_MS) * MS, "BLPOP", "EVALSHA", NULL);
    char key[] = "res:signal", val[] = "1";
    dlock_reply el[2] = {{.type = DLOCK_REPLY_STRING, .str = key, .len = 10},
                         {.type = DLOCK_REPLY_STRING, .str = val, .len = 1}};
    dlock_reply woken = R_ARRAY(2, el), noscript = R_ERROR("NOSCRIPT No matching script.");
    answer(&p, T0 + 5 * MS, 2, &woken, &noscript);
    memset(el, 0, sizeof el);                          /* the driver frees its replies */
    memset(key, 'x', sizeof key - 1);
    expect_send(&p, (1000 + 100 + 1 + DLOCK__BLOCK_SLACK_MS) * MS, "EVAL", NULL);
    expect_arg(&p, 0, 1, dlock__script_acquire_fenced.text);
    expect_arg(&p, 0, 2, "2");
    expect_arg(&p, 0, 3, "res");
    dlock_reply fence = R_INT(42);
    answer(&p, T0 + 6 * MS, 1, &fence);
    expect_done(&p, DLOCK_OK);
    dlock *l = dlock_machine_take_lock(p.m);
    assert_int_equal(dlock_fencing_token(l), 42);
    dlock_abandon(l);
    finish(&p);
}

/* The protected store's fenced write is a machine too: the script with the key, its fence and
 * owner keys, the token, the value and the writer (not named here: empty); 1 is written, 0
 * refused as stale; NOSCRIPT resends it as EVAL. */
static void a_fenced_write_is_a_machine(void **state)
{
    assert_null(dlock_machine_fenced_set("c", 0, "1"));   /* no token: no fenced write */
    for (int stale = 0; stale < 2; stale++) {
        dlock_machine *m = dlock_machine_fenced_set("counter", 42, "7");
        assert_non_null(m);
        dlock_input in = {.now_us = T0};
        dlock_action a = dlock_machine_next(m, &in);
        assert_int_equal(a.what, DLOCK_DO_SEND);
        assert_int_equal(a.ncommands, 1);
        assert_string_equal(a.commands[0].argv[0], "EVALSHA");
        assert_int_equal(a.commands[0].argc, 9);
        assert_string_equal(a.commands[0].argv[2], "3");
        assert_string_equal(a.commands[0].argv[3], "counter");
        assert_string_equal(a.commands[0].argv[4], "counter:fence");
        assert_string_equal(a.commands[0].argv[5], "counter:fence:owner");
        assert_string_equal(a.commands[0].argv[6], "42");
        assert_string_equal(a.commands[0].argv[7], "7");
        assert_string_equal(a.commands[0].argv[8], "");
        dlock_reply noscript = R_ERROR("NOSCRIPT No matching script.");
        const dlock_reply *r[1] = {&noscript};
        in = (dlock_input){.now_us = T0 + 100, .replies = r};
        a = dlock_machine_next(m, &in);
        assert_int_equal(a.what, DLOCK_DO_SEND);
        assert_string_equal(a.commands[0].argv[0], "EVAL");
        assert_string_equal(a.commands[0].argv[1], dlock__script_fenced_set.text);
        r[0] = stale ? &ZERO : &ONE;
        in = (dlock_input){.now_us = T0 + 200, .replies = r};
        a = dlock_machine_next(m, &in);
        assert_int_equal(a.what, DLOCK_DO_DONE);
        assert_int_equal(a.rc, stale ? DLOCK_ESTALE : DLOCK_OK);
        dlock_machine_free(m);
    }
}

/* A fenced write made under a lock names its writer with the lock's token and carries the
 * lock's fencing token, both read when the machine is made. */
static void a_fenced_write_names_the_lock_it_is_made_under(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, 0);
    o.fencing = true;
    player p;
    begin(&p, &o);
    dlock_reply fence = R_INT(42);
    answer(&p, T0 + 100, 1, &fence);
    expect_done(&p, DLOCK_OK);
    dlock *l = dlock_machine_take_lock(p.m);
    finish(&p);
    assert_null(dlock_machine_fenced_write("c", NULL, "1"));
    dlock_machine *m = dlock_machine_fenced_write("counter", l, "7");
    dlock_abandon(l);  /* the machine kept what it needs */
    assert_non_null(m);
    dlock_input in = {.now_us = T0};
    dlock_action a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    assert_int_equal(a.commands[0].argc, 9);
    assert_string_equal(a.commands[0].argv[1], dlock__script_fenced_set.sha);
    assert_string_equal(a.commands[0].argv[6], "42");
    assert_string_equal(a.commands[0].argv[8], TOK);
    const dlock_reply *r[1] = {&ZERO};  /* a second holder of token 42 wrote first */
    in = (dlock_input){.now_us = T0 + 100, .replies = r};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_DONE);
    assert_int_equal(a.rc, DLOCK_ESTALE);
    dlock_machine_free(m);
}

/* A lock taken with fencing token 42 (fencing true) or none, through a scripted acquire. */
static dlock *lock_with_fence(bool fencing)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, 0);
    o.fencing = fencing;
    player p;
    begin(&p, &o);
    dlock_reply fence = R_INT(42);
    answer(&p, T0 + 100, 1, fencing ? &fence : &OK);
    expect_done(&p, DLOCK_OK);
    dlock *l = dlock_machine_take_lock(p.m);
    finish(&p);
    return l;
}

/* Runs a fenced read of "counter" under l to its end: the script (by SHA1) with the key, its
 * fence and owner keys, the lock's fencing token and its token as the reader, answered reply;
 * returns the last action. */
static dlock_action fenced_read(dlock_machine *m, const dlock_reply *reply)
{
    dlock_input in = {.now_us = T0};
    dlock_action a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    assert_int_equal(a.ncommands, 1);
    assert_int_equal(a.commands[0].server, 0);
    assert_int_equal(a.commands[0].argc, 8);
    assert_string_equal(a.commands[0].argv[0], "EVALSHA");
    assert_string_equal(a.commands[0].argv[1], dlock__script_fenced_get.sha);
    assert_string_equal(a.commands[0].argv[2], "3");
    assert_string_equal(a.commands[0].argv[3], "counter");
    assert_string_equal(a.commands[0].argv[4], "counter:fence");
    assert_string_equal(a.commands[0].argv[5], "counter:fence:owner");
    assert_string_equal(a.commands[0].argv[6], "42");
    assert_string_equal(a.commands[0].argv[7], TOK);
    assert_null(dlock_machine_value(m));  /* nothing read yet */
    const dlock_reply *r[1] = {reply};
    in = (dlock_input){.now_us = T0 + 100, .replies = r};
    return dlock_machine_next(m, &in);
}

/* The fenced read shows the store the lock's token: the value comes back (kept by the machine
 * after the driver's reply is gone), nil when the key has none, and 0 -- the store saw a newer
 * token, or this one under another lock -- is a refusal, with no value. Only a lock with a
 * fencing token can read so. */
static void a_fenced_read_is_a_machine(void **state)
{
    dlock *plain = lock_with_fence(false);
    assert_null(dlock_machine_fenced_read("counter", plain));  /* no fencing token */
    assert_null(dlock_machine_fenced_read("counter", NULL));
    dlock_abandon(plain);
    dlock *l = lock_with_fence(true);

    dlock_machine *m = dlock_machine_fenced_read("counter", l);
    assert_non_null(m);
    char text[] = "17";
    dlock_reply value = {.type = DLOCK_REPLY_STRING, .str = text, .len = 2};
    dlock_action a = fenced_read(m, &value);
    assert_int_equal(a.what, DLOCK_DO_DONE);
    assert_int_equal(a.rc, DLOCK_OK);
    memset(text, 'x', 2);  /* the driver frees its replies */
    assert_string_equal(dlock_machine_value(m), "17");
    dlock_machine_free(m);

    m = dlock_machine_fenced_read("counter", l);
    a = fenced_read(m, &NIL);
    assert_int_equal(a.rc, DLOCK_OK);
    assert_null(dlock_machine_value(m));  /* the key has no value */
    dlock_machine_free(m);

    m = dlock_machine_fenced_read("counter", l);
    a = fenced_read(m, &ZERO);
    assert_int_equal(a.what, DLOCK_DO_DONE);
    assert_int_equal(a.rc, DLOCK_ESTALE);
    assert_null(dlock_machine_value(m));
    assert_non_null(strstr(dlock_machine_error(m), "fenced read"));
    dlock_machine_free(m);

    dlock_reply wrongtype = R_ERROR("WRONGTYPE Operation against a key holding the wrong kind");
    m = dlock_machine_fenced_read("counter", l);
    a = fenced_read(m, &wrongtype);
    assert_int_equal(a.rc, DLOCK_EIO);
    dlock_machine_free(m);

    m = dlock_machine_fenced_read("counter", l);  /* no reply came */
    a = fenced_read(m, LOST);
    assert_int_equal(a.rc, DLOCK_EIO);
    dlock_machine_free(m);
    dlock_abandon(l);
}

/* The read's script goes as EVAL after a NOSCRIPT, and the lock is read when the machine is
 * made: it may be freed at once. */
static void a_fenced_read_resends_its_script_as_eval(void **state)
{
    dlock *l = lock_with_fence(true);
    dlock_machine *m = dlock_machine_fenced_read("counter", l);
    dlock_abandon(l);
    dlock_reply noscript = R_ERROR("NOSCRIPT No matching script.");
    dlock_action a = fenced_read(m, &noscript);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    assert_string_equal(a.commands[0].argv[0], "EVAL");
    assert_string_equal(a.commands[0].argv[1], dlock__script_fenced_get.text);
    assert_string_equal(a.commands[0].argv[7], TOK);
    dlock_reply value = R_STRING("3");
    const dlock_reply *r[1] = {&value};
    dlock_input in = {.now_us = T0 + 200, .replies = r};
    a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_DONE);
    assert_int_equal(a.rc, DLOCK_OK);
    assert_string_equal(dlock_machine_value(m), "3");
    dlock_machine_free(m);
}

/* A release whose reply was lost goes once more, on fresh connections. */
static void a_release_retries_once_on_a_fresh_connection(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    player p;
    begin(&p, &o);
    answer(&p, T0, 1, &OK);
    dlock *l = dlock_machine_take_lock(p.m);
    finish(&p);

    p.m = dlock_machine_release(l);
    dlock_input in = {.now_us = T0 + 10 * MS};
    p.a = dlock_machine_next(p.m, &in);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    assert_false(p.a.reconnect);
    answer(&p, T0 + 1010 * MS, 1, LOST);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    assert_true(p.a.reconnect);
    answer(&p, T0 + 1011 * MS, 1, &ONE);
    expect_done(&p, DLOCK_OK);
    finish(&p);
    dlock_abandon(l);
}

/* An extend sets the new ttl on success and keeps the old one on failure. */
static void an_extend_keeps_its_ttl_only_on_success(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    player p;
    begin(&p, &o);
    answer(&p, T0, 1, &OK);
    dlock *l = dlock_machine_take_lock(p.m);
    finish(&p);

    p.m = dlock_machine_extend(l, 5000);
    dlock_input in = {.now_us = T0 + 10 * MS};
    p.a = dlock_machine_next(p.m, &in);
    expect_arg(&p, 0, 5, "5000");
    answer(&p, T0 + 11 * MS, 1, &ZERO);                /* not ours any more */
    expect_done(&p, DLOCK_ENOTOWNER);
    finish(&p);
    assert_string_equal(l->ttl_arg, "30000");
    assert_int_equal(l->opt.ttl_ms, 30000);

    p.m = dlock_machine_extend(l, 5000);
    p.a = dlock_machine_next(p.m, &in);
    answer(&p, T0 + 11 * MS, 1, &ONE);
    expect_done(&p, DLOCK_OK);
    finish(&p);
    assert_int_equal(l->opt.ttl_ms, 5000);
    assert_int_equal(atomic_load(&l->valid_until_us), T0 + 10 * MS + 5000 * MS);
    dlock_abandon(l);
}

/* A hook that refuses the batch: nothing was sent, the acquire ends canceled and says why. */
static void a_refused_batch_cancels(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
    player p;
    begin(&p, &o);
    dlock_input in = {.now_us = T0, .canceled = true};
    p.a = dlock_machine_next(p.m, &in);
    expect_done(&p, DLOCK_ECANCELED);
    assert_string_equal(dlock_machine_error(p.m), "canceled by the client's hook");
    finish(&p);
}

/* The wall clock is the driver's too: legacy asks for it and writes what it was given. */
static void legacy_reads_the_wall_clock_it_is_given(void **state)
{
    dlock_options o = opts(DLOCK_WAIT_POLL, 1000, -1);
    o.algorithm = DLOCK_LEGACY;
    dlock_machine *m = dlock_machine_acquire("res", &o, 1, TOKEN, 1, NULL, 0);
    assert_true(dlock_machine_reads_wall_clock(m));
    dlock_input in = {.now_us = T0, .wall_ms = 1700000000000};
    dlock_action a = dlock_machine_next(m, &in);
    assert_int_equal(a.what, DLOCK_DO_SEND);
    assert_string_equal(a.commands[0].argv[0], "SETNX");
    assert_string_equal(a.commands[0].argv[2], "1700000001001");  /* wall + ttl + 1 */
    dlock_machine_free(m);

    o.algorithm = DLOCK_TOKEN;
    m = dlock_machine_acquire("res", &o, 1, TOKEN, 1, NULL, 0);
    assert_false(dlock_machine_reads_wall_clock(m));
    dlock_machine_free(m);
}

/* The jitter is the seed's: two machines fed the same seed and times wait the same. */
static void the_same_seed_waits_the_same(void **state)
{
    int64_t waits[2][5];
    for (int run = 0; run < 2; run++) {
        dlock_options o = opts(DLOCK_WAIT_POLL, 30000, -1);
        o.seed = 0;  /* the driver's jitter seed decides */
        o.backoff.policy = DLOCK_BACKOFF_FULL_JITTER;
        o.backoff.cap_ms = 1000;
        dlock_machine *m = dlock_machine_acquire("res", &o, 1, TOKEN, 12345, NULL, 0);
        int64_t t = T0;
        dlock_input in = {.now_us = t};
        dlock_action a = dlock_machine_next(m, &in);
        for (int i = 0; i < 5; i++) {
            const dlock_reply *r[1] = {&NIL};
            in = (dlock_input){.now_us = t, .replies = r};
            a = dlock_machine_next(m, &in);
            assert_int_equal(a.what, DLOCK_DO_WAIT);
            waits[run][i] = a.until_us - t;
            t = a.until_us;
            in = (dlock_input){.now_us = t};
            a = dlock_machine_next(m, &in);
            assert_int_equal(a.what, DLOCK_DO_SEND);
        }
        dlock_machine_free(m);
    }
    assert_memory_equal(waits[0], waits[1], sizeof waits[0]);
    assert_true(waits[0][0] != waits[0][1] || waits[0][1] != waits[0][2]);  /* jittered */
}

/* ---- replicas: WAIT behind every grant ------------------------------------------------------ */

/* min_replicas 1, WAIT's timeout 50 ms. A batch with a WAIT may take that long, and the
 * blocked-client timer's slack, on top of the command timeout. */
static dlock_options replica_opts(dlock_wait wait, int64_t ttl_ms, int64_t wait_timeout_ms)
{
    dlock_options o = opts(wait, ttl_ms, wait_timeout_ms);
    o.min_replicas = 1;
    o.replica_timeout_ms = 50;
    return o;
}
#define WAIT_BATCH ((1000 + 50 + DLOCK__BLOCK_SLACK_MS) * MS)

static void begin_on(player *p, const dlock_options *o, int nservers)
{
    p->now_us = T0;
    p->interrupted = false;
    p->m = dlock_machine_acquire("res", o, nservers, TOKEN, 99, NULL, 0);
    assert_non_null(p->m);
    dlock_input in = {.now_us = p->now_us};
    p->a = dlock_machine_next(p->m, &in);
}

static void expect_err(const player *p, const char *part)
{
    if (!strstr(dlock_machine_error(p->m), part))
        fail_msg("error \"%s\" does not say \"%s\"", dlock_machine_error(p->m), part);
}

/* WAIT rides in the try's batch; one acknowledgement is enough, and the lease counts from the
 * send, WAIT's time included. */
static void a_grant_replicas_acknowledged_is_held(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_POLL, 30000, -1);
    player p;
    begin(&p, &o);
    expect_send(&p, WAIT_BATCH, "SET", "WAIT", NULL);
    expect_arg(&p, 1, 1, "1");
    expect_arg(&p, 1, 2, "50");
    answer(&p, T0 + 20 * MS, 2, &OK, &ONE);
    expect_done(&p, DLOCK_OK);
    dlock *l = dlock_machine_take_lock(p.m);
    assert_int_equal(atomic_load(&l->valid_until_us), T0 + 30000 * MS);
    dlock_abandon(l);
    finish(&p);
}

/* No replica acknowledged: the grant is deleted by token (the release batch has no WAIT), the
 * try counts as failed, and the next comes after the back-off. */
static void an_unreplicated_grant_is_undone_and_retried(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_POLL, 30000, 1000);
    player p;
    begin(&p, &o);
    expect_send(&p, WAIT_BATCH, "SET", "WAIT", NULL);
    answer(&p, T0 + 150 * MS, 2, &OK, &ZERO);          /* WAIT timed out at Redis's tick */
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_release.sha);
    expect_arg(&p, 0, 4, TOK);
    answer(&p, T0 + 151 * MS, 1, &ONE);
    expect_wait(&p, T0 + 161 * MS);
    answer(&p, T0 + 161 * MS, 0);
    expect_send(&p, WAIT_BATCH, "SET", "WAIT", NULL);
    answer(&p, T0 + 170 * MS, 2, &OK, &ONE);
    expect_done(&p, DLOCK_OK);
    assert_int_equal(dlock_machine_tries(p.m), 2);
    dlock_abandon(dlock_machine_take_lock(p.m));
    finish(&p);
}

/* WAIT's answer is read only when the try took the lock; a held lock is a held lock. A try
 * once that replicas do not confirm is busy, with WAIT's reason. */
static void a_try_once_replicas_do_not_confirm_says_why(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_POLL, 30000, 0);
    player p;
    begin(&p, &o);
    answer(&p, T0 + 150 * MS, 2, &NIL, &ZERO);
    expect_done(&p, DLOCK_EBUSY);
    finish(&p);
    begin(&p, &o);
    answer(&p, T0 + 150 * MS, 2, &OK, &ZERO);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    answer(&p, T0 + 151 * MS, 1, &ONE);
    expect_done(&p, DLOCK_EBUSY);
    assert_string_equal(dlock_machine_error(p.m), "WAIT: 0 of 1 replicas acknowledged");
    finish(&p);
}

/* WAIT's time counts against the wait deadline like any try's: the acquire times out, the
 * reason being WAIT's, and every grant was deleted again. A WAIT whose reply was lost does
 * not confirm either. */
static void unconfirmed_tries_time_out_with_the_reason(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_POLL, 30000, 300);
    player p;
    begin(&p, &o);
    answer(&p, T0 + 150 * MS, 2, &OK, &ZERO);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    answer(&p, T0 + 151 * MS, 1, &ONE);
    expect_wait(&p, T0 + 161 * MS);
    answer(&p, T0 + 161 * MS, 0);
    expect_send(&p, WAIT_BATCH, "SET", "WAIT", NULL);
    answer(&p, T0 + 311 * MS, 2, &OK, LOST);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_release.sha);
    answer(&p, T0 + 312 * MS, 1, &ONE);
    expect_done(&p, DLOCK_ETIMEDOUT);
    expect_err(&p, "timed out waiting for the lock (last try: WAIT: no reply");
    finish(&p);
}

/* An extend that replicas do not confirm fails with EIO and keeps the lease it had; a second
 * go on a fresh connection would not mend that, so there is none. */
static void an_unreplicated_extend_keeps_the_old_lease(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_POLL, 30000, 0);
    player p;
    begin(&p, &o);
    answer(&p, T0 + 10 * MS, 2, &OK, &ONE);
    expect_done(&p, DLOCK_OK);
    dlock *l = dlock_machine_take_lock(p.m);
    finish(&p);
    for (int acked = 0; acked < 2; acked++) {
        dlock_machine *m = dlock_machine_extend(l, 60000);
        dlock_input in = {.now_us = T0 + 1000 * MS};
        dlock_action a = dlock_machine_next(m, &in);
        assert_int_equal(a.what, DLOCK_DO_SEND);
        assert_int_equal(a.ncommands, 2);
        assert_string_equal(a.commands[0].argv[1], dlock__script_extend.sha);
        assert_string_equal(a.commands[1].argv[0], "WAIT");
        assert_int_equal(a.timeout_us, WAIT_BATCH);
        const dlock_reply *r[2] = {&ONE, acked ? &ONE : &ZERO};
        in = (dlock_input){.now_us = T0 + 1100 * MS, .replies = r};
        a = dlock_machine_next(m, &in);
        assert_int_equal(a.what, DLOCK_DO_DONE);
        if (acked) {
            assert_int_equal(a.rc, DLOCK_OK);
            assert_int_equal(atomic_load(&l->valid_until_us), T0 + 61000 * MS);
        } else {
            assert_int_equal(a.rc, DLOCK_EIO);
            assert_string_equal(dlock_machine_error(m), "extend: WAIT: 0 of 1 replicas acknowledged");
            assert_int_equal(atomic_load(&l->valid_until_us), T0 + 30000 * MS);
        }
        dlock_machine_free(m);
    }
    dlock_abandon(l);
}

/* legacy waits behind its SETNX; its undo deletes only the value it wrote (its release would
 * delete whatever holds the key). */
static void legacy_undoes_an_unreplicated_grant_by_its_value(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_POLL, 30000, 0);
    o.algorithm = DLOCK_LEGACY;
    player p;
    begin(&p, &o);                                     /* wall clock 0: value 30001 */
    expect_send(&p, WAIT_BATCH, "SETNX", "WAIT", NULL);
    answer(&p, T0 + 150 * MS, 2, &ONE, &ZERO);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_release.sha);
    expect_arg(&p, 0, 3, "res");
    expect_arg(&p, 0, 4, "30001");
    answer(&p, T0 + 151 * MS, 1, &ONE);
    expect_done(&p, DLOCK_EBUSY);
    expect_err(&p, "WAIT: 0 of 1");
    finish(&p);
}

/* notify's try behind its BLPOP waits too; unconfirmed, it is undone with the notify release
 * (which passes the signal on) and counts as the try, with the back-off before the next. */
static void notify_undoes_an_unreplicated_try_behind_its_blpop(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_NOTIFY, 30000, -1);
    player p;
    begin(&p, &o);
    answer(&p, T0, 2, &NIL, &ZERO);                    /* held: WAIT's answer is not read */
    expect_send(&p, (1000 + 10 + 1 + DLOCK__BLOCK_SLACK_MS + 50 + DLOCK__BLOCK_SLACK_MS) * MS,
                "BLPOP", "SET", "WAIT", NULL);
    dlock_reply el[2] = {R_STRING("res:signal"), R_STRING("1")};
    dlock_reply signal = R_ARRAY(2, el);
    answer(&p, T0 + 5 * MS, 3, &signal, &OK, &ZERO);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_notify_release.sha);
    answer(&p, T0 + 6 * MS, 1, &ONE);
    assert_int_equal(p.a.what, DLOCK_DO_SEND);          /* the next slice, with the next try */
    assert_string_equal(p.a.commands[0].argv[0], "BLPOP");
    assert_int_equal(dlock_machine_tries(p.m), 3);
    answer(&p, T0 + 16 * MS, 3, &NIL, &OK, &ONE);
    expect_done(&p, DLOCK_OK);
    dlock_abandon(dlock_machine_take_lock(p.m));
    finish(&p);
}

/* fifo's hand-off claim (the extend behind its BLPOP) waits too; unconfirmed, the lock is
 * passed on with the fifo release. */
static void fifo_gives_up_an_unreplicated_hand_off(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_FIFO, 1000, -1);
    player p;
    begin(&p, &o);
    expect_send(&p, WAIT_BATCH, "EVALSHA", "WAIT", NULL);
    dlock_reply queued = R_INT(-1);
    answer(&p, T0, 2, &queued, &ZERO);
    assert_int_equal(p.a.what, DLOCK_DO_SEND);
    assert_int_equal(p.a.ncommands, 3);
    assert_string_equal(p.a.commands[0].argv[0], "BLPOP");
    assert_string_equal(p.a.commands[1].argv[1], dlock__script_extend.sha);
    assert_string_equal(p.a.commands[2].argv[0], "WAIT");
    dlock_reply el[2] = {R_STRING("res:signal:x"), R_STRING("0")};
    dlock_reply signal = R_ARRAY(2, el);
    answer(&p, T0 + 5 * MS, 3, &signal, &ONE, &ZERO);
    expect_send(&p, 1000 * MS, "EVALSHA", NULL);
    expect_arg(&p, 0, 1, dlock__script_fifo_release.sha);
    answer(&p, T0 + 6 * MS, 1, &ONE);
    assert_int_equal(p.a.what, DLOCK_DO_SEND);          /* waits on: the next slice */
    finish(&p);
}

/* redlock: a server whose WAIT falls short has not granted. */
static void redlock_counts_only_replicated_servers(void **state)
{
    dlock_options o = replica_opts(DLOCK_WAIT_POLL, 30000, 0);
    o.algorithm = DLOCK_REDLOCK;
    for (int short_of = 1; short_of <= 2; short_of++) {
        player p;
        begin_on(&p, &o, 3);
        assert_int_equal(p.a.what, DLOCK_DO_SEND);
        assert_int_equal(p.a.ncommands, 6);
        assert_int_equal(p.a.timeout_us, WAIT_BATCH);
        for (int s = 0; s < 3; s++) {
            assert_int_equal(p.a.commands[2 * s].server, s);
            assert_string_equal(p.a.commands[2 * s].argv[0], "SET");
            assert_int_equal(p.a.commands[2 * s + 1].server, s);
            assert_string_equal(p.a.commands[2 * s + 1].argv[0], "WAIT");
        }
        answer(&p, T0 + 10 * MS, 6, &OK, &ZERO, &OK, short_of == 2 ? &ZERO : &ONE, &OK, &ONE);
        if (short_of == 1) {
            expect_done(&p, DLOCK_OK);
            dlock_abandon(dlock_machine_take_lock(p.m));
        } else {
            assert_int_equal(p.a.ncommands, 3);          /* released on all */
            answer(&p, T0 + 11 * MS, 3, &ONE, &ONE, &ONE);
            expect_done(&p, DLOCK_EBUSY);
            expect_err(&p, "1 of 3 servers granted (0 held elsewhere, 2 failed, 2 unreplicated: "
                           "WAIT: 0 of 1 replicas acknowledged)");
        }
        finish(&p);
    }
}

static void bad_options_are_refused_with_a_reason(void **state)
{
    char err[128] = "";
    dlock_options o = opts(DLOCK_WAIT_POLL, -5, -1);
    assert_null(dlock_machine_acquire("res", &o, 1, TOKEN, 1, err, sizeof err));
    assert_non_null(strstr(err, "ttl_ms"));
    o = opts(DLOCK_WAIT_POLL, 1000, -1);
    assert_null(dlock_machine_acquire("res", &o, 2, TOKEN, 1, err, sizeof err));
    assert_non_null(strstr(err, "one server"));
    o.min_replicas = 1;
    o.replica_timeout_ms = 0;  /* WAIT 1 0 would block forever */
    assert_null(dlock_machine_acquire("res", &o, 1, TOKEN, 1, err, sizeof err));
    assert_non_null(strstr(err, "replica_timeout_ms"));
    o.min_replicas = -1;
    assert_null(dlock_machine_acquire("res", &o, 1, TOKEN, 1, err, sizeof err));
    assert_non_null(strstr(err, "min_replicas"));
    dlock_machine_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_free_lock_is_taken_with_one_set),
        cmocka_unit_test(the_command_timeout_is_the_machines),
        cmocka_unit_test(a_lost_reply_is_undone_by_token),
        cmocka_unit_test(a_grant_with_no_lease_left_is_undone_and_retried),
        cmocka_unit_test(the_deadline_cuts_the_wait_and_gets_a_last_try),
        cmocka_unit_test(a_refusal_ends_the_acquire_at_once),
        cmocka_unit_test(a_passing_error_is_retried),
        cmocka_unit_test(a_refusal_after_a_lost_reply_still_undoes_it),
        cmocka_unit_test(a_refused_wait_slice_ends_the_acquire),
        cmocka_unit_test(a_refused_release_is_not_repeated),
        cmocka_unit_test(redlock_ends_only_when_refusals_rule_out_a_quorum),
        cmocka_unit_test(kept_replies_stay_aligned),
        cmocka_unit_test(notify_waits_in_slices),
        cmocka_unit_test(an_interrupt_is_seen_between_slices),
        cmocka_unit_test(an_interrupt_ends_a_backoff_wait),
        cmocka_unit_test(no_wait_is_asked_with_an_interrupt_pending),
        cmocka_unit_test(a_fifo_waiter_leaves_the_queue_when_it_gives_up),
        cmocka_unit_test(noscript_resends_only_the_scripts_as_eval),
        cmocka_unit_test(a_fenced_write_is_a_machine),
        cmocka_unit_test(a_fenced_write_names_the_lock_it_is_made_under),
        cmocka_unit_test(a_fenced_read_is_a_machine),
        cmocka_unit_test(a_fenced_read_resends_its_script_as_eval),
        cmocka_unit_test(a_release_retries_once_on_a_fresh_connection),
        cmocka_unit_test(an_extend_keeps_its_ttl_only_on_success),
        cmocka_unit_test(a_refused_batch_cancels),
        cmocka_unit_test(legacy_reads_the_wall_clock_it_is_given),
        cmocka_unit_test(the_same_seed_waits_the_same),
        cmocka_unit_test(a_grant_replicas_acknowledged_is_held),
        cmocka_unit_test(an_unreplicated_grant_is_undone_and_retried),
        cmocka_unit_test(a_try_once_replicas_do_not_confirm_says_why),
        cmocka_unit_test(unconfirmed_tries_time_out_with_the_reason),
        cmocka_unit_test(an_unreplicated_extend_keeps_the_old_lease),
        cmocka_unit_test(legacy_undoes_an_unreplicated_grant_by_its_value),
        cmocka_unit_test(notify_undoes_an_unreplicated_try_behind_its_blpop),
        cmocka_unit_test(fifo_gives_up_an_unreplicated_hand_off),
        cmocka_unit_test(redlock_counts_only_replicated_servers),
        cmocka_unit_test(bad_options_are_refused_with_a_reason),
    };
    return cmocka_run_group_tests_name("op", tests, NULL, NULL);
}
