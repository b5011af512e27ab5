/* test_renew.c -- the watchdog against real redis-server processes: a renewed lock outlives its
 * ttl many times over, a lock deleted from outside is reported lost, a paused client stops
 * renewing (so its lease runs out), release stops the renewals, and redlock locks renew on a
 * quorum. Three servers; the single-server tests use the first. */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "scripted.h"
#include "fixture.h"

#define NSERVERS 3

/* ---- raw access ---------------------------------------------------------------- */

static bool holds(int i, const char *key, const char *value)
{
    char *v = fx_get(i, key);
    bool same = v && strcmp(v, value) == 0;
    free(v);
    return same;
}

/* ---- clients ------------------------------------------------------------------------ */

static dlock_options renew_opts(int64_t ttl)
{
    dlock_options o;
    dlock_options_init(&o);
    o.ttl_ms = ttl;
    o.wait_timeout_ms = 0;
    o.renew = true;
    return o;
}

typedef struct lost_flag {
    atomic_int calls;
    char key[64];
} lost_flag;

static void on_lost(void *ud, const char *key)
{
    lost_flag *f = ud;
    snprintf(f->key, sizeof f->key, "%s", key);
    atomic_fetch_add(&f->calls, 1);
}

/* Polls the flag to a deadline; the ms it took. */
static int64_t wait_lost(lost_flag *f, int64_t within_ms)
{
    int64_t start = fx_now_ms();
    while (atomic_load(&f->calls) == 0) {
        if (fx_now_ms() - start > within_ms)
            fail_msg("on_lost not called within %lld ms", (long long)within_ms);
        fx_sleep_ms(2);
    }
    return fx_now_ms() - start;
}

/* ---- a renewed lock lives on ---------------------------------------------------------- */

/* Holds a renewed lock for 5 x ttl, checking all along that every server in [0, n) still holds
 * it with our token and a lease no longer than the ttl. */
static void outlives_its_ttl(int n, dlock_algorithm algorithm, const char *key)
{
    dlock_client *c = fx_client(n);
    dlock_options o = renew_opts(300);
    o.algorithm = algorithm;
    lost_flag f = {0};
    o.on_lost = on_lost;
    o.on_lost_ud = &f;
    dlock *l;
    assert_int_equal(dlock_acquire(c, key, &o, &l), DLOCK_OK);
    int64_t start = fx_now_ms();
    int checks = 0;
    while (fx_now_ms() - start < 5 * o.ttl_ms) {
        for (int i = 0; i < n; i++) {
            if (!holds(i, key, l->token))
                fail_msg("server %d lost the lock after %lld ms (ttl 300)", i,
                         (long long)(fx_now_ms() - start));
            assert_in_range(fx_int(i, "PTTL %s", key), 1, 300);
        }
        assert_false(dlock_is_lost(l));
        assert_in_range(dlock_validity_ms(l), 0, 300);
        checks++;
        fx_sleep_ms(20);
    }
    assert_true(checks >= 10);
    assert_int_equal(atomic_load(&f.calls), 0);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(fx_int(i, "EXISTS %s", key), 0);
    assert_int_equal(atomic_load(&f.calls), 0);
    dlock_client_free(c);
}

static void renewed_lock_outlives_five_ttls(void **state)
{
    outlives_its_ttl(1, DLOCK_TOKEN, "rn:long");
}

static void renewed_redlock_outlives_five_ttls(void **state)
{
    outlives_its_ttl(3, DLOCK_REDLOCK, "rn3:long");
}

/* A redlock lock keeps renewing on a quorum with one server killed. */
static void renewed_redlock_survives_one_server_dying(void **state)
{
    dlock_client *c = fx_client(3);
    dlock_options o = renew_opts(300);
    o.algorithm = DLOCK_REDLOCK;
    o.command_timeout_ms = 100;
    lost_flag f = {0};
    o.on_lost = on_lost;
    o.on_lost_ud = &f;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn3:kill", &o, &l), DLOCK_OK);
    assert_int_equal(lb_server_kill(fx_servers[2]), 0);
    int64_t start = fx_now_ms();
    while (fx_now_ms() - start < 5 * o.ttl_ms) {
        assert_true(holds(0, "rn3:kill", l->token));
        assert_true(holds(1, "rn3:kill", l->token));
        assert_false(dlock_is_lost(l));
        fx_sleep_ms(20);
    }
    assert_int_equal(atomic_load(&f.calls), 0);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(fx_int(0, "EXISTS %s", "rn3:kill"), 0);
    dlock_client_free(c);
}

/* With a majority gone the extension fails and, once the lease is over, the lock is lost. */
static void renewed_redlock_lost_with_a_majority_gone(void **state)
{
    dlock_client *c = fx_client(3);
    dlock_options o = renew_opts(300);
    o.algorithm = DLOCK_REDLOCK;
    o.command_timeout_ms = 100;
    lost_flag f = {0};
    o.on_lost = on_lost;
    o.on_lost_ud = &f;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn3:maj", &o, &l), DLOCK_OK);
    assert_int_equal(lb_server_kill(fx_servers[1]), 0);
    assert_int_equal(lb_server_kill(fx_servers[2]), 0);
    int64_t took = wait_lost(&f, 2000);
    assert_in_range(took, 0, 300 + 500);
    assert_true(dlock_is_lost(l));
    assert_string_equal(f.key, "rn3:maj");
    assert_int_equal(dlock_extend(l, 1000), DLOCK_ENOTOWNER);
    /* dlock.h: once lost, release returns DLOCK_ENOTOWNER (whatever the servers answer) */
    int rc = dlock_release(l);
    char why[256];
    snprintf(why, sizeof why, "%s", dlock_client_errstr(c));
    dlock_client_free(c);
    if (rc != DLOCK_ENOTOWNER)
        fail_msg("release of a lost lock: %s (%s), want DLOCK_ENOTOWNER", dlock_strerror(rc), why);
    assert_int_equal(atomic_load(&f.calls), 1);
}

/* ---- losing the lock ------------------------------------------------------------------ */

static void deleted_lock_is_reported_lost(void **state)
{
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    lost_flag f = {0};
    o.on_lost = on_lost;
    o.on_lost_ud = &f;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn:del", &o, &l), DLOCK_OK);
    assert_false(dlock_is_lost(l));
    assert_int_equal(fx_int(0, "DEL %s", "rn:del"), 1);
    /* noticed at the next extension: within a renewal period (ttl/3) and some slack */
    int64_t took = wait_lost(&f, 1000);
    assert_in_range(took, 0, 100 + 300);
    assert_string_equal(f.key, "rn:del");
    assert_true(dlock_is_lost(l));
    assert_int_equal(dlock_extend(l, 1000), DLOCK_ENOTOWNER);
    assert_int_equal(fx_int(0, "EXISTS %s", "rn:del"), 0);  /* the failed extend created nothing */
    /* someone else takes it; our release must leave theirs alone */
    dlock_client *other = fx_client(1);
    dlock_options po = renew_opts(30000);
    po.renew = false;
    dlock *theirs;
    assert_int_equal(dlock_acquire(other, "rn:del", &po, &theirs), DLOCK_OK);
    assert_int_equal(dlock_release(l), DLOCK_ENOTOWNER);
    assert_true(holds(0, "rn:del", theirs->token));
    assert_int_equal(dlock_release(theirs), DLOCK_OK);
    assert_int_equal(atomic_load(&f.calls), 1);  /* told once */
    dlock_client_free(other);
    dlock_client_free(c);
}

/* A lock taken over by another token (an outside SET) is lost too, and the new value stays. */
static void overwritten_lock_is_reported_lost(void **state)
{
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    lost_flag f = {0};
    o.on_lost = on_lost;
    o.on_lost_ud = &f;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn:over", &o, &l), DLOCK_OK);
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    freeReplyObject(redisCommand(r, "SET rn:over intruder PX 60000"));
    redisFree(r);
    wait_lost(&f, 1000);
    assert_true(dlock_is_lost(l));
    assert_int_equal(dlock_release(l), DLOCK_ENOTOWNER);
    assert_true(holds(0, "rn:over", "intruder"));
    assert_in_range(fx_int(0, "PTTL %s", "rn:over"), 50000, 60000);  /* not extended by us */
    dlock_client_free(c);
}

/* ---- a paused client stops renewing ------------------------------------------------------- */

typedef struct pause_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool paused;
    int blocked;
    int calls;
} pause_gate;

static int pause_hook(void *ud, const char *command)
{
    pause_gate *g = ud;
    pthread_mutex_lock(&g->mu);
    g->calls++;
    if (g->paused) {
        g->blocked++;
        pthread_cond_broadcast(&g->cv);
        while (g->paused)
            pthread_cond_wait(&g->cv, &g->mu);
        g->blocked--;
    }
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static void paused_client_stops_renewing(void **state)
{
    pause_gate g = {.paused = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    dlock_client *c = fx_client(1);
    dlock_client_set_hook(c, pause_hook, &g);
    dlock_options o = renew_opts(300);
    lost_flag f = {0};
    o.on_lost = on_lost;
    o.on_lost_ud = &f;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn:pause", &o, &l), DLOCK_OK);

    /* renewing while running: the hook sees the watchdog's commands */
    int64_t start = fx_now_ms();
    for (;;) {
        pthread_mutex_lock(&g.mu);
        int calls = g.calls;
        pthread_mutex_unlock(&g.mu);
        if (calls >= 3)
            break;
        if (fx_now_ms() - start > 2000)
            fail_msg("the hook saw %d commands in 2 s of renewals", calls);
        fx_sleep_ms(5);
    }

    pthread_mutex_lock(&g.mu);
    g.paused = true;
    /* the watchdog's next extension blocks in the hook, within a renewal period */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    while (g.blocked == 0) {
        if (pthread_cond_timedwait(&g.cv, &g.mu, &dl) != 0)
            break;
    }
    int blocked = g.blocked;
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(blocked, 1);
    int64_t paused_at = fx_now_ms();

    /* while it is paused the lease runs out, and another client takes the lock */
    dlock_client *other = fx_client(1);
    dlock_options po = renew_opts(30000);
    po.renew = false;
    po.wait_timeout_ms = 2000;
    dlock *theirs;
    assert_int_equal(dlock_acquire(other, "rn:pause", &po, &theirs), DLOCK_OK);
    assert_in_range(fx_now_ms() - paused_at, 0, 300 + 200);
    assert_true(holds(0, "rn:pause", theirs->token));
    assert_int_equal(atomic_load(&f.calls), 0);  /* the paused watchdog cannot know yet */

    /* resumed, the watchdog finds the lock taken */
    pthread_mutex_lock(&g.mu);
    g.paused = false;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    wait_lost(&f, 1000);
    assert_true(dlock_is_lost(l));
    assert_int_equal(dlock_extend(l, 1000), DLOCK_ENOTOWNER);
    assert_int_equal(dlock_release(l), DLOCK_ENOTOWNER);
    assert_true(holds(0, "rn:pause", theirs->token));
    assert_int_equal(dlock_release(theirs), DLOCK_OK);
    dlock_client_free(other);
    dlock_client_free(c);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
}

/* The hook set while a renewed lock is held (the watchdog already running) reaches the
 * watchdog too: pausing the client then pauses its renewals. */
static void hook_set_while_renewing_reaches_the_watchdog(void **state)
{
    pause_gate g = {.paused = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn:late", &o, &l), DLOCK_OK);
    fx_sleep_ms(150);  /* the workload: the watchdog has extended at least once */
    pthread_mutex_lock(&g.mu);
    g.paused = true;
    pthread_mutex_unlock(&g.mu);
    dlock_client_set_hook(c, pause_hook, &g);

    pthread_mutex_lock(&g.mu);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    while (g.blocked == 0) {
        if (pthread_cond_timedwait(&g.cv, &g.mu, &dl) != 0)
            break;
    }
    int blocked = g.blocked;
    g.paused = false;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(blocked, 1);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    dlock_client_free(c);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
}

/* ---- release stops the renewals ---------------------------------------------------------- */

static void release_stops_renewing(void **state)
{
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    lost_flag f = {0};
    o.on_lost = on_lost;
    o.on_lost_ud = &f;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn:stop", &o, &l), DLOCK_OK);
    dlock_stats before, after, later;
    dlock_client_stats(c, &before, NULL);
    fx_sleep_ms(1000);  /* the workload: hold the lock for a second */
    dlock_client_stats(c, &after, NULL);
    /* about one extension per 100 ms while held */
    assert_in_range(after.commands - before.commands, 5, 15);
    assert_true(holds(0, "rn:stop", l->token));

    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(fx_int(0, "EXISTS %s", "rn:stop"), 0);
    dlock_client_stats(c, &after, NULL);
    fx_sleep_ms(700);  /* more than two renewal periods */
    dlock_client_stats(c, &later, NULL);
    assert_int_equal(later.commands, after.commands);
    assert_int_equal(fx_int(0, "EXISTS %s", "rn:stop"), 0);
    assert_int_equal(atomic_load(&f.calls), 0);  /* a release is not a loss */

    /* the same client renews its next lock again */
    assert_int_equal(dlock_acquire(c, "rn:stop", &o, &l), DLOCK_OK);
    fx_sleep_ms(600);
    assert_true(holds(0, "rn:stop", l->token));
    assert_int_equal(dlock_release(l), DLOCK_OK);
    dlock_client_free(c);
}

/* dlock_abandon stops the renewals too: the lease then runs out. */
static void abandon_stops_renewing(void **state)
{
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn:abandon", &o, &l), DLOCK_OK);
    dlock_abandon(l);
    int64_t start = fx_now_ms();
    while (fx_int(0, "EXISTS %s", "rn:abandon") == 1) {
        if (fx_now_ms() - start > 1500)
            fail_msg("an abandoned lock was still renewed after 1.5 s (ttl 300 ms)");
        fx_sleep_ms(5);
    }
    assert_in_range(fx_now_ms() - start, 0, 300 + 200);
    dlock_client_free(c);
}

/* Several renewed locks of one client, freed with the client still holding one. */
static void several_locks_and_client_free(void **state)
{
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    dlock *a, *b;
    assert_int_equal(dlock_acquire(c, "rn:a", &o, &a), DLOCK_OK);
    o.ttl_ms = 600;
    assert_int_equal(dlock_acquire(c, "rn:b", &o, &b), DLOCK_OK);
    fx_sleep_ms(1500);  /* the workload */
    assert_true(holds(0, "rn:a", a->token));
    assert_true(holds(0, "rn:b", b->token));
    assert_int_equal(dlock_release(a), DLOCK_OK);
    fx_sleep_ms(700);
    assert_true(holds(0, "rn:b", b->token));
    assert_int_equal(dlock_release(b), DLOCK_OK);
    dlock_client_free(c);
}

/* ---- statistics ------------------------------------------------------------------------ */

static void stats_count_the_watchdog(void **state)
{
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    dlock *l;
    assert_int_equal(dlock_acquire(c, "rn:stats", &o, &l), DLOCK_OK);
    dlock_stats t0, t1, last;
    dlock_client_stats(c, &t0, &last);
    assert_int_equal(t0.commands, 1);
    assert_int_equal(last.commands, 1);
    int64_t start = fx_now_ms();
    do {
        dlock_client_stats(c, &t1, NULL);
        if (fx_now_ms() - start > 2000)
            fail_msg("total.commands stayed at %llu while renewing", (unsigned long long)t1.commands);
        fx_sleep_ms(5);
    } while (t1.commands < t0.commands + 3);
    assert_in_range(fx_now_ms() - start, 200, 2000);  /* three extensions take about 300 ms */
    assert_int_equal(t1.acquires, 1);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    dlock_client_free(c);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

#define T(f) cmocka_unit_test_setup(f, fx_reset)

/* The owner's extend and the watchdog's renewals do not undo each other: extending a renewed
 * lock to "never expires" keeps it so, and a longer ttl is what the watchdog renews from then. */
static void extend_of_a_renewed_lock_sticks(void **state)
{
    dlock_client *c = fx_client(1);
    dlock_options o = renew_opts(300);
    dlock *l;
    assert_int_equal(dlock_acquire(c, "re:ext", &o, &l), DLOCK_OK);
    fx_sleep_ms(150);  /* the workload: hold while the watchdog is due */
    assert_int_equal(dlock_extend(l, 0), DLOCK_OK);
    fx_sleep_ms(600);  /* two renewal periods of the old ttl */
    assert_int_equal(fx_int(0, "PTTL %s", "re:ext"), -1);
    assert_int_equal(dlock_validity_ms(l), -1);
    assert_int_equal(dlock_extend(l, 2000), DLOCK_OK);
    fx_sleep_ms(800);  /* the watchdog renews a 2 s lease every 667 ms */
    assert_in_range(fx_int(0, "PTTL %s", "re:ext"), 1, 2000);
    assert_true(dlock_validity_ms(l) > 1000);
    assert_false(dlock_is_lost(l));
    assert_int_equal(dlock_release(l), DLOCK_OK);
    dlock_client_free(c);
}

/* The owner releases its lost lock while on_lost is still running: the release waits for the
 * callback, which may use the key it was given until it returns (ASan would see otherwise). */
typedef struct slow_lost {
    atomic_int entered;
    char key[64];
} slow_lost;

static void slow_on_lost(void *ud, const char *key)
{
    slow_lost *s = ud;
    atomic_store(&s->entered, 1);
    fx_sleep_ms(200);  /* the workload of a slow callback */
    snprintf(s->key, sizeof s->key, "%s", key);
}

static void release_waits_for_on_lost(void **state)
{
    dlock_client *c = fx_client(1);
    slow_lost s = {0};
    dlock_options o = renew_opts(300);
    o.on_lost = slow_on_lost;
    o.on_lost_ud = &s;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "re:slow", &o, &l), DLOCK_OK);
    redisContext *r = fx_raw(0);
    freeReplyObject(redisCommand(r, "DEL re:slow"));
    redisFree(r);
    int64_t deadline = fx_now_ms() + 2000;
    while (!atomic_load(&s.entered)) {
        assert_true(fx_now_ms() < deadline);
        fx_sleep_ms(5);
    }
    assert_int_equal(dlock_release(l), DLOCK_ENOTOWNER);
    assert_string_equal(s.key, "re:slow");  /* the callback finished before release returned */
    dlock_client_free(c);
}

static int start_servers(void **state)
{
    return fx_start(NSERVERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(extend_of_a_renewed_lock_sticks),
        T(release_waits_for_on_lost),
        T(renewed_lock_outlives_five_ttls),
        T(renewed_redlock_outlives_five_ttls),
        T(renewed_redlock_survives_one_server_dying),
        T(renewed_redlock_lost_with_a_majority_gone),
        T(deleted_lock_is_reported_lost),
        T(overwritten_lock_is_reported_lost),
        T(paused_client_stops_renewing),
        T(hook_set_while_renewing_reaches_the_watchdog),
        T(release_stops_renewing),
        T(abandon_stops_renewing),
        T(several_locks_and_client_free),
        T(stats_count_the_watchdog),
    };
    return cmocka_run_group_tests_name("renew", tests, start_servers, fx_stop);
}
