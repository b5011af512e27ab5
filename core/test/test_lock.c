/* test_lock.c -- libdlock against a real redis-server that the test starts and stops itself:
 * the seed's two examples, ownership on release, fencing, interruption, hooks, URLs and AUTH,
 * reconnection and SIGPIPE safety. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "scripted.h"
#include "fixture.h"

static lb_server *server;
static const char *url;

static int64_t now_ms(void)
{
    return dlock__mono_us() / 1000;
}

static dlock_options opts(dlock_algorithm a, int64_t ttl, int64_t wait)
{
    dlock_options o;
    dlock_options_init(&o);
    o.algorithm = a;
    o.ttl_ms = ttl;
    o.wait_timeout_ms = wait;
    return o;
}

/* Polls until key no longer exists, up to a deadline. */
static void wait_gone(const char *key, int64_t within_ms)
{
    int64_t deadline = now_ms() + within_ms;
    while (fx_int(0, "EXISTS %s", key) == 1) {
        assert_true(now_ms() < deadline);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

/* ---- the seed's first example: five clients, one counter ----------------- */

typedef struct worker {
    dlock_algorithm algorithm;
    const char *key;
    const char *counter;
    int rc;
} worker;

static void *increment(void *arg)
{
    worker *w = arg;
    dlock_client *c = fx_client(1);
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    dlock_options o = opts(w->algorithm, 30000, 10000);
    dlock *l = NULL;
    w->rc = dlock_acquire(c, w->key, &o, &l);
    if (w->rc == DLOCK_OK) {
        redisReply *v = redisCommand(r, "GET %s", w->counter);
        long long n = v && v->type == REDIS_REPLY_STRING ? atoll(v->str) : 0;
        freeReplyObject(v);
        struct timespec hold = {0, 5000000};  /* the seed's artificial delay inside the lock */
        nanosleep(&hold, NULL);
        freeReplyObject(redisCommand(r, "SET %s %lld", w->counter, n + 1));
        w->rc = dlock_release(l);
    }
    redisFree(r);
    dlock_client_free(c);
    return NULL;
}

static void five_clients(dlock_algorithm a, const char *key, const char *counter)
{
    pthread_t t[5];
    worker w[5];
    for (int i = 0; i < 5; i++) {
        w[i] = (worker){.algorithm = a, .key = key, .counter = counter, .rc = 99};
        assert_int_equal(pthread_create(&t[i], NULL, increment, &w[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].rc, DLOCK_OK);
    }
    assert_int_equal(fx_int(0, "GET %s", counter), 5);
    assert_int_equal(fx_int(0, "EXISTS %s", key), 0);
}

static void five_clients_token(void **state)
{
    five_clients(DLOCK_TOKEN, "t5:lock", "t5:counter");
}

static void five_clients_legacy(void **state)
{
    five_clients(DLOCK_LEGACY, "l5:lock", "l5:counter");
}

/* ---- the seed's second example: a 2 s wait on a lock never released ------ */

static void never_released(dlock_algorithm a, const char *key)
{
    dlock_client *holder = fx_client(1), *waiter = fx_client(1);
    dlock_options o = opts(a, 0, 0);  /* never expires */
    dlock *held = NULL, *got = NULL;
    assert_int_equal(dlock_acquire(holder, key, &o, &held), DLOCK_OK);
    o.wait_timeout_ms = 2000;
    int64_t start = now_ms();
    assert_int_equal(dlock_acquire(waiter, key, &o, &got), DLOCK_ETIMEDOUT);
    int64_t took = now_ms() - start;
    assert_in_range(took, 2000, 2500);
    assert_null(got);
    dlock_stats last;
    dlock_client_stats(waiter, NULL, &last);
    assert_true(last.attempts > 10);  /* exponential back-off capped at 100 ms: ~20 tries */
    assert_in_range(last.waited_us / 1000, 2000, 2500);
    assert_int_equal(dlock_release(held), DLOCK_OK);
    dlock_client_free(holder);
    dlock_client_free(waiter);
}

static void wait_timeout_token(void **state)
{
    never_released(DLOCK_TOKEN, "tt:lock");
}

static void wait_timeout_legacy(void **state)
{
    never_released(DLOCK_LEGACY, "lt:lock");
}

static void try_once_is_busy(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 10000, 0);
    dlock *la, *lb;
    assert_int_equal(dlock_acquire(a, "busy:lock", &o, &la), DLOCK_OK);
    assert_int_equal(dlock_acquire(b, "busy:lock", &o, &lb), DLOCK_EBUSY);
    dlock_stats last;
    dlock_client_stats(b, NULL, &last);
    assert_int_equal(last.attempts, 1);
    assert_int_equal(last.commands, 1);
    assert_int_equal(dlock_release(la), DLOCK_OK);
    dlock_client_free(a);
    dlock_client_free(b);
}

/* ---- ownership ----------------------------------------------------------- */

static void token_release_after_expiry_spares_the_new_holder(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 50, 5000);
    dlock *la, *lb;
    assert_int_equal(dlock_acquire(a, "own:lock", &o, &la), DLOCK_OK);
    wait_gone("own:lock", 2000);
    o.ttl_ms = 30000;
    assert_int_equal(dlock_acquire(b, "own:lock", &o, &lb), DLOCK_OK);
    assert_int_equal(dlock_release(la), DLOCK_ENOTOWNER);
    assert_int_equal(fx_int(0, "EXISTS %s", "own:lock"), 1);  /* b's lock survived */
    assert_int_equal(dlock_release(lb), DLOCK_OK);
    assert_int_equal(fx_int(0, "EXISTS %s", "own:lock"), 0);
    dlock_client_free(a);
    dlock_client_free(b);
}

/* The seed's flaw, kept on purpose: a holder whose lease ran out deletes its successor's lock. */
static void legacy_release_after_expiry_deletes_the_new_holder(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1);
    dlock_options o = opts(DLOCK_LEGACY, 50, 5000);
    dlock *la, *lb;
    assert_int_equal(dlock_acquire(a, "lown:lock", &o, &la), DLOCK_OK);
    o.ttl_ms = 30000;
    assert_int_equal(dlock_acquire(b, "lown:lock", &o, &lb), DLOCK_OK);  /* takes over */
    assert_int_equal(fx_int(0, "EXISTS %s", "lown:lock"), 1);
    assert_int_equal(dlock_release(la), DLOCK_OK);
    assert_int_equal(fx_int(0, "EXISTS %s", "lown:lock"), 0);  /* b's lock is gone */
    dlock_release(lb);
    dlock_client_free(a);
    dlock_client_free(b);
}

static void extend_moves_the_lease(void **state)
{
    dlock_client *a = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 200, 0);
    dlock *l;
    assert_int_equal(dlock_acquire(a, "ext:lock", &o, &l), DLOCK_OK);
    assert_int_equal(dlock_extend(l, 60000), DLOCK_OK);
    assert_in_range(fx_int(0, "PTTL %s", "ext:lock"), 50000, 60000);
    assert_int_equal(dlock_extend(l, 0), DLOCK_OK);
    assert_int_equal(fx_int(0, "PTTL %s", "ext:lock"), -1);  /* no expiry */
    assert_int_equal(fx_int(0, "DEL %s", "ext:lock"), 1);
    assert_int_equal(dlock_extend(l, 1000), DLOCK_ENOTOWNER);
    assert_int_equal(dlock_release(l), DLOCK_ENOTOWNER);
    dlock_client_free(a);
}

/* ---- fencing ------------------------------------------------------------- */

static void stale_fencing_token_is_rejected(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1), *resource = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 50, 5000);
    o.fencing = true;
    dlock *la, *lb;
    assert_int_equal(dlock_acquire(a, "fence:lock", &o, &la), DLOCK_OK);
    uint64_t t1 = dlock_fencing_token(la);
    assert_true(t1 > 0);
    wait_gone("fence:lock", 2000);  /* a "pauses" past its lease */
    o.ttl_ms = 30000;               /* b holds to the end, however slow the machine */
    assert_int_equal(dlock_acquire(b, "fence:lock", &o, &lb), DLOCK_OK);
    uint64_t t2 = dlock_fencing_token(lb);
    assert_true(t2 > t1);
    assert_int_equal(dlock_fenced_write(resource, "fence:data", lb, "from-b"), DLOCK_OK);
    assert_int_equal(dlock_fenced_write(resource, "fence:data", la, "from-a"), DLOCK_ESTALE);
    assert_int_equal(dlock_fenced_write(resource, "fence:data", lb, "again-b"), DLOCK_OK);
    /* not named, the same token could be a second holder's: only a newer one passes */
    assert_int_equal(dlock_fenced_set(resource, "fence:data", t2, "unnamed"), DLOCK_ESTALE);
    assert_int_equal(dlock_fenced_set(resource, "fence:data", t1, "unnamed"), DLOCK_ESTALE);
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    redisReply *v = redisCommand(r, "GET fence:data");
    assert_string_equal(v->str, "again-b");
    freeReplyObject(v);
    redisFree(r);
    dlock_release(la);
    assert_int_equal(dlock_release(lb), DLOCK_OK);
    dlock_client_free(a);
    dlock_client_free(b);
    dlock_client_free(resource);
}

/* A failover can lose the INCR behind a fencing token: the next holder is handed the same
 * token again (here the counter is set back by hand, as the promoted replica would have it).
 * Of the two holders of one token, the first to write keeps the resource; the second is
 * refused, and the first may go on writing. */
static void a_second_holder_of_the_same_token_is_refused(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1), *resource = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 50, 5000);
    o.fencing = true;
    dlock *la, *lb;
    assert_int_equal(dlock_acquire(a, "twice:lock", &o, &la), DLOCK_OK);
    uint64_t t = dlock_fencing_token(la);
    wait_gone("twice:lock", 2000);
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    freeReplyObject(redisCommand(r, "DECR twice:lock:fence"));  /* the INCR lost in a failover */
    o.ttl_ms = 30000;               /* b holds to the end, however slow the machine */
    assert_int_equal(dlock_acquire(b, "twice:lock", &o, &lb), DLOCK_OK);
    assert_int_equal(dlock_fencing_token(lb), t);
    assert_int_equal(dlock_fenced_write(resource, "twice:data", la, "from-a"), DLOCK_OK);
    assert_int_equal(dlock_fenced_write(resource, "twice:data", lb, "from-b"), DLOCK_ESTALE);
    assert_int_equal(dlock_fenced_write(resource, "twice:data", la, "again-a"), DLOCK_OK);
    redisReply *v = redisCommand(r, "GET twice:data");
    assert_string_equal(v->str, "again-a");
    freeReplyObject(v);
    redisFree(r);
    dlock_abandon(la);
    assert_int_equal(dlock_release(lb), DLOCK_OK);
    dlock_client_free(a);
    dlock_client_free(b);
    dlock_client_free(resource);
}

/* The lost update a plain read leaves open: a (token t1) has read and paused past its lease; b
 * (t2) reads. With the fenced read the store learns of t2 then, so a's late write is refused,
 * before b writes, not only after; and a cannot read again either. */
static void a_newer_tokens_read_makes_an_older_tokens_write_stale(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1), *resource = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 50, 5000);
    o.fencing = true;
    dlock *la, *lb;
    char *va, *vb;
    assert_int_equal(dlock_acquire(a, "fread:lock", &o, &la), DLOCK_OK);
    assert_int_equal(dlock_fenced_read(resource, "fread:data", la, &va), DLOCK_OK);
    assert_null(va);  /* no value yet */
    assert_int_equal(dlock_fenced_write(resource, "fread:data", la, "1"), DLOCK_OK);
    assert_int_equal(dlock_fenced_read(resource, "fread:data", la, &va), DLOCK_OK);
    assert_string_equal(va, "1");  /* a reads, then "pauses" past its lease */
    wait_gone("fread:lock", 2000);
    o.ttl_ms = 30000;               /* b holds to the end, however slow the machine */
    assert_int_equal(dlock_acquire(b, "fread:lock", &o, &lb), DLOCK_OK);
    assert_true(dlock_fencing_token(lb) > dlock_fencing_token(la));
    assert_int_equal(dlock_fenced_read(resource, "fread:data", lb, &vb), DLOCK_OK);
    assert_string_equal(vb, "1");
    assert_int_equal(dlock_fenced_write(resource, "fread:data", la, "2"), DLOCK_ESTALE);
    assert_int_equal(dlock_fenced_write(resource, "fread:data", lb, "2"), DLOCK_OK);
    char *again = va;
    assert_int_equal(dlock_fenced_read(resource, "fread:data", la, &again), DLOCK_ESTALE);
    assert_null(again);
    char *v = fx_get(0, "fread:data");
    assert_string_equal(v, "2");  /* both increments counted */
    free(v);
    free(va);
    free(vb);
    dlock_release(la);
    assert_int_equal(dlock_release(lb), DLOCK_OK);
    dlock_client_free(a);
    dlock_client_free(b);
    dlock_client_free(resource);
}

/* A read carrying an older token than the store has seen is refused, and records nothing; so is
 * a second holder's read of the same token (a failover lost the INCR behind it) once the first
 * has used it. A lock without a fencing token cannot read so. */
static void an_older_tokens_read_is_refused(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1), *resource = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 50, 5000);
    o.fencing = true;
    dlock *la, *lb;
    char *v = (char *)"untouched";
    assert_int_equal(dlock_acquire(a, "fold:lock", &o, &la), DLOCK_OK);
    wait_gone("fold:lock", 2000);
    o.ttl_ms = 30000;               /* b holds to the end, however slow the machine */
    assert_int_equal(dlock_acquire(b, "fold:lock", &o, &lb), DLOCK_OK);
    assert_int_equal(dlock_fenced_write(resource, "fold:data", lb, "from-b"), DLOCK_OK);
    assert_int_equal(dlock_fenced_read(resource, "fold:data", la, &v), DLOCK_ESTALE);
    assert_null(v);
    char *seen = fx_get(0, "fold:data:fence");
    char want[24];
    snprintf(want, sizeof want, "%" PRIu64, dlock_fencing_token(lb));
    assert_string_equal(seen, want);  /* the refused read recorded nothing */
    free(seen);
    assert_int_equal(dlock_fenced_read(resource, "fold:data", lb, &v), DLOCK_OK);
    assert_string_equal(v, "from-b");
    free(v);
    dlock_abandon(la);
    assert_int_equal(dlock_release(lb), DLOCK_OK);

    /* the same token twice: the first to read keeps the resource */
    dlock *l1, *l2;
    o.ttl_ms = 50;
    assert_int_equal(dlock_acquire(a, "fold:lock", &o, &l1), DLOCK_OK);
    wait_gone("fold:lock", 2000);
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    freeReplyObject(redisCommand(r, "DECR fold:lock:fence"));  /* the INCR lost in a failover */
    redisFree(r);
    o.ttl_ms = 30000;
    assert_int_equal(dlock_acquire(b, "fold:lock", &o, &l2), DLOCK_OK);
    assert_int_equal(dlock_fencing_token(l2), dlock_fencing_token(l1));
    assert_int_equal(dlock_fenced_read(resource, "fold:data", l1, &v), DLOCK_OK);
    free(v);
    assert_int_equal(dlock_fenced_read(resource, "fold:data", l2, &v), DLOCK_ESTALE);
    assert_int_equal(dlock_fenced_write(resource, "fold:data", l2, "from-2"), DLOCK_ESTALE);
    assert_int_equal(dlock_fenced_write(resource, "fold:data", l1, "from-1"), DLOCK_OK);
    dlock_abandon(l1);
    assert_int_equal(dlock_release(l2), DLOCK_OK);

    dlock *plain;
    dlock_options po = opts(DLOCK_TOKEN, 5000, 0);
    assert_int_equal(dlock_acquire(a, "fold:plain", &po, &plain), DLOCK_OK);
    assert_int_equal(dlock_fenced_read(resource, "fold:data", plain, &v), DLOCK_EINVAL);
    assert_null(v);
    assert_int_equal(dlock_release(plain), DLOCK_OK);
    dlock_client_free(a);
    dlock_client_free(b);
    dlock_client_free(resource);
}

/* ---- replicas ---------------------------------------------------------------- */

/* The test server has no replica: WAIT 1 blocks until its timeout and answers 0, so every
 * grant is deleted again. A try once is busy and a wait times out, both saying why, and no
 * lock is left behind. The same options without min_replicas take the lock. */
static void without_replicas_min_replicas_refuses_the_lock(void **state)
{
    dlock_client *c = fx_client(1);
    fx_counter waits = {.name = "WAIT"};
    dlock_client_set_hook(c, fx_count_hook, &waits);
    dlock_options o = opts(DLOCK_TOKEN, 30000, 0);
    o.min_replicas = 1;
    o.replica_timeout_ms = 20;
    dlock *l = NULL;
    int64_t t0 = fx_now_ms();
    assert_int_equal(dlock_acquire(c, "wait:lock", &o, &l), DLOCK_EBUSY);
    assert_true(fx_now_ms() - t0 >= 20);  /* WAIT held the reply for its timeout */
    assert_string_equal(dlock_client_errstr(c), "WAIT: 0 of 1 replicas acknowledged");
    assert_null(l);
    assert_int_equal(fx_int(0, "EXISTS %s", "wait:lock"), 0);
    assert_int_equal(atomic_load(&waits.n), 1);
    o.wait_timeout_ms = 150;
    o.fencing = true;
    assert_int_equal(dlock_acquire(c, "wait:lock", &o, &l), DLOCK_ETIMEDOUT);
    assert_non_null(strstr(dlock_client_errstr(c), "last try: WAIT: 0 of 1 replicas"));
    assert_int_equal(fx_int(0, "EXISTS %s", "wait:lock"), 0);
    assert_true(atomic_load(&waits.n) >= 3);
    o.min_replicas = 0;
    assert_int_equal(dlock_acquire(c, "wait:lock", &o, &l), DLOCK_OK);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    o.min_replicas = 1;
    o.replica_timeout_ms = 0;
    assert_int_equal(dlock_acquire(c, "wait:lock", &o, &l), DLOCK_EINVAL);
    assert_non_null(strstr(dlock_client_errstr(c), "replica_timeout_ms"));
    dlock_client_free(c);
}

/* ---- interruption, hooks, statistics --------------------------------------- */

static void interrupt_cancels_a_blocked_acquire(void **state)
{
    dlock_client *a = fx_client(1), *b = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 30000, -1);
    dlock *la, *lb;
    assert_int_equal(dlock_acquire(a, "intr:lock", &o, &la), DLOCK_OK);
    /* The interruption is kept until an acquire consumes it, so the order does not matter. */
    dlock_client_interrupt(b);
    assert_int_equal(dlock_acquire(b, "intr:lock", &o, &lb), DLOCK_ECANCELED);
    o.wait_timeout_ms = 0;
    assert_int_equal(dlock_acquire(b, "intr:lock", &o, &lb), DLOCK_EBUSY);  /* consumed */
    dlock_release(la);
    dlock_client_free(a);
    dlock_client_free(b);
}

typedef struct waiter_arg {
    dlock_client *c;
    int rc;
} waiter_arg;

static void *wait_forever(void *arg)
{
    waiter_arg *w = arg;
    dlock_options o = opts(DLOCK_TOKEN, 30000, -1);
    o.backoff.cap_ms = 20;
    dlock *l = NULL;
    w->rc = dlock_acquire(w->c, "intr2:lock", &o, &l);
    return NULL;
}

/* A notify waiter blocked in BLPOP for a 4 s back-off step still sees an interrupt within a
 * slice (100 ms), not at the end of the step. */
typedef struct notify_waiter {
    dlock_client *c;
    fx_counter blpops;
    int rc;
    int64_t returned_ms;
} notify_waiter;

static void *wait_notified(void *arg)
{
    notify_waiter *w = arg;
    dlock_options o = opts(DLOCK_TOKEN, 30000, -1);
    o.wait = DLOCK_WAIT_NOTIFY;
    o.backoff = (dlock_backoff){.policy = DLOCK_BACKOFF_CONSTANT, .base_ms = 4000, .cap_ms = 4000};
    dlock *l = NULL;
    w->rc = dlock_acquire(w->c, "intr3:lock", &o, &l);
    w->returned_ms = now_ms();
    return NULL;
}

static void interrupt_reaches_a_notify_wait(void **state)
{
    dlock_client *a = fx_client(1);
    notify_waiter w = {.c = fx_client(1), .blpops = {.name = "BLPOP"}, .rc = 99};
    dlock_options o = opts(DLOCK_TOKEN, 30000, 0);
    dlock *la;
    pthread_t t;
    assert_int_equal(dlock_acquire(a, "intr3:lock", &o, &la), DLOCK_OK);
    dlock_client_set_hook(w.c, fx_count_hook, &w.blpops);
    assert_int_equal(pthread_create(&t, NULL, wait_notified, &w), 0);
    int64_t deadline = now_ms() + 3000;
    while (atomic_load(&w.blpops.n) < 2) {  /* a few slices in: deep inside the 4 s step */
        assert_true(now_ms() < deadline);
        struct timespec poll_step = {0, 1000000};
        nanosleep(&poll_step, NULL);
    }
    int64_t at = now_ms();
    dlock_client_interrupt(w.c);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, DLOCK_ECANCELED);
    assert_in_range(w.returned_ms - at, 0, 1000);  /* a slice, with room; never the 4 s step */
    dlock_release(la);
    dlock_client_free(a);
    dlock_client_free(w.c);
}

static void interrupt_from_another_thread(void **state)
{
    dlock_client *a = fx_client(1);
    waiter_arg w = {.c = fx_client(1), .rc = 99};
    dlock_options o = opts(DLOCK_TOKEN, 30000, 0);
    dlock *la;
    pthread_t t;
    assert_int_equal(dlock_acquire(a, "intr2:lock", &o, &la), DLOCK_OK);
    assert_int_equal(pthread_create(&t, NULL, wait_forever, &w), 0);
    dlock_client_interrupt(w.c);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, DLOCK_ECANCELED);
    dlock_release(la);
    dlock_client_free(a);
    dlock_client_free(w.c);
}

typedef struct hook_log {
    int calls;
    int cancel_at;  /* cancel on this call (1-based), 0 = never */
    char last[16];
} hook_log;

static int hook(void *ud, const char *command)
{
    hook_log *h = ud;
    snprintf(h->last, sizeof h->last, "%s", command);
    return ++h->calls == h->cancel_at;
}

static void hook_sees_every_command_and_can_cancel(void **state)
{
    dlock_client *a = fx_client(1);
    hook_log h = {0};
    dlock_client_set_hook(a, hook, &h);
    dlock_options o = opts(DLOCK_TOKEN, 30000, 0);
    dlock *l;
    assert_int_equal(dlock_acquire(a, "hook:lock", &o, &l), DLOCK_OK);
    assert_int_equal(h.calls, 1);
    assert_string_equal(h.last, "SET");
    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(h.calls, 2);
    assert_string_equal(h.last, "EVALSHA");
    dlock_stats total;
    dlock_client_stats(a, &total, NULL);
    assert_int_equal(total.commands, 2);
    assert_int_equal(total.acquires, 1);
    h.cancel_at = 3;
    assert_int_equal(dlock_acquire(a, "hook:lock", &o, &l), DLOCK_ECANCELED);
    assert_int_equal(fx_int(0, "EXISTS %s", "hook:lock"), 0);  /* nothing was sent */
    dlock_client_free(a);
}

/* ---- connections ----------------------------------------------------------- */

static void bad_urls_are_refused(void **state)
{
    const char *bad[] = {"http://127.0.0.1:1", "redis://127.0.0.1:99999", "redis://", "unix://x",
                         "redis://:hunter2@127.0.0.1:abc", "rediss://127.0.0.1:6379"};
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(dlock_client_new(&bad[i], 1, err, sizeof err));
        assert_true(strlen(err) > 0);
        assert_null(strstr(err, "hunter2"));
    }
    assert_null(dlock_client_new(&url, 0, err, sizeof err));
}

static void auth_select_and_secret_keeping(void **state)
{
    char err[256], u[128];
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    redisContext *r = redisConnect("127.0.0.1", lb_server_port(s));
    freeReplyObject(redisCommand(r, "ACL SETUSER alice on >s3cret ~* +@all"));
    freeReplyObject(redisCommand(r, "CONFIG SET requirepass hunter2"));
    const char *p = u;
    dlock_options o = opts(DLOCK_TOKEN, 30000, 0);
    dlock *l;

    snprintf(u, sizeof u, "redis://:hunter2@127.0.0.1:%d/3", lb_server_port(s));
    dlock_client *c = dlock_client_new(&p, 1, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(dlock_acquire(c, "db3:lock", &o, &l), DLOCK_OK);
    freeReplyObject(redisCommand(r, "AUTH hunter2"));
    redisReply *v = redisCommand(r, "SELECT 3");
    freeReplyObject(v);
    v = redisCommand(r, "EXISTS db3:lock");
    assert_int_equal(v->integer, 1);
    freeReplyObject(v);
    dlock_release(l);
    dlock_client_free(c);

    snprintf(u, sizeof u, "redis://alice:s3cret@127.0.0.1:%d", lb_server_port(s));
    c = dlock_client_new(&p, 1, err, sizeof err);
    assert_non_null(c);
    dlock_client_free(c);

    snprintf(u, sizeof u, "redis://:wrong-hunter3@127.0.0.1:%d", lb_server_port(s));
    assert_null(dlock_client_new(&p, 1, err, sizeof err));
    assert_non_null(strstr(err, "AUTH"));
    assert_null(strstr(err, "hunter3"));

    redisFree(r);
    lb_server_stop(s);
}

/* A server of this test's own (its password must not outlive the test) and a plain
 * connection to it, for the admin's commands. */
static lb_server *refusing_server(redisContext **admin)
{
    char err[256];
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    *admin = redisConnect("127.0.0.1", lb_server_port(s));
    assert_non_null(*admin);
    assert_int_equal((*admin)->err, 0);
    return s;
}

/* The admin's command, which must not fail. */
static void admin_do(redisContext *admin, const char *cmd)
{
    redisReply *r = redisCommand(admin, cmd);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", cmd, r->str);
    freeReplyObject(r);
}

/* An acquire that may wait 5 s against a server that now refuses the client: it returns
 * DLOCK_EIO with the server's answer long before its wait is up, after a try or two. */
static void assert_refused_at_once(dlock_client *c, const char *answer, const char *secret)
{
    dlock_options o = opts(DLOCK_TOKEN, 30000, 5000);
    dlock_stats last;
    dlock *l = NULL;
    int64_t t0 = fx_now_ms();
    assert_int_equal(dlock_acquire(c, "refused:lock", &o, &l), DLOCK_EIO);
    int64_t took = fx_now_ms() - t0;
    dlock_client_stats(c, NULL, &last);
    if (took > 1000 || last.attempts > 3 || !strstr(dlock_client_errstr(c), answer))
        fail_msg("%lld ms, %llu tries: %s", (long long)took, (unsigned long long)last.attempts,
                 dlock_client_errstr(c));
    assert_null(strstr(dlock_client_errstr(c), secret));
}

/* The password comes later: a server given one after the client connected keeps the client's
 * connection authenticated, and the next connection -- after a drop -- is answered NOAUTH. */
static void noauth_after_a_reconnect_ends_the_acquire(void **state)
{
    redisContext *admin;
    lb_server *s = refusing_server(&admin);
    const char *u = lb_server_url(s);
    dlock_client *c = dlock_client_new(&u, 1, NULL, 0);
    assert_non_null(c);
    admin_do(admin, "CONFIG SET requirepass n3wpass");
    admin_do(admin, "CLIENT KILL TYPE normal SKIPME yes");
    assert_refused_at_once(c, "NOAUTH", "n3wpass");
    dlock_client_free(c);
    redisFree(admin);
    lb_server_stop(s);
}

/* The password changes under a client that has the old one: its reconnect's AUTH is refused,
 * and that refusal answers the acquire (no command of it was sent). */
static void a_changed_password_ends_the_acquire(void **state)
{
    redisContext *admin;
    lb_server *s = refusing_server(&admin);
    char u[128];
    const char *p = u;
    admin_do(admin, "CONFIG SET requirepass 0ldpass");
    admin_do(admin, "AUTH 0ldpass");
    snprintf(u, sizeof u, "redis://:0ldpass@127.0.0.1:%d", lb_server_port(s));
    dlock_client *c = dlock_client_new(&p, 1, NULL, 0);
    assert_non_null(c);
    admin_do(admin, "CONFIG SET requirepass n3wpass");
    admin_do(admin, "CLIENT KILL TYPE normal SKIPME yes");
    assert_refused_at_once(c, "WRONGPASS", "0ldpass");
    dlock_client_free(c);
    redisFree(admin);
    lb_server_stop(s);
}

/* A dead server gives DLOCK_EIO (never a SIGPIPE), and the client reconnects once it is back. */
static void survives_server_death_and_reconnects(void **state)
{
    char err[256], u[64];
    signal(SIGPIPE, SIG_DFL);
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    snprintf(u, sizeof u, "%s", lb_server_url(s));
    const char *p = u;
    dlock_client *c = dlock_client_new(&p, 1, err, sizeof err);
    assert_non_null(c);
    dlock_options o = opts(DLOCK_TOKEN, 30000, 0);
    o.command_timeout_ms = 300;
    dlock *l;
    assert_int_equal(dlock_acquire(c, "k", &o, &l), DLOCK_OK);
    assert_int_equal(lb_server_kill(s), 0);
    assert_int_equal(dlock_release(l), DLOCK_EIO);  /* writes into a closed socket */
    assert_true(strlen(dlock_client_errstr(c)) > 0);
    for (int i = 0; i < 3; i++)  /* each try reconnects, is refused, reports it */
        assert_int_equal(dlock_acquire(c, "k", &o, &l), DLOCK_EIO);
    assert_int_equal(lb_server_restart(s, err, sizeof err), 0);
    assert_int_equal(dlock_acquire(c, "k", &o, &l), DLOCK_OK);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    dlock_client_free(c);
    lb_server_stop(s);
}

/* A dead server under a waiting acquire: notify and fifo wait in Redis, and a wait that cannot
 * reach it sleeps out the back-off delay. Tries are then a handful in 400 ms, not thousands
 * of connection attempts in a row. */
static void waits_do_not_spin_on_a_dead_server(void **state)
{
    char err[256], u[64];
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    snprintf(u, sizeof u, "%s", lb_server_url(s));
    const char *p = u;
    dlock_client *c = dlock_client_new(&p, 1, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(lb_server_kill(s), 0);
    static const dlock_wait modes[] = {DLOCK_WAIT_POLL, DLOCK_WAIT_NOTIFY, DLOCK_WAIT_FIFO};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        dlock_options o = opts(DLOCK_TOKEN, 30000, 400);
        o.wait = modes[m];
        o.backoff = (dlock_backoff){.policy = DLOCK_BACKOFF_CONSTANT, .base_ms = 20, .cap_ms = 20};
        dlock *l;
        dlock_stats last;
        int64_t t0 = fx_now_ms();
        int rc = dlock_acquire(c, "k", &o, &l);
        int64_t took = fx_now_ms() - t0;
        assert_true(rc == DLOCK_EIO || rc == DLOCK_ETIMEDOUT);
        assert_in_range(took, 380, 2000);
        dlock_client_stats(c, NULL, &last);
        /* a try per 20 ms step (notify's rides with its wait) */
        if (last.attempts < 5 || last.attempts > 40)
            fail_msg("wait mode %d: %llu tries in %lld ms", (int)modes[m],
                     (unsigned long long)last.attempts, (long long)took);
    }
    dlock_client_free(c);
    lb_server_stop(s);
}

static void script_cache_flush_falls_back_to_eval(void **state)
{
    dlock_client *a = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 30000, 0);
    dlock *l;
    assert_int_equal(dlock_acquire(a, "flush:lock", &o, &l), DLOCK_OK);
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    freeReplyObject(redisCommand(r, "SCRIPT FLUSH"));
    redisFree(r);
    assert_int_equal(dlock_release(l), DLOCK_OK);
    assert_int_equal(fx_int(0, "EXISTS %s", "flush:lock"), 0);
    dlock_client_free(a);
}

/* The server stalls past the command timeout while our SET is in flight: the reply is lost but
 * the SET runs. The lock must not stay behind held by our token (forever, with no ttl). */
static void lost_reply_does_not_strand_the_lock(void **state)
{
    dlock_client *a = fx_client(1);
    dlock_options o = opts(DLOCK_TOKEN, 0, 1500);
    o.command_timeout_ms = 100;
    o.backoff.policy = DLOCK_BACKOFF_CONSTANT;
    o.backoff.base_ms = 50;
    o.backoff.cap_ms = 50;
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    redisAppendCommand(r, "DEBUG SLEEP 0.3");  /* sent, not waited for */
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(r, &done), REDIS_OK);
    dlock *l = NULL;
    int rc = dlock_acquire(a, "lost:lock", &o, &l);
    void *reply;
    assert_int_equal(redisGetReply(r, &reply), REDIS_OK);  /* the sleep is over */
    freeReplyObject(reply);
    redisFree(r);
    if (rc == DLOCK_OK) {
        assert_int_equal(dlock_release(l), DLOCK_OK);
    } else {
        assert_int_equal(rc, DLOCK_ETIMEDOUT);
    }
    assert_int_equal(fx_int(0, "EXISTS %s", "lost:lock"), 0);
    dlock_client_free(a);
}

static int start_server(void **state)
{
    if (fx_start(1) < 0)
        return -1;
    server = fx_servers[0];
    url = fx_urls[0];
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(five_clients_token),
        cmocka_unit_test(five_clients_legacy),
        cmocka_unit_test(wait_timeout_token),
        cmocka_unit_test(wait_timeout_legacy),
        cmocka_unit_test(try_once_is_busy),
        cmocka_unit_test(token_release_after_expiry_spares_the_new_holder),
        cmocka_unit_test(legacy_release_after_expiry_deletes_the_new_holder),
        cmocka_unit_test(extend_moves_the_lease),
        cmocka_unit_test(stale_fencing_token_is_rejected),
        cmocka_unit_test(a_second_holder_of_the_same_token_is_refused),
        cmocka_unit_test(a_newer_tokens_read_makes_an_older_tokens_write_stale),
        cmocka_unit_test(an_older_tokens_read_is_refused),
        cmocka_unit_test(without_replicas_min_replicas_refuses_the_lock),
        cmocka_unit_test(interrupt_cancels_a_blocked_acquire),
        cmocka_unit_test(interrupt_from_another_thread),
        cmocka_unit_test(interrupt_reaches_a_notify_wait),
        cmocka_unit_test(hook_sees_every_command_and_can_cancel),
        cmocka_unit_test(bad_urls_are_refused),
        cmocka_unit_test(auth_select_and_secret_keeping),
        cmocka_unit_test(noauth_after_a_reconnect_ends_the_acquire),
        cmocka_unit_test(a_changed_password_ends_the_acquire),
        cmocka_unit_test(survives_server_death_and_reconnects),
        cmocka_unit_test(waits_do_not_spin_on_a_dead_server),
        cmocka_unit_test(script_cache_flush_falls_back_to_eval),
        cmocka_unit_test(lost_reply_does_not_strand_the_lock),
    };
    return cmocka_run_group_tests_name("lock", tests, start_server, fx_stop);
}
