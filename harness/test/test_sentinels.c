/* test_sentinels.c -- managed sentinels and sentinel:// clients against real processes: a
 * primary, one replica (REPLICAOF) and three `redis-server --sentinel`. Many clients share one
 * discovery (a bounded number of SENTINEL queries), and a killed primary leads to a real
 * promotion that blocking and loop clients follow. The last test wires sentinels to a managed
 * group (replicas.h) as a run does, and follows a promotion and the old primary's return. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlock.h"
#include "monotonic.h"
#include "replicas.h"
#include "sentinel.h"
#include "sentinels.h"
#include "servers.h"

#define TEST_TIME_LIMIT_S 150
#define THREADS 50
#define LOOP_CLIENTS 200

static struct {
    lb_server *primary, *replica;
    lb_sentinels *sentinels;
    const char *url;
} w;

static int64_t now_ms(void)
{
    return dlock__mono_us() / 1000;
}

static redisContext *raw(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
        return c;
    redisFree(c);
    return NULL;
}

/* Points the replica at the primary and polls until its link is up. The primary sends its
 * first sync at once (by default it waits 5 s for more replicas to share it). */
static int make_replica(lb_server *replica, int primary_port, char *err, size_t errlen)
{
    redisContext *p = raw(primary_port);
    redisReply *r = p ? redisCommand(p, "CONFIG SET repl-diskless-sync-delay 0") : NULL;
    freeReplyObject(r);
    redisFree(p);
    redisContext *c = raw(lb_server_port(replica));
    r = c ? redisCommand(c, "REPLICAOF 127.0.0.1 %d", primary_port) : NULL;
    freeReplyObject(r);
    for (int64_t deadline = now_ms() + 10000; c && now_ms() < deadline;) {
        r = redisCommand(c, "INFO replication");
        bool up = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up");
        freeReplyObject(r);
        if (up) {
            redisFree(c);
            return 0;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(err, errlen, "replica's link to the primary not up within 10 s");
    redisFree(c);
    return -1;
}

static int group_setup(void **state)
{
    char err[512];
    int port;
    if (!(w.primary = lb_server_start(LB_PERSIST_NONE, err, sizeof err)) ||
        !(w.replica = lb_server_start(LB_PERSIST_NONE, err, sizeof err)) ||
        make_replica(w.replica, port = lb_server_port(w.primary), err, sizeof err) < 0 ||
        !(w.sentinels = lb_sentinels_start(3, &port, 1, 1, err, sizeof err))) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    w.url = lb_sentinels_url(w.sentinels, 0);
    return 0;
}

static int group_teardown(void **state)
{
    lb_sentinels_stop(w.sentinels);
    lb_server_stop(w.replica);
    lb_server_stop(w.primary);
    return 0;
}

static void the_sentinels_are_ready(void **state)
{
    assert_int_equal(lb_sentinels_count(w.sentinels), 3);
    assert_int_equal(lb_sentinels_primary_port(w.sentinels, 0), lb_server_port(w.primary));
    char want[64];
    snprintf(want, sizeof want, "/lockbench-0");
    assert_non_null(strstr(w.url, want));
    assert_true(strncmp(w.url, "sentinel://127.0.0.1:", 21) == 0);
}

/* ---- many threads, one discovery ----------------------------------------------------- */

typedef struct {
    pthread_barrier_t *start, *done;
    int i, rc;
    char err[256];
} worker;

static void *work(void *arg)
{
    worker *k = arg;
    char key[32];
    snprintf(key, sizeof key, "threads:%d", k->i);
    pthread_barrier_wait(k->start);
    dlock_client *c = dlock_client_new(&w.url, 1, k->err, sizeof k->err);
    dlock_options o;
    dlock_options_init(&o);
    o.ttl_ms = 10000;
    o.wait_timeout_ms = 5000;
    dlock *l = NULL;
    k->rc = c ? dlock_acquire(c, key, &o, &l) : -100;
    if (k->rc == DLOCK_OK)
        k->rc = dlock_release(l);
    if (c && k->rc != DLOCK_OK)
        snprintf(k->err, sizeof k->err, "%s", dlock_client_errstr(c));
    pthread_barrier_wait(k->done);  /* every client alive until all have connected */
    dlock_client_free(c);
    return NULL;
}

/* 50 threads start at once with nothing cached: one of them asks, the others wait for its
 * answer. */
static void threads_share_one_query(void **state)
{
    pthread_t t[THREADS];
    worker k[THREADS];
    pthread_barrier_t start, done;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_barrier_init(&done, NULL, THREADS);
    uint64_t before = dlock__sentinel_queries();
    for (int i = 0; i < THREADS; i++) {
        k[i] = (worker){.start = &start, .done = &done, .i = i};
        assert_int_equal(pthread_create(&t[i], NULL, work, &k[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        if (k[i].rc != DLOCK_OK)
            fail_msg("thread %d: rc %d: %s", i, k[i].rc, k[i].err);
    uint64_t queries = dlock__sentinel_queries() - before;
    printf("# %d threads: %llu sentinel queries\n", THREADS, (unsigned long long)queries);
    assert_int_equal(queries, 1);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&done);
}

/* ---- a real failover ------------------------------------------------------------------- */

typedef struct {
    bool done;
    int rc;
    dlock *l;
} slot;

static void on_acquired(void *ud, int rc, dlock *l)
{
    slot *s = ud;
    s->rc = rc;
    s->l = rc == DLOCK_OK ? l : NULL;
    s->done = true;
}

static void on_released(void *ud, int rc)
{
    slot *s = ud;
    s->rc = rc;
    s->l = NULL;
    s->done = true;
}

/* Runs the loop until every slot is done, or the deadline: whether they all are. */
static bool run_until_done(dlock_loop *lp, slot *s, int n, int64_t timeout_ms)
{
    for (int64_t deadline = now_ms() + timeout_ms;;) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += !s[i].done;
        if (left == 0)
            return true;
        if (now_ms() >= deadline)
            return false;
        dlock_loop_run(lp, 50);
    }
}

static void acquire_all(dlock_loop *lp, dlock_client **cs, slot *s, const dlock_options *o,
                        int64_t timeout_ms)
{
    for (int i = 0; i < LOOP_CLIENTS; i++) {
        char key[32];
        snprintf(key, sizeof key, "fo:%d", i);
        s[i] = (slot){0};
        assert_int_equal(dlock_acquire_async(cs[i], key, o, on_acquired, &s[i]), DLOCK_OK);
    }
    assert_true(run_until_done(lp, s, LOOP_CLIENTS, timeout_ms));
    for (int i = 0; i < LOOP_CLIENTS; i++)
        if (s[i].rc != DLOCK_OK)
            fail_msg("loop client %d: rc %d: %s", i, s[i].rc, dlock_client_errstr(cs[i]));
}

static void release_all(dlock_loop *lp, slot *s)
{
    for (int i = 0; i < LOOP_CLIENTS; i++) {
        dlock *l = s[i].l;
        s[i].done = false;
        assert_int_equal(dlock_release_async(l, on_released, &s[i]), DLOCK_OK);
    }
    assert_true(run_until_done(lp, s, LOOP_CLIENTS, 10000));
}

static long long exists_on(int port, const char *key)
{
    redisContext *c = raw(port);
    redisReply *r = c ? redisCommand(c, "EXISTS %s", key) : NULL;
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* The primary is killed; the sentinels promote the replica; 200 clients on one loop, already
 * waiting on the lock when it dies, and a blocking client all take their next lock on the new
 * primary, having asked the sentinels a number of times bounded by the failover's length. */
static void failover_is_followed(void **state)
{
    char err[256];
    dlock_options o;
    dlock_options_init(&o);
    o.ttl_ms = 30000;
    o.wait_timeout_ms = 30000;
    o.command_timeout_ms = 500;
    o.backoff = (dlock_backoff){.policy = DLOCK_BACKOFF_EXPONENTIAL, .base_ms = 5, .cap_ms = 200};
    dlock_client *b = dlock_client_new(&w.url, 1, err, sizeof err);
    if (!b)
        fail_msg("blocking client: %s", err);
    dlock *l = NULL;
    assert_int_equal(dlock_acquire(b, "fo:blocking", &o, &l), DLOCK_OK);
    assert_int_equal(dlock_release(l), DLOCK_OK);

    dlock_loop *lp = dlock_loop_new(err, sizeof err);
    assert_non_null(lp);
    static dlock_client *cs[LOOP_CLIENTS];
    static slot s[LOOP_CLIENTS];
    uint64_t before = dlock__sentinel_queries();
    for (int i = 0; i < LOOP_CLIENTS; i++) {
        if (!(cs[i] = dlock_client_new(&w.url, 1, err, sizeof err)))
            fail_msg("loop client %d: %s", i, err);
        assert_int_equal(dlock_client_attach(cs[i], lp), DLOCK_OK);
    }
    acquire_all(lp, cs, s, &o, 10000);
    release_all(lp, s);
    assert_int_equal(dlock__sentinel_queries(), before);  /* the blocking client's answer */

    int old_port = lb_server_port(w.primary), new_port = lb_server_port(w.replica);
    assert_int_equal(lb_server_kill(w.primary), 0);
    uint64_t q0 = dlock__sentinel_queries();
    int64_t t0 = now_ms();
    acquire_all(lp, cs, s, &o, 40000);
    int64_t elapsed = now_ms() - t0;
    uint64_t queries = dlock__sentinel_queries() - q0;
    printf("# %d loop clients through a failover: %llu sentinel queries in %lld ms\n",
           LOOP_CLIENTS, (unsigned long long)queries, (long long)elapsed);
    assert_in_range(queries, 1, 3 + (uint64_t)elapsed / DLOCK__SENTINEL_REQUERY_MS);
    assert_int_equal(lb_sentinels_wait_failover(w.sentinels, 0, old_port, 10000, err,
                                                sizeof err), new_port);
    for (int i = 0; i < LOOP_CLIENTS; i += 17) {
        char key[32];
        snprintf(key, sizeof key, "fo:%d", i);
        assert_int_equal(exists_on(new_port, key), 1);
    }
    release_all(lp, s);
    for (int i = 0; i < LOOP_CLIENTS; i++)
        dlock_client_free(cs[i]);
    dlock_loop_free(lp);

    /* The blocking client's connection is to the dead primary's generation: it moves too. */
    uint64_t q1 = dlock__sentinel_queries();
    assert_int_equal(dlock_acquire(b, "fo:after", &o, &l), DLOCK_OK);
    assert_int_equal(exists_on(new_port, "fo:after"), 1);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(dlock__sentinel_queries(), q1);  /* the loop's answer served it */
    dlock_client_free(b);
}

/* ---- the run's wiring: sentinels on a managed group ----------------------------------- */

/* INFO replication of the node on port: its role and the port of its primary (0 for none). */
static void role_of(int port, char *role, size_t len, int *master_port, bool *link_up)
{
    redisContext *c = raw(port);
    redisReply *r = c ? redisCommand(c, "INFO replication") : NULL;
    const char *str = r && r->type == REDIS_REPLY_STRING ? r->str : "";
    const char *p = strstr(str, "role:"), *m = strstr(str, "master_port:");
    snprintf(role, len, "%.*s", p ? (int)strcspn(p + 5, "\r\n") : 0, p ? p + 5 : "");
    *master_port = m ? atoi(m + 12) : 0;
    *link_up = strstr(str, "master_link_status:up") != NULL;
    freeReplyObject(r);
    redisFree(c);
}

/* A group with one replica behind the fault proxy, watched as a run wires it: the sentinels
 * monitor the primary at its ingress, so after a promotion they name the promoted node's
 * ingress, and the group follows them. The killed old primary, restarted, is not re-pointed by
 * the group: it comes back a primary (as its config was saved), and the sentinels make it a
 * replica of the new one, through the new one's ingress -- replication stays proxied, and no
 * REPLICAOF of ours races theirs. They wait some 8 s of its being up before they do. */
static void sentinels_drive_a_managed_group(void **state)
{
    char err[512], role[32];
    lb_group *g = lb_group_start(LB_PERSIST_NONE, 1, err, sizeof err);
    if (!g)
        fail_msg("group: %s", err);
    const char *url = NULL;
    lb_sentinels *s = NULL;
    if (lb_sentinels_for_groups(3, &g, 1, &url, &s, err, sizeof err) < 0)
        fail_msg("sentinels: %s", err);
    assert_string_equal(url, lb_sentinels_url(s, 0));
    int in0 = lb_group_ingress_port(g, 0), in1 = lb_group_ingress_port(g, 1), mport;
    int port0 = lb_server_port(lb_group_node(g, 0));
    assert_int_equal(lb_sentinels_primary_port(s, 0), in0);
    assert_int_equal(lb_sentinels_sync_group(s, 0, g), 0);

    assert_int_equal(lb_group_kill(g), 0);
    assert_int_equal(lb_sentinels_wait_failover(s, 0, in0, 15000, err, sizeof err), in1);
    assert_int_equal(lb_sentinels_sync_group(s, 0, g), 1);
    assert_int_equal(lb_group_primary(g), 1);

    assert_int_equal(lb_group_restart(g, 0, err, sizeof err), 0);
    bool up = false;
    role_of(port0, role, sizeof role, &mport, &up);
    assert_string_equal(role, "master");   /* not re-pointed by the group */
    int64_t t0 = now_ms();
    while (!(strcmp(role, "slave") == 0 && mport == in1 && up) && now_ms() - t0 < 40000) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        role_of(port0, role, sizeof role, &mport, &up);
    }
    printf("# the sentinels re-pointed the returning old primary after %lld ms\n",
           (long long)(now_ms() - t0));
    assert_string_equal(role, "slave");
    assert_int_equal(mport, in1);   /* the new primary's ingress: proxied */
    assert_true(up);
    assert_int_equal(lb_sentinels_primary_port(s, 0), in1);   /* and no second failover */
    lb_sentinels_stop(s);
    lb_group_stop(g);
}

int main(void)
{
    alarm(TEST_TIME_LIMIT_S);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_sentinels_are_ready),
        cmocka_unit_test(threads_share_one_query),
        cmocka_unit_test(failover_is_followed),
        cmocka_unit_test(sentinels_drive_a_managed_group),
    };
    return cmocka_run_group_tests_name("test_sentinels", tests, group_setup, group_teardown);
}
