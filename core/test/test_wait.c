/* test_wait.c -- the notify and fifo wait modes against a real redis-server: many clients on one
 * key (counter exact, no overlaps, fencing tokens increasing), FIFO order and hand-off, crashed
 * and timed-out FIFO waiters, and notification speed with its back-off fallback. */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scripted.h"
#include "fixture.h"

static lb_server *server;
static const char *url;

static int64_t now_ms(void)
{
    return dlock__mono_us() / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- raw access to the server ---------------------------------------------- */

/* The id Redis will give to the next connection is above this one. */
static long long last_client_id(void)
{
    return fx_int(0, "CLIENT ID", NULL);
}

/* Whether a connection made after `since` (a client id) is blocked in Redis right now: other
 * tests' clients, or a count taken earlier, cannot stand in for it. */
static bool newer_client_blocked(long long since)
{
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    redisReply *rep = redisCommand(r, "CLIENT LIST");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    bool found = false;
    for (char *line = rep->str; line && *line && !found;) {  /* "id=7 addr=... flags=b ..." */
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        const char *flags = strstr(line, " flags=");
        if (flags && strtoll(line + strlen("id="), NULL, 10) > since) {
            flags += strlen(" flags=");
            found = memchr(flags, 'b', strcspn(flags, " ")) != NULL;
        }
        line = next;
    }
    freeReplyObject(rep);
    redisFree(r);
    return found;
}

/* Polls until a connection made after `since` blocks in Redis (a waiter in BLPOP); false at
 * the deadline. */
static bool newer_client_blocks_within(long long since, int64_t within_ms)
{
    int64_t deadline = now_ms() + within_ms;
    bool blocked;
    while (!(blocked = newer_client_blocked(since)) && now_ms() < deadline)
        sleep_us(2000);
    return blocked;
}

static long long zcard(const char *key)
{
    return fx_int(0, "ZCARD %s", key);
}

/* Polls until f(arg) == want, to a deadline; returns the ms it took, fails the test at the
 * deadline. */
static int64_t poll_until(long long (*f)(const char *), const char *arg, long long want,
                          int64_t within_ms, const char *what)
{
    int64_t start = now_ms(), deadline = start + within_ms;
    long long got;
    while ((got = f(arg)) != want) {
        if (now_ms() >= deadline)
            fail_msg("%s: still %lld after %lld ms, want %lld", what, got, (long long)within_ms,
                     want);
        sleep_us(2000);
    }
    return now_ms() - start;
}

/* ---- clients, options, a pausable/crashable hook ------------------------------------ */

static dlock_options wait_opts(dlock_wait mode, int64_t ttl, int64_t wait)
{
    dlock_options o;
    dlock_options_init(&o);
    o.wait = mode;
    o.ttl_ms = ttl;
    o.wait_timeout_ms = wait;
    return o;
}

/* The hook: while `pause` is set, a command named `pause_on` (any command if NULL) blocks;
 * once `crash` is set every command is refused, as if the client had died. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pause;
    const char *pause_on;
    atomic_bool crash;
    atomic_int blocked;
    atomic_int calls;
} gate;

static void gate_init(gate *g, const char *pause_on)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->pause = false;
    g->pause_on = pause_on;
    atomic_init(&g->crash, false);
    atomic_init(&g->blocked, 0);
    atomic_init(&g->calls, 0);
}

static void gate_set_pause(gate *g, bool on)
{
    pthread_mutex_lock(&g->mu);
    g->pause = on;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static int gate_hook(void *ud, const char *command)
{
    gate *g = ud;
    atomic_fetch_add(&g->calls, 1);
    if (atomic_load(&g->crash))
        return 1;
    pthread_mutex_lock(&g->mu);
    if (g->pause && (!g->pause_on || strcmp(command, g->pause_on) == 0)) {
        atomic_fetch_add(&g->blocked, 1);
        while (g->pause)
            pthread_cond_wait(&g->cv, &g->mu);
        atomic_fetch_sub(&g->blocked, 1);
    }
    pthread_mutex_unlock(&g->mu);
    return atomic_load(&g->crash) ? 1 : 0;
}

static gate *gate_of_poll;
static long long gate_blocked(const char *unused)
{
    return atomic_load(&gate_of_poll->blocked);
}

/* ---- a waiter in its own thread ---------------------------------------------------------- */

typedef struct waiter {
    dlock_client *c;
    const char *key;
    dlock_options o;
    atomic_int *order_seq;   /* shared: the order in which waiters got the lock */
    int64_t hold_us;         /* how long to hold before releasing */
    bool keep;               /* do not release (the test does) */
    /* results */
    int rc;
    int release_rc;
    int order;
    int64_t got_ms;          /* monotonic ms when acquire returned */
    uint64_t fence;
    dlock_stats last;
    dlock *l;
    pthread_t thread;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    w->l = NULL;
    w->rc = dlock_acquire(w->c, w->key, &w->o, &w->l);
    w->got_ms = now_ms();
    dlock_client_stats(w->c, NULL, &w->last);
    w->order = -1;
    w->release_rc = 99;
    if (w->rc == DLOCK_OK) {
        if (w->order_seq)
            w->order = atomic_fetch_add(w->order_seq, 1);
        w->fence = dlock_fencing_token(w->l);
        if (w->hold_us > 0)
            sleep_us(w->hold_us);
        if (!w->keep) {
            w->release_rc = dlock_release(w->l);
            w->l = NULL;
        }
    }
    return NULL;
}

static void waiter_start(waiter *w)
{
    w->rc = 99;
    assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static void waiter_join(waiter *w)
{
    pthread_join(w->thread, NULL);
}

/* ---- 20 clients on one key ---------------------------------------------------------------- */

#define THREADS 20
#define ROUNDS 25

typedef struct contention {
    dlock_wait mode;
    const char *key;
    const char *counter;
    atomic_int inside;
    atomic_int overlaps;
    atomic_int failures;
    atomic_int fence_errors;
    atomic_uint_fast64_t last_fence;
    atomic_int done;
    atomic_uint seed;
    char err[256];
} contention;

static void *contend(void *arg)
{
    contention *k = arg;
    char errbuf[256];
    unsigned seed = atomic_fetch_add(&k->seed, 7919) + 1;
    dlock_client *c = dlock_client_new(&url, 1, errbuf, sizeof errbuf);
    redisContext *r = fx_raw(0);
    if (!c || !r) {
        atomic_fetch_add(&k->failures, ROUNDS);
        dlock_client_free(c);
        if (r)
            redisFree(r);
        return NULL;
    }
    dlock_options o = wait_opts(k->mode, 10000, 30000);
    o.fencing = true;
    for (int i = 0; i < ROUNDS; i++) {
        dlock *l = NULL;
        int rc = dlock_acquire(c, k->key, &o, &l);
        if (rc != DLOCK_OK) {
            snprintf(k->err, sizeof k->err, "acquire: %s: %s", dlock_strerror(rc),
                     dlock_client_errstr(c));
            atomic_fetch_add(&k->failures, 1);
            continue;
        }
        if (atomic_fetch_add(&k->inside, 1) != 0)
            atomic_fetch_add(&k->overlaps, 1);
        uint64_t fence = dlock_fencing_token(l);
        uint64_t prev = atomic_exchange(&k->last_fence, fence);
        if (fence <= prev)
            atomic_fetch_add(&k->fence_errors, 1);
        redisReply *v = redisCommand(r, "GET %s", k->counter);
        long long x = v && v->type == REDIS_REPLY_STRING ? atoll(v->str) : 0;
        freeReplyObject(v);
        sleep_us(rand_r(&seed) % 201);
        freeReplyObject(redisCommand(r, "SET %s %lld", k->counter, x + 1));
        atomic_fetch_sub(&k->inside, 1);
        rc = dlock_release(l);
        if (rc != DLOCK_OK) {
            snprintf(k->err, sizeof k->err, "release: %s: %s", dlock_strerror(rc),
                     dlock_client_errstr(c));
            atomic_fetch_add(&k->failures, 1);
        } else {
            atomic_fetch_add(&k->done, 1);
        }
    }
    redisFree(r);
    dlock_client_free(c);
    return NULL;
}

static void twenty_clients(dlock_wait mode, const char *key, const char *counter)
{
    contention k = {.mode = mode, .key = key, .counter = counter};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, contend, &k), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&k.failures) != 0)
        fail_msg("%d failed acquisitions or releases, last: %s", atomic_load(&k.failures), k.err);
    assert_int_equal(atomic_load(&k.overlaps), 0);
    assert_int_equal(atomic_load(&k.fence_errors), 0);
    assert_int_equal(atomic_load(&k.done), THREADS * ROUNDS);
    assert_int_equal(fx_int(0, "GET %s", counter), THREADS * ROUNDS);
    assert_int_equal(atomic_load(&k.last_fence), THREADS * ROUNDS);  /* one token per holder */
    assert_int_equal(fx_int(0, "EXISTS %s", key), 0);
}

static void notify_twenty_clients(void **state)
{
    twenty_clients(DLOCK_WAIT_NOTIFY, "n20:lock", "n20:counter");
}

static void fifo_twenty_clients(void **state)
{
    twenty_clients(DLOCK_WAIT_FIFO, "f20:lock", "f20:counter");
    assert_int_equal(zcard("f20:lock:queue"), 0);
    assert_int_equal(zcard("f20:lock:queue:beat"), 0);
}

/* ---- FIFO ---------------------------------------------------------------------------------- */

#define NWAITERS 8

/* Waiters that arrive while the lock is held get it in their order of arrival; a newcomer
 * cannot jump the queue. */
static void fifo_order_is_arrival_order(void **state)
{
    const char *key = "fo:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_FIFO, 30000, 20000);
    o.fencing = true;
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
    uint64_t held_fence = dlock_fencing_token(held);
    assert_true(held_fence > 0);

    atomic_int seq = 0;
    waiter w[NWAITERS];
    for (int i = 0; i < NWAITERS; i++) {
        w[i] = (waiter){.c = fx_client(1), .key = key, .o = o, .order_seq = &seq, .hold_us = 2000};
        waiter_start(&w[i]);
        poll_until(zcard, "fo:lock:queue", i + 1, 5000, "queue length");
    }

    /* A newcomer trying once is refused and leaves no entry behind. */
    dlock_client *nc = fx_client(1);
    dlock_options once = o;
    once.wait_timeout_ms = 0;
    dlock *nl = NULL;
    assert_int_equal(dlock_acquire(nc, key, &once, &nl), DLOCK_EBUSY);
    assert_int_equal(zcard("fo:lock:queue"), NWAITERS);

    assert_int_equal(dlock_release(held), DLOCK_OK);
    uint64_t prev = held_fence;
    for (int i = 0; i < NWAITERS; i++)
        waiter_join(&w[i]);
    for (int i = 0; i < NWAITERS; i++) {
        if (w[i].rc != DLOCK_OK)
            fail_msg("waiter %d: %s", i, dlock_strerror(w[i].rc));
        assert_int_equal(w[i].release_rc, DLOCK_OK);
        if (w[i].order != i)
            fail_msg("waiter %d (arrived %d-th) got the lock %d-th", i, i, w[i].order);
        assert_true(w[i].fence > prev);
        prev = w[i].fence;
        dlock_client_free(w[i].c);
    }
    assert_int_equal(zcard("fo:lock:queue"), 0);
    assert_int_equal(fx_int(0, "EXISTS %s", key), 0);
    dlock_client_free(nc);
    dlock_client_free(hc);
}

/* The frozen waiter is this program run again ("--waiter <url> <key> <wait mode> <ttl>"):
 * started by posix_spawn, it runs nothing between fork and exec, where a child forked from a
 * process that has had threads can hang inside the thread sanitizer's runtime. */
#define WAITER_FLAG "--waiter"

static int waiter_process(char **argv)
{
    const char *child_url = argv[2];
    char err[128];
    dlock_client *c = dlock_client_new(&child_url, 1, err, sizeof err);
    dlock_options o = wait_opts((dlock_wait)atoi(argv[4]), atoll(argv[5]), -1);
    dlock *l;
    return c && dlock_acquire(c, argv[3], &o, &l) == DLOCK_OK ? 0 : 1;
}

/* Releases held (taken with o on key) while its next waiter is frozen: a waiter process waits
 * for the lock with o, is stopped once it blocks in BLPOP -- its commands already on the server
 * -- is handed or signalled the lock by the release, and is then killed. */
static void release_to_a_frozen_waiter(dlock *held, const char *key, const dlock_options *o)
{
    char mode[16], ttl[32];
    snprintf(mode, sizeof mode, "%d", (int)o->wait);
    snprintf(ttl, sizeof ttl, "%lld", (long long)o->ttl_ms);
    char *argv[] = {"/proc/self/exe", WAITER_FLAG, (char *)url, (char *)key, mode, ttl, NULL};
    long long since = last_client_id();
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, argv[0], NULL, NULL, argv, environ), 0);
    bool blocked = newer_client_blocks_within(since, 10000);
    int stopped = -1, released = -1;
    if (blocked) {
        stopped = kill(pid, SIGSTOP);
        released = dlock_release(held);
    }
    kill(pid, SIGKILL);  /* on every path: a waiter left behind would stay blocked */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!blocked)
        fail_msg("the waiter process did not block in BLPOP within 10 s");
    assert_int_equal(stopped, 0);
    assert_int_equal(released, DLOCK_OK);
}

/* A waiter frozen after its last heartbeat that is handed the lock holds it no longer than the
 * waiter bound, whatever its ttl -- nothing it sent before freezing may lengthen the hand-off's
 * lease; and the next waiter gets the lock once that lease runs out. */
static void fifo_frozen_waiter_holds_at_most_the_bound(void **state)
{
    static const int64_t ttls[] = {30000, 0, 1500};
    for (size_t t = 0; t < sizeof ttls / sizeof ttls[0]; t++) {
        char key[32];
        snprintf(key, sizeof key, "fz%zu:lock", t);
        dlock_client *hc = fx_client(1);
        dlock_options o = wait_opts(DLOCK_WAIT_FIFO, ttls[t], -1);
        dlock *held;
        assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
        release_to_a_frozen_waiter(held, key, &o);
        long long pttl = fx_int(0, "PTTL %s", key);
        if (pttl < 1 || pttl > DLOCK__FIFO_WAITER_BOUND_MS)
            fail_msg("ttl %lld: the frozen waiter's lease is %lld ms", (long long)ttls[t], pttl);
        dlock_options o3 = wait_opts(DLOCK_WAIT_FIFO, 30000, 5000);
        int64_t t0 = now_ms();
        assert_int_equal(dlock_acquire(hc, key, &o3, &held), DLOCK_OK);
        assert_in_range(now_ms() - t0, 0, DLOCK__FIFO_WAITER_BOUND_MS + 1000);
        assert_int_equal(dlock_release(held), DLOCK_OK);
        dlock_client_free(hc);
    }
}

/* The same for notify with a lock that never expires: a waiter frozen in its BLPOP must not
 * take it for good through a try queued behind the BLPOP; the next waiter gets it at once. */
static void notify_frozen_waiter_does_not_keep_a_lock_forever(void **state)
{
    const char *key = "nz:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_NOTIFY, 0, -1);
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
    release_to_a_frozen_waiter(held, key, &o);
    dlock_options o3 = wait_opts(DLOCK_WAIT_NOTIFY, 30000, 3000);
    int64_t t0 = now_ms();
    assert_int_equal(dlock_acquire(hc, key, &o3, &held), DLOCK_OK);
    assert_in_range(now_ms() - t0, 0, 1000);
    assert_int_equal(dlock_release(held), DLOCK_OK);
    dlock_client_free(hc);
}

/* A waiter's try behind its last wait slice is the step's try: no second one follows it at
 * once. A second of waiting on a held lock with the default back-off (delays doubling to
 * 100 ms, one slice each) makes about a dozen tries, not two dozen. */
static void notify_one_try_per_backoff_step(void **state)
{
    dlock_client *hc = fx_client(1), *wc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_NOTIFY, 30000, 1000);
    dlock *held, *l;
    dlock_stats last;
    assert_int_equal(dlock_acquire(hc, "n1:lock", &o, &held), DLOCK_OK);
    assert_int_equal(dlock_acquire(wc, "n1:lock", &o, &l), DLOCK_ETIMEDOUT);
    dlock_client_stats(wc, NULL, &last);
    if (last.attempts < 6 || last.attempts > 16)
        fail_msg("%llu tries in a 1 s wait", (unsigned long long)last.attempts);
    assert_int_equal(dlock_release(held), DLOCK_OK);
    dlock_client_free(wc);
    dlock_client_free(hc);
}

/* A waiter that dies in the queue (its hook refuses everything: no heartbeat, no leave) is
 * dropped within the documented bound, and the next waiter then gets the lock. */
static void fifo_crashed_waiter_is_removed(void **state)
{
    const char *key = "fc:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_FIFO, 30000, 10000);
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);

    gate g;
    gate_init(&g, NULL);
    waiter w1 = {.c = fx_client(1), .key = key, .o = o};
    dlock_client_set_hook(w1.c, gate_hook, &g);
    waiter_start(&w1);
    poll_until(zcard, "fc:lock:queue", 1, 5000, "queue length");
    waiter w2 = {.c = fx_client(1), .key = key, .o = o, .hold_us = 1000};
    waiter_start(&w2);
    poll_until(zcard, "fc:lock:queue", 2, 5000, "queue length");

    int64_t crashed = now_ms();
    atomic_store(&g.crash, true);
    waiter_join(&w1);
    assert_int_equal(w1.rc, DLOCK_ECANCELED);
    assert_int_equal(zcard("fc:lock:queue"), 2);  /* it could not leave */

    poll_until(zcard, "fc:lock:queue", 1,
               DLOCK__FIFO_WAITER_BOUND_MS + DLOCK__FIFO_HEARTBEAT_MS + 1500, "crashed waiter");
    int64_t removed_after = now_ms() - crashed;
    /* not before its last heartbeat (at most one heartbeat period before the crash) lapsed */
    assert_in_range(removed_after, DLOCK__FIFO_WAITER_BOUND_MS - DLOCK__FIFO_HEARTBEAT_MS - 200,
                    DLOCK__FIFO_WAITER_BOUND_MS + DLOCK__FIFO_HEARTBEAT_MS + 1500);
    assert_int_equal(zcard("fc:lock:queue:beat"), 1);

    int64_t released = now_ms();
    assert_int_equal(dlock_release(held), DLOCK_OK);
    waiter_join(&w2);
    assert_int_equal(w2.rc, DLOCK_OK);
    assert_int_equal(w2.release_rc, DLOCK_OK);
    assert_in_range(w2.got_ms - released, 0, 300);
    assert_int_equal(zcard("fc:lock:queue"), 0);
    assert_int_equal(fx_int(0, "EXISTS %s", key), 0);
    dlock_client_free(w1.c);
    dlock_client_free(w2.c);
    dlock_client_free(hc);
    gate_destroy(&g);
}

/* The same crash, but the holder releases right after it, while the dead waiter's heartbeat is
 * still fresh: the queue must still move on within the bound (the dead waiter must not end up
 * holding the lock for its whole ttl). */
static void fifo_crashed_head_does_not_block_past_the_bound(void **state)
{
    const char *key = "fch:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_FIFO, 30000, 10000);
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);

    gate g;
    gate_init(&g, NULL);
    waiter w1 = {.c = fx_client(1), .key = key, .o = o};
    dlock_client_set_hook(w1.c, gate_hook, &g);
    waiter_start(&w1);
    poll_until(zcard, "fch:lock:queue", 1, 5000, "queue length");
    dlock_options o2 = o;
    o2.wait_timeout_ms = DLOCK__FIFO_WAITER_BOUND_MS + DLOCK__FIFO_HEARTBEAT_MS + 1500;
    waiter w2 = {.c = fx_client(1), .key = key, .o = o2, .hold_us = 1000};
    waiter_start(&w2);
    poll_until(zcard, "fch:lock:queue", 2, 5000, "queue length");

    atomic_store(&g.crash, true);
    waiter_join(&w1);
    assert_int_equal(w1.rc, DLOCK_ECANCELED);
    int64_t released = now_ms();
    assert_int_equal(dlock_release(held), DLOCK_OK);
    waiter_join(&w2);
    long long pttl = fx_int(0, "PTTL %s", key);
    dlock_client_free(w1.c);
    dlock_client_free(w2.c);
    dlock_client_free(hc);
    gate_destroy(&g);
    redisContext *r = fx_raw(0);
    assert_non_null(r);
    freeReplyObject(redisCommand(r, "DEL %s", key));
    redisFree(r);
    if (w2.rc != DLOCK_OK)
        fail_msg("the waiter behind a crashed one: %s after %lld ms (the lock is held, by the "
                 "dead waiter, for another %lld ms)",
                 dlock_strerror(w2.rc), (long long)(w2.got_ms - released), pttl);
    assert_in_range(w2.got_ms - released, 0,
                    DLOCK__FIFO_WAITER_BOUND_MS + DLOCK__FIFO_HEARTBEAT_MS + 1500);
}

/* A waiter that gives up leaves the queue (and its heartbeat) at once. */
static void fifo_timeout_leaves_the_queue(void **state)
{
    const char *key = "ft:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_FIFO, 30000, 0);
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);

    o.wait_timeout_ms = 700;
    waiter w = {.c = fx_client(1), .key = key, .o = o};
    int64_t t0 = now_ms();
    waiter_start(&w);
    poll_until(zcard, "ft:lock:queue", 1, 5000, "queue length");
    assert_int_equal(zcard("ft:lock:queue:beat"), 1);
    waiter_join(&w);
    assert_int_equal(w.rc, DLOCK_ETIMEDOUT);
    assert_in_range(w.got_ms - t0, 700, 700 + 500);
    assert_int_equal(zcard("ft:lock:queue"), 0);
    assert_int_equal(zcard("ft:lock:queue:beat"), 0);

    /* and the lock then goes to nobody: the holder's release just frees it */
    assert_int_equal(dlock_release(held), DLOCK_OK);
    assert_int_equal(fx_int(0, "EXISTS %s", key), 0);
    dlock_client_free(w.c);
    dlock_client_free(hc);
}

/* The hand-off: the waiter blocked on its signal is given the lock and a newer fencing token by
 * the release itself, without another try. */
static void fifo_handoff_carries_the_fencing_token(void **state)
{
    const char *key = "fh:lock";
    dlock_client *hc = fx_client(1), *resource = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_FIFO, 30000, 10000);
    o.fencing = true;
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
    uint64_t t1 = dlock_fencing_token(held);
    assert_true(t1 > 0);
    assert_int_equal(dlock_fenced_set(resource, "fh:data", t1, "one"), DLOCK_OK);

    long long since = last_client_id();
    waiter w = {.c = fx_client(1), .key = key, .o = o, .keep = true};
    waiter_start(&w);
    poll_until(zcard, "fh:lock:queue", 1, 5000, "queue length");
    assert_true(newer_client_blocks_within(since, 5000));  /* on its signal */
    int64_t released = now_ms();
    assert_int_equal(dlock_release(held), DLOCK_OK);
    waiter_join(&w);
    assert_int_equal(w.rc, DLOCK_OK);
    assert_in_range(w.got_ms - released, 0, 200);
    assert_int_equal(w.last.attempts, 1);  /* handed over: no second try */
    assert_true(w.fence > t1);
    assert_int_equal(dlock_fencing_token(w.l), w.fence);
    assert_int_equal(fx_int(0, "GET %s", "fh:lock:fence"), (long long)w.fence);
    assert_int_equal(dlock_fenced_set(resource, "fh:data", w.fence, "two"), DLOCK_OK);
    assert_int_equal(dlock_fenced_set(resource, "fh:data", t1, "stale"), DLOCK_ESTALE);
    assert_int_equal(dlock_release(w.l), DLOCK_OK);
    assert_int_equal(fx_int(0, "EXISTS %s", key), 0);

    /* the next holder, through the plain path, gets a newer one still */
    dlock *again;
    assert_int_equal(dlock_acquire(hc, key, &o, &again), DLOCK_OK);
    assert_true(dlock_fencing_token(again) > w.fence);
    assert_int_equal(dlock_release(again), DLOCK_OK);
    dlock_client_free(w.c);
    dlock_client_free(hc);
    dlock_client_free(resource);
}

static long long exists(const char *key)
{
    return fx_int(0, "EXISTS %s", key);
}

/* The queue's keys live as long as someone uses the queue: once the last waiter is served and
 * the lock released, the arrival counter <key>:queue:seq expires (it stayed forever), and so do
 * the keys of a queue whose only waiter crashed. The fencing counter never expires. */
static void fifo_queue_keys_expire_when_unused(void **state)
{
    const char *key = "fq:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_FIFO, 30000, 10000);
    o.fencing = true;
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
    long long since = last_client_id();
    waiter w = {.c = fx_client(1), .key = key, .o = o};
    waiter_start(&w);
    poll_until(zcard, "fq:lock:queue", 1, 5000, "queue length");
    assert_true(newer_client_blocks_within(since, 5000));
    assert_int_equal(dlock_release(held), DLOCK_OK);
    waiter_join(&w);
    assert_int_equal(w.rc, DLOCK_OK);            /* the last waiter, served by the hand-off */
    assert_int_equal(w.release_rc, DLOCK_OK);
    assert_int_equal(exists(key), 0);
    long long pttl = fx_int(0, "PTTL %s", "fq:lock:queue:seq");
    if (pttl != -2 && (pttl <= 0 || pttl > DLOCK__FIFO_WAITER_BOUND_MS))
        fail_msg("fq:lock:queue:seq: PTTL %lld, want a TTL of at most %d ms or no key", pttl,
                 DLOCK__FIFO_WAITER_BOUND_MS);
    poll_until(exists, "fq:lock:queue:seq", 0, DLOCK__FIFO_WAITER_BOUND_MS + 1000,
               "the arrival counter");
    assert_int_equal(exists("fq:lock:queue"), 0);
    assert_int_equal(exists("fq:lock:queue:beat"), 0);
    assert_int_equal(fx_int(0, "GET %s", "fq:lock:fence"), 2);
    assert_int_equal(fx_int(0, "PTTL %s", "fq:lock:fence"), -1);

    /* a queue whose only waiter crashed, the lock still held: nobody is left to clean it up */
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
    gate g;
    gate_init(&g, NULL);
    waiter dead = {.c = fx_client(1), .key = key, .o = o};
    dlock_client_set_hook(dead.c, gate_hook, &g);
    waiter_start(&dead);
    poll_until(zcard, "fq:lock:queue", 1, 5000, "queue length");
    atomic_store(&g.crash, true);
    waiter_join(&dead);
    assert_int_equal(dead.rc, DLOCK_ECANCELED);
    int64_t bound = DLOCK__FIFO_WAITER_BOUND_MS + DLOCK__FIFO_HEARTBEAT_MS + 1000;
    poll_until(exists, "fq:lock:queue", 0, bound, "the crashed waiter's queue");
    poll_until(exists, "fq:lock:queue:beat", 0, bound, "its heartbeat");
    poll_until(exists, "fq:lock:queue:seq", 0, bound, "the arrival counter");
    assert_int_equal(dlock_release(held), DLOCK_OK);
    assert_int_equal(fx_int(0, "GET %s", "fq:lock:fence"), 3);
    assert_int_equal(fx_int(0, "PTTL %s", "fq:lock:fence"), -1);
    dlock_client_free(dead.c);
    dlock_client_free(w.c);
    dlock_client_free(hc);
    gate_destroy(&g);
}

/* ---- notify -------------------------------------------------------------------------------- */

/* A blocked waiter wakes within about a round trip of the release, not after its back-off
 * step. */
static void notify_wakes_the_waiter_fast(void **state)
{
    const char *key = "nw:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_NOTIFY, 30000, 5000);
    o.backoff = (dlock_backoff){.policy = DLOCK_BACKOFF_CONSTANT, .base_ms = 500, .cap_ms = 500};
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);

    for (int round = 0; round < 3; round++) {
        long long since = last_client_id();
        waiter w = {.c = fx_client(1), .key = key, .o = o, .keep = true};
        fx_counter blpops = {.name = "BLPOP"};
        dlock_client_set_hook(w.c, fx_count_hook, &blpops);
        waiter_start(&w);
        assert_true(newer_client_blocks_within(since, 5000));  /* on the signal */
        int64_t released = now_ms();
        assert_int_equal(dlock_release(held), DLOCK_OK);
        waiter_join(&w);
        assert_int_equal(w.rc, DLOCK_OK);
        if (w.got_ms - released > 100)
            fail_msg("round %d: the waiter took %lld ms after the release (back-off 500 ms)",
                     round, (long long)(w.got_ms - released));
        /* its first try, then the one behind each BLPOP (more than one only if a 100 ms
         * slice ended before the release): none of its own once woken */
        assert_int_equal(w.last.attempts, 1 + atomic_load(&blpops.n));
        dlock_client_set_hook(w.c, NULL, NULL);
        held = w.l;  /* the waiter's lock is the next round's held one */
        dlock_client_free(hc);
        hc = w.c;
    }
    assert_int_equal(dlock_release(held), DLOCK_OK);
    dlock_client_free(hc);
}

/* The signal is lost (deleted before the waiter reads it): the try behind the waiter's BLPOP
 * takes the lock when the slice ends. */
static void notify_lost_signal_costs_at_most_a_slice(void **state)
{
    const char *key = "nl:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_NOTIFY, 30000, 5000);
    o.backoff = (dlock_backoff){.policy = DLOCK_BACKOFF_CONSTANT, .base_ms = 300, .cap_ms = 300};
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);

    gate g;
    gate_init(&g, "BLPOP");
    g.pause = true;
    waiter w = {.c = fx_client(1), .key = key, .o = o};
    dlock_client_set_hook(w.c, gate_hook, &g);
    waiter_start(&w);
    gate_of_poll = &g;
    poll_until(gate_blocked, NULL, 1, 5000, "waiter held before its BLPOP");

    assert_int_equal(dlock_release(held), DLOCK_OK);
    assert_int_equal(fx_int(0, "LLEN %s", "nl:lock:signal"), 1);  /* the release did signal */
    assert_int_equal(fx_int(0, "DEL %s", "nl:lock:signal"), 1);    /* ... and the signal is lost */
    int64_t resumed = now_ms();
    gate_set_pause(&g, false);
    waiter_join(&w);
    assert_int_equal(w.rc, DLOCK_OK);
    assert_int_equal(w.release_rc, DLOCK_OK);
    /* not woken by a signal: taken by the try behind its first wait slice (100 ms, which
     * Redis's timer may stretch by up to 100 ms), well before the 300 ms back-off step */
    assert_in_range(w.got_ms - resumed, 80, 100 + DLOCK__BLOCK_SLACK_MS + 150);
    dlock_client_free(w.c);
    dlock_client_free(hc);
    gate_destroy(&g);
}

/* A holder that dies (its lock is never released, so never signalled) only costs its TTL. */
static void notify_expired_holder_costs_its_ttl(void **state)
{
    const char *key = "ne:lock";
    dlock_client *hc = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_NOTIFY, 300, 5000);
    o.backoff = (dlock_backoff){.policy = DLOCK_BACKOFF_CONSTANT, .base_ms = 100, .cap_ms = 100};
    dlock *held;
    int64_t taken = now_ms();
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
    dlock_abandon(held);

    o.ttl_ms = 30000;
    waiter w = {.c = fx_client(1), .key = key, .o = o};
    waiter_start(&w);
    waiter_join(&w);
    assert_int_equal(w.rc, DLOCK_OK);
    assert_int_equal(w.release_rc, DLOCK_OK);
    assert_in_range(w.got_ms - taken, 300 - 20, 300 + 100 + 300);
    assert_true(w.last.attempts >= 2);
    dlock_client_free(w.c);
    dlock_client_free(hc);
}

/* Fencing tokens increase across holders that wait by notification. */
static void notify_fencing_increases(void **state)
{
    const char *key = "nf:lock";
    dlock_client *hc = fx_client(1), *resource = fx_client(1);
    dlock_options o = wait_opts(DLOCK_WAIT_NOTIFY, 30000, 5000);
    o.fencing = true;
    dlock *held;
    assert_int_equal(dlock_acquire(hc, key, &o, &held), DLOCK_OK);
    uint64_t t1 = dlock_fencing_token(held);
    assert_true(t1 > 0);
    long long since = last_client_id();
    waiter w = {.c = fx_client(1), .key = key, .o = o, .keep = true};
    waiter_start(&w);
    assert_true(newer_client_blocks_within(since, 5000));  /* on the signal */
    assert_int_equal(dlock_release(held), DLOCK_OK);
    waiter_join(&w);
    assert_int_equal(w.rc, DLOCK_OK);
    assert_true(w.fence > t1);
    assert_int_equal(dlock_fenced_set(resource, "nf:data", w.fence, "new"), DLOCK_OK);
    assert_int_equal(dlock_fenced_set(resource, "nf:data", t1, "old"), DLOCK_ESTALE);
    assert_int_equal(dlock_release(w.l), DLOCK_OK);
    dlock_client_free(w.c);
    dlock_client_free(hc);
    dlock_client_free(resource);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

/* FIFO with a ttl shorter than the waiters' heartbeat: every waiter is handed the lock in turn
 * and keeps it (one try per acquisition), none is sent to the back of the queue. */
typedef struct short_fifo {
    int id;
    int max_attempts;
    int rc;
} short_fifo;

static void *short_fifo_worker(void *arg)
{
    short_fifo *w = arg;
    char err[256];
    dlock_client *c = dlock_client_new(&url, 1, err, sizeof err);
    dlock_options o;
    dlock_options_init(&o);
    o.wait = DLOCK_WAIT_FIFO;
    o.ttl_ms = 150;  /* shorter than the 180 ms three holders ahead take; 90 ms to spare */
    o.wait_timeout_ms = 5000;
    w->rc = c ? DLOCK_OK : DLOCK_EIO;
    for (int i = 0; c && i < 8 && w->rc == DLOCK_OK; i++) {
        dlock *l;
        dlock_stats last;
        w->rc = dlock_acquire(c, "sfifo:lock", &o, &l);
        dlock_client_stats(c, NULL, &last);
        if ((int)last.attempts > w->max_attempts)
            w->max_attempts = (int)last.attempts;
        if (w->rc != DLOCK_OK)
            break;
        struct timespec hold = {0, 60 * 1000000};
        nanosleep(&hold, NULL);
        w->rc = dlock_release(l);
    }
    dlock_client_free(c);
    return NULL;
}

static void fifo_short_ttl_keeps_its_turn(void **state)
{
    pthread_t t[4];
    short_fifo w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (short_fifo){.id = i};
        assert_int_equal(pthread_create(&t[i], NULL, short_fifo_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);  /* all of them before any assert ends the test */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].rc, DLOCK_OK);
        /* 3 holders ahead of 60 ms each: longer than the ttl, well inside one 500 ms slice */
        assert_in_range(w[i].max_attempts, 1, 2);
    }
}

static int start_server(void **state)
{
    if (fx_start(1) < 0)
        return -1;
    server = fx_servers[0];
    url = fx_urls[0];
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], WAITER_FLAG) == 0)
        return waiter_process(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(notify_twenty_clients),
        cmocka_unit_test(fifo_twenty_clients),
        cmocka_unit_test(fifo_order_is_arrival_order),
        cmocka_unit_test(fifo_crashed_waiter_is_removed),
        cmocka_unit_test(fifo_frozen_waiter_holds_at_most_the_bound),
        cmocka_unit_test(notify_frozen_waiter_does_not_keep_a_lock_forever),
        cmocka_unit_test(notify_one_try_per_backoff_step),
        cmocka_unit_test(fifo_crashed_head_does_not_block_past_the_bound),
        cmocka_unit_test(fifo_timeout_leaves_the_queue),
        cmocka_unit_test(fifo_handoff_carries_the_fencing_token),
        cmocka_unit_test(fifo_queue_keys_expire_when_unused),
        cmocka_unit_test(notify_wakes_the_waiter_fast),
        cmocka_unit_test(notify_lost_signal_costs_at_most_a_slice),
        cmocka_unit_test(notify_expired_holder_costs_its_ttl),
        cmocka_unit_test(notify_fencing_increases),
        cmocka_unit_test(fifo_short_ttl_keeps_its_turn),
    };
    return cmocka_run_group_tests_name("wait", tests, start_server, fx_stop);
}
