/* test_redlock.c -- the redlock algorithm against five real redis-server processes (the 3-server
 * tests use the first three): quorum, validity, extension, the undo of a failed attempt, and
 * servers that are killed or paused (SIGSTOP) under the lock. */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "scripted.h"
#include "fixture.h"

#define NSERVERS 5
#define CMD_TIMEOUT_MS 300

/* ---- raw access to one server --------------------------------------------- */

static void raw_set(int i, const char *key, const char *value)
{
    redisContext *r = fx_raw(i);
    assert_non_null(r);
    redisReply *v = redisCommand(r, "SET %s %s PX 60000", key, value);
    assert_non_null(v);
    assert_int_equal(v->type, DLOCK_REPLY_STATUS);
    freeReplyObject(v);
    redisFree(r);
}

/* On how many of servers [0, n) key holds exactly value. */
static int count_holding(int n, const char *key, const char *value)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        char *v = fx_get(i, key);
        k += v && strcmp(v, value) == 0;
        free(v);
    }
    return k;
}

/* On how many of servers [0, n) key exists at all. */
static int count_existing(int n, const char *key)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        char *v = fx_get(i, key);
        k += v != NULL;
        free(v);
    }
    return k;
}

/* ---- clients and options ---------------------------------------------------- */

static dlock_options redlock_opts(int64_t ttl, int64_t wait)
{
    dlock_options o;
    dlock_options_init(&o);
    o.algorithm = DLOCK_REDLOCK;
    o.ttl_ms = ttl;
    o.wait_timeout_ms = wait;
    o.command_timeout_ms = CMD_TIMEOUT_MS;
    o.backoff = (dlock_backoff){.policy = DLOCK_BACKOFF_FULL_JITTER, .base_ms = 1, .cap_ms = 20};
    return o;
}

/* Redlock's drift allowance, as SPEC section 4 defines it. */
static int64_t drift_ms(const dlock_options *o)
{
    return (int64_t)((double)o->ttl_ms * o->drift_factor) + 2;
}

static void kill_server(int i)
{
    assert_int_equal(lb_server_kill(fx_servers[i]), 0);
    assert_false(lb_server_is_running(fx_servers[i]));
}

/* ---- all servers up ----------------------------------------------------------- */

static void acquire_release_on(int n, const char *key)
{
    dlock_client *c = fx_client(n);
    dlock_options o = redlock_opts(10000, 0);
    dlock *l = NULL;
    int64_t t0 = fx_now_ms();
    assert_int_equal(dlock_acquire(c, key, &o, &l), DLOCK_OK);
    int64_t took = fx_now_ms() - t0;
    assert_non_null(l);
    assert_int_equal(dlock_fencing_token(l), 0);
    assert_string_equal(dlock_key(l), key);

    /* Every server granted it (all are up), with our token and a lease of about ttl. */
    assert_int_equal(count_holding(n, key, l->token), n);
    for (int i = 0; i < n; i++)
        assert_in_range(fx_int(i, "PTTL %s", key), 8000, 10000);

    /* validity = ttl - elapsed - drift: never more than ttl - drift, and the acquire was fast. */
    int64_t v = dlock_validity_ms(l);
    assert_true(v <= o.ttl_ms - drift_ms(&o));
    assert_true(v >= o.ttl_ms - drift_ms(&o) - took - 500);

    /* A second client cannot take it while it is held. */
    dlock_client *other = fx_client(n);
    dlock *l2 = NULL;
    assert_int_equal(dlock_acquire(other, key, &o, &l2), DLOCK_EBUSY);
    assert_null(l2);
    assert_int_equal(count_holding(n, key, l->token), n);  /* the loser's undo spared ours */

    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(count_existing(n, key), 0);
    assert_int_equal(dlock_acquire(other, key, &o, &l2), DLOCK_OK);
    assert_int_equal(dlock_release(l2), DLOCK_OK);
    dlock_client_free(other);
    dlock_client_free(c);
}

static void acquire_release_3(void **state)
{
    acquire_release_on(3, "rl3:basic");
}

static void acquire_release_5(void **state)
{
    acquire_release_on(5, "rl5:basic");
}

/* The minimum lease is ttl minus drift minus the time the acquire took, also with a large
 * drift factor. */
static void validity_accounts_for_drift(void **state)
{
    dlock_client *c = fx_client(3);
    dlock_options o = redlock_opts(2000, 0);
    o.drift_factor = 0.25;  /* drift = 502 ms */
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rl3:drift", &o, &l), DLOCK_OK);
    int64_t v = dlock_validity_ms(l);
    assert_in_range(v, 2000 - 502 - 300, 2000 - 502);
    assert_int_equal(dlock_release(l), DLOCK_OK);

    /* A lease shorter than the drift can never be valid: every try is undone. */
    o.ttl_ms = 2;
    o.drift_factor = 0.5;
    assert_int_equal(dlock_acquire(c, "rl3:drift2", &o, &l), DLOCK_EBUSY);
    assert_int_equal(count_existing(3, "rl3:drift2"), 0);
    dlock_client_free(c);
}

/* ttl 0: the keys never expire and the validity is unbounded (-1). */
static void never_expiring_redlock(void **state)
{
    dlock_client *c = fx_client(3);
    dlock_options o = redlock_opts(0, 0);
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rl3:forever", &o, &l), DLOCK_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx_int(i, "PTTL %s", "rl3:forever"), -1);
    assert_int_equal(dlock_validity_ms(l), -1);
    assert_int_equal(dlock_extend(l, 5000), DLOCK_OK);
    for (int i = 0; i < 3; i++)
        assert_in_range(fx_int(i, "PTTL %s", "rl3:forever"), 4000, 5000);
    assert_in_range(dlock_validity_ms(l), 4000, 5000 - 52);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(count_existing(3, "rl3:forever"), 0);
    dlock_client_free(c);
}

/* ---- servers killed -------------------------------------------------------------- */

static void taken_with_servers_killed(int n, int nkilled, const char *key)
{
    dlock_client *c = fx_client(n);
    /* The client connected while all were up; kill the last nkilled under its feet. */
    for (int i = n - nkilled; i < n; i++)
        kill_server(i);
    dlock_options o = redlock_opts(10000, 2000);
    for (int round = 0; round < 3; round++) {  /* the dead connections are noticed and retried */
        dlock *l = NULL;
        int64_t t0 = fx_now_ms();
        int rc = dlock_acquire(c, key, &o, &l);
        if (rc != DLOCK_OK)
            fail_msg("round %d: %s: %s", round, dlock_strerror(rc), dlock_client_errstr(c));
        assert_true(fx_now_ms() - t0 < CMD_TIMEOUT_MS + 500);
        assert_int_equal(count_holding(n - nkilled, key, l->token), n - nkilled);
        assert_true(dlock_validity_ms(l) <= o.ttl_ms - drift_ms(&o));
        assert_int_equal(dlock_extend(l, 20000), DLOCK_OK);
        assert_in_range(fx_int(0, "PTTL %s", key), 15000, 20000);
        assert_int_equal(dlock_release(l), DLOCK_OK);
        assert_int_equal(count_existing(n - nkilled, key), 0);
    }
    dlock_client_free(c);

    /* A client created while they are down also works. */
    c = fx_client(n);
    dlock *l = NULL;
    assert_int_equal(dlock_acquire(c, key, &o, &l), DLOCK_OK);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    dlock_client_free(c);
}

static void three_one_killed(void **state)
{
    taken_with_servers_killed(3, 1, "rl3:kill1");
}

static void five_one_killed(void **state)
{
    taken_with_servers_killed(5, 1, "rl5:kill1");
}

static void five_two_killed(void **state)
{
    taken_with_servers_killed(5, 2, "rl5:kill2");
}

typedef struct timed_try {
    dlock_client *c;
    const char *key;
    int64_t wait_ms;
    int rc;
    int64_t took_ms;
    char err[256];
} timed_try;

static void *try_thread(void *arg)
{
    timed_try *t = arg;
    dlock_options o = redlock_opts(10000, t->wait_ms);
    dlock *l = NULL;
    int64_t t0 = fx_now_ms();
    t->rc = dlock_acquire(t->c, t->key, &o, &l);
    t->took_ms = fx_now_ms() - t0;
    snprintf(t->err, sizeof t->err, "%s", dlock_client_errstr(t->c));
    if (t->rc == DLOCK_OK)
        dlock_release(l);
    return NULL;
}

/* With a majority down nobody can hold the lock: two clients both time out after about their
 * wait, and the one server left holds no key afterwards (every attempt was undone). */
static void majority_killed_times_out(int n, const char *key)
{
    int nkilled = n / 2 + 1;
    dlock_client *a = fx_client(n), *b = fx_client(n);
    for (int i = 0; i < nkilled; i++)
        kill_server(i);
    timed_try ta = {.c = a, .key = key, .wait_ms = 300, .rc = 99};
    timed_try tb = {.c = b, .key = key, .wait_ms = 300, .rc = 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, try_thread, &tb), 0);
    try_thread(&ta);
    pthread_join(t, NULL);
    for (timed_try *x = &ta; x; x = x == &ta ? &tb : NULL) {
        if (x->rc != DLOCK_ETIMEDOUT)
            fail_msg("majority down: %s (%s)", dlock_strerror(x->rc), x->err);
        assert_in_range(x->took_ms, 300, 300 + CMD_TIMEOUT_MS + 500);
        assert_true(strlen(x->err) > 0);
    }
    assert_int_equal(count_existing(n, key), 0);

    /* try-once also fails, and leaves nothing on the living servers */
    dlock_options o = redlock_opts(10000, 0);
    dlock *l = NULL;
    int rc = dlock_acquire(a, key, &o, &l);
    assert_int_not_equal(rc, DLOCK_OK);
    assert_null(l);
    assert_int_equal(count_existing(n, key), 0);
    dlock_client_free(a);
    dlock_client_free(b);
}

static void three_majority_killed(void **state)
{
    majority_killed_times_out(3, "rl3:kill2");
}

static void five_majority_killed(void **state)
{
    majority_killed_times_out(5, "rl5:kill3");
}

/* ---- mutual exclusion under contention -------------------------------------------- */

#define CONTENDERS 4
#define ROUNDS 15

typedef struct contention {
    int n;
    const char *key;
    const char *counter;
    atomic_int inside;
    atomic_int overlaps;
    atomic_int failures;
    atomic_int done;
    char err[256];
} contention;

static void *contend(void *arg)
{
    contention *k = arg;
    char errbuf[256];
    dlock_client *c = dlock_client_new(fx_urls, k->n, errbuf, sizeof errbuf);
    redisContext *r = fx_raw(0);
    if (!c || !r) {
        atomic_fetch_add(&k->failures, ROUNDS);
        dlock_client_free(c);
        if (r)
            redisFree(r);
        return NULL;
    }
    dlock_options o = redlock_opts(10000, 20000);
    for (int i = 0; i < ROUNDS; i++) {
        dlock *l = NULL;
        int rc = dlock_acquire(c, k->key, &o, &l);
        if (rc != DLOCK_OK) {
            snprintf(k->err, sizeof k->err, "%s: %s", dlock_strerror(rc), dlock_client_errstr(c));
            atomic_fetch_add(&k->failures, 1);
            continue;
        }
        if (atomic_fetch_add(&k->inside, 1) != 0)
            atomic_fetch_add(&k->overlaps, 1);
        redisReply *v = redisCommand(r, "GET %s", k->counter);
        long long x = v && v->type == DLOCK_REPLY_STRING ? atoll(v->str) : 0;
        freeReplyObject(v);
        freeReplyObject(redisCommand(r, "SET %s %lld", k->counter, x + 1));
        atomic_fetch_sub(&k->inside, 1);
        if (dlock_release(l) != DLOCK_OK)
            atomic_fetch_add(&k->failures, 1);
        else
            atomic_fetch_add(&k->done, 1);
    }
    redisFree(r);
    dlock_client_free(c);
    return NULL;
}

static void contention_run(int n, int nkilled, const char *key, const char *counter)
{
    contention k = {.n = n, .key = key, .counter = counter};
    for (int i = n - nkilled; i < n; i++)
        kill_server(i);
    pthread_t t[CONTENDERS];
    for (int i = 0; i < CONTENDERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, contend, &k), 0);
    for (int i = 0; i < CONTENDERS; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&k.failures) != 0)
        fail_msg("%d failed acquisitions or releases, last: %s", atomic_load(&k.failures), k.err);
    assert_int_equal(atomic_load(&k.overlaps), 0);
    assert_int_equal(atomic_load(&k.done), CONTENDERS * ROUNDS);
    char *v = fx_get(0, counter);
    assert_non_null(v);
    assert_int_equal(atoll(v), CONTENDERS * ROUNDS);
    free(v);
    assert_int_equal(count_existing(n - nkilled, key), 0);
}

static void three_contention(void **state)
{
    contention_run(3, 0, "rl3:cont", "rl3:cont:counter");
}

static void three_contention_one_killed(void **state)
{
    contention_run(3, 1, "rl3:contk", "rl3:contk:counter");
}

/* ---- paused servers ------------------------------------------------------------------ */

/* A stopped server accepts connections (the kernel does) but never answers: each operation
 * waits for it one command timeout, all servers against one deadline, and never hangs. */
static void one_paused_costs_one_timeout(void **state)
{
    dlock_client *c = fx_client(3);
    assert_int_equal(lb_server_pause(fx_servers[2]), 0);
    dlock_options o = redlock_opts(5000, 0);
    for (int round = 0; round < 2; round++) {  /* the second round reconnects to the paused one */
        dlock *l = NULL;
        int64_t t0 = fx_now_ms();
        int rc = dlock_acquire(c, "rl3:pause1", &o, &l);
        int64_t took = fx_now_ms() - t0;
        if (rc != DLOCK_OK)
            fail_msg("round %d: %s: %s", round, dlock_strerror(rc), dlock_client_errstr(c));
        assert_in_range(took, 0, CMD_TIMEOUT_MS + 400);
        int64_t v = dlock_validity_ms(l);
        assert_true(v <= o.ttl_ms - drift_ms(&o) - took + 5);
        assert_int_equal(count_holding(2, "rl3:pause1", l->token), 2);
        t0 = fx_now_ms();
        assert_int_equal(dlock_release(l), DLOCK_OK);
        assert_in_range(fx_now_ms() - t0, 0, CMD_TIMEOUT_MS + 400);
        assert_int_equal(count_existing(2, "rl3:pause1"), 0);
    }
    dlock_client_free(c);
}

/* With a majority stopped a try fails; it may wait for the stopped servers twice (the SETs,
 * then the undo sent to every server), never more. */
static void majority_paused_fails_in_bounded_time(void **state)
{
    dlock_client *c = fx_client(3);
    assert_int_equal(lb_server_pause(fx_servers[1]), 0);
    assert_int_equal(lb_server_pause(fx_servers[2]), 0);
    dlock_options o = redlock_opts(5000, 0);
    dlock *l = NULL;
    int64_t t0 = fx_now_ms();
    int rc = dlock_acquire(c, "rl3:pause2", &o, &l);
    int64_t took = fx_now_ms() - t0;
    assert_int_not_equal(rc, DLOCK_OK);
    assert_null(l);
    assert_in_range(took, CMD_TIMEOUT_MS - 50, 2 * CMD_TIMEOUT_MS + 500);
    assert_int_equal(count_existing(1, "rl3:pause2"), 0);  /* undone where it was granted */

    o.wait_timeout_ms = 300;
    t0 = fx_now_ms();
    rc = dlock_acquire(c, "rl3:pause2", &o, &l);
    took = fx_now_ms() - t0;
    if (rc != DLOCK_ETIMEDOUT)
        fail_msg("majority paused: %s: %s", dlock_strerror(rc), dlock_client_errstr(c));
    /* the wait ends at the first try that finishes after the deadline */
    assert_in_range(took, 300, 300 + 2 * (2 * CMD_TIMEOUT_MS) + 500);
    assert_int_equal(count_existing(1, "rl3:pause2"), 0);
    dlock_client_free(c);
}

/* ---- extend ---------------------------------------------------------------------------- */

static void extend_needs_a_quorum(void **state)
{
    dlock_client *c = fx_client(3);
    dlock_options o = redlock_opts(2000, 0);
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rl3:ext", &o, &l), DLOCK_OK);
    assert_int_equal(dlock_extend(l, 30000), DLOCK_OK);
    for (int i = 0; i < 3; i++)
        assert_in_range(fx_int(i, "PTTL %s", "rl3:ext"), 25000, 30000);
    assert_in_range(dlock_validity_ms(l), 30000 - 302 - 500, 30000 - 302);

    kill_server(2);  /* one down: still a quorum */
    assert_int_equal(dlock_extend(l, 40000), DLOCK_OK);
    assert_in_range(fx_int(0, "PTTL %s", "rl3:ext"), 35000, 40000);
    assert_in_range(dlock_validity_ms(l), 40000 - 402 - 500, 40000 - 402);

    kill_server(1);  /* a majority down: the extension cannot count */
    int64_t t0 = fx_now_ms();
    int rc = dlock_extend(l, 50000);
    assert_int_not_equal(rc, DLOCK_OK);
    assert_true(fx_now_ms() - t0 < CMD_TIMEOUT_MS + 500);
    assert_true(strlen(dlock_client_errstr(c)) > 0);
    /* the surviving server's lease may have moved, but the lock is not reported as extended */
    assert_true(dlock_validity_ms(l) <= 40000);
    dlock_abandon(l);
    dlock_client_free(c);
}

/* An extension with a quorum holding someone else's token fails as not-owner. */
static void extend_of_a_lost_lock_is_not_owner(void **state)
{
    dlock_client *c = fx_client(3);
    dlock_options o = redlock_opts(10000, 0);
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rl3:extlost", &o, &l), DLOCK_OK);
    raw_set(0, "rl3:extlost", "someone-else");
    raw_set(1, "rl3:extlost", "someone-else");
    assert_int_equal(dlock_extend(l, 20000), DLOCK_ENOTOWNER);
    assert_int_equal(dlock_release(l), DLOCK_ENOTOWNER);
    /* the release deleted only its own key */
    assert_int_equal(count_holding(3, "rl3:extlost", "someone-else"), 2);
    assert_int_equal(count_existing(3, "rl3:extlost"), 2);
    dlock_client_free(c);
}

/* ---- options ----------------------------------------------------------------------------- */

static void fencing_is_refused(void **state)
{
    dlock_client *c = fx_client(3);
    dlock_options o = redlock_opts(10000, 0);
    o.fencing = true;
    dlock *l = (dlock *)1;
    assert_int_equal(dlock_acquire(c, "rl3:fence", &o, &l), DLOCK_EINVAL);
    assert_null(l);
    const char *why = dlock_client_errstr(c);
    assert_non_null(why);
    assert_non_null(strstr(why, "fencing"));
    assert_non_null(strstr(why, "redlock"));
    assert_int_equal(count_existing(3, "rl3:fence"), 0);
    assert_int_equal(count_existing(3, "rl3:fence:fence"), 0);
    dlock_client_free(c);

    /* an even number of servers is refused too */
    c = fx_client(4);
    o.fencing = false;
    assert_int_equal(dlock_acquire(c, "rl4:even", &o, &l), DLOCK_EINVAL);
    assert_true(strlen(dlock_client_errstr(c)) > 0);
    dlock_client_free(c);
}

/* ---- the undo of a failed attempt ----------------------------------------------------------- */

static void foreign_majority_is_busy_and_undone(void **state)
{
    raw_set(0, "rl3:foreign", "foreign");
    raw_set(1, "rl3:foreign", "foreign");
    dlock_client *c = fx_client(3);
    dlock_options o = redlock_opts(10000, 0);
    dlock *l = NULL;
    assert_int_equal(dlock_acquire(c, "rl3:foreign", &o, &l), DLOCK_EBUSY);
    assert_null(l);
    char *v = fx_get(2, "rl3:foreign");
    if (v)
        fail_msg("our SET on the third server was not undone (it holds %s)", v);
    assert_int_equal(count_holding(3, "rl3:foreign", "foreign"), 2);

    /* the same with waiting: every try is undone, the foreign holders stay */
    o.wait_timeout_ms = 200;
    assert_int_equal(dlock_acquire(c, "rl3:foreign", &o, &l), DLOCK_ETIMEDOUT);
    assert_null(fx_get(2, "rl3:foreign"));
    assert_int_equal(count_holding(3, "rl3:foreign", "foreign"), 2);
    dlock_client_free(c);
}

static void five_foreign_majority_is_undone(void **state)
{
    for (int i = 0; i < 3; i++)
        raw_set(i * 2, "rl5:foreign", "foreign");  /* servers 0, 2, 4 */
    dlock_client *c = fx_client(5);
    dlock_options o = redlock_opts(10000, 0);
    dlock *l = NULL;
    assert_int_equal(dlock_acquire(c, "rl5:foreign", &o, &l), DLOCK_EBUSY);
    assert_null(l);
    assert_int_equal(count_existing(5, "rl5:foreign"), 3);
    assert_int_equal(count_holding(5, "rl5:foreign", "foreign"), 3);
    dlock_client_free(c);
}

/* A minority holding another value does not stop the quorum. */
static void foreign_minority_still_acquires(void **state)
{
    raw_set(0, "rl3:minor", "foreign");
    dlock_client *c = fx_client(3);
    dlock_options o = redlock_opts(10000, 0);
    dlock *l = NULL;
    assert_int_equal(dlock_acquire(c, "rl3:minor", &o, &l), DLOCK_OK);
    assert_int_equal(count_holding(3, "rl3:minor", l->token), 2);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(count_holding(3, "rl3:minor", "foreign"), 1);  /* spared */
    assert_int_equal(count_existing(3, "rl3:minor"), 1);
    dlock_client_free(c);
}

/* ---- fixtures --------------------------------------------------------------------------------- */

#define T(f) cmocka_unit_test_setup(f, fx_reset)

static int start_servers(void **state)
{
    return fx_start(NSERVERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(acquire_release_3),
        T(acquire_release_5),
        T(validity_accounts_for_drift),
        T(never_expiring_redlock),
        T(three_one_killed),
        T(five_one_killed),
        T(five_two_killed),
        T(three_majority_killed),
        T(five_majority_killed),
        T(three_contention),
        T(three_contention_one_killed),
        T(one_paused_costs_one_timeout),
        T(majority_paused_fails_in_bounded_time),
        T(extend_needs_a_quorum),
        T(extend_of_a_lost_lock_is_not_owner),
        T(fencing_is_refused),
        T(foreign_majority_is_busy_and_undone),
        T(five_foreign_majority_is_undone),
        T(foreign_minority_still_acquires),
    };
    return cmocka_run_group_tests_name("redlock", tests, start_servers, fx_stop);
}
