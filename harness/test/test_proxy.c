/* test_proxy.c -- the fault proxy against a real redis-server: relaying and order, latency
 * accuracy, jitter bounds, partition (held, then delivered), reset, independence of links, many
 * links, and stop with live connections. Also prints the zero-latency overhead as a TAP comment.
 *
 * One server serves the whole group; each test gets its own proxy, and the teardown frees every
 * client the test opened, so a failed assertion leaves nothing behind. Waits poll to a deadline;
 * timing checks are ranges. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy.h"
#include "servers.h"

#include <hiredis/hiredis.h>

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TEST_TIME_LIMIT_S  180
#define MAX_CTX            256
#define MAX_FDS            16
#define MANY_LINKS         200
#define RTT_SAMPLES        21
#define OVERHEAD_SAMPLES   201
#define SHORT_TIMEOUT_MS   200
#define LONG_TIMEOUT_MS    5000
#define SEED               42

static lb_server *g_server;

typedef struct {
    lb_proxy *proxy;
    redisContext *ctx[MAX_CTX];
    int nctx;
    int fds[MAX_FDS];
    int nfds;
    char err[256];
} fixture;

/* ---- fixture ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    char err[512];
    g_server = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    if (g_server == NULL) {
        fprintf(stderr, "# lb_server_start: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lb_server_stop(g_server);
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->proxy = lb_proxy_start(SEED, f->err, sizeof f->err);
    if (f->proxy == NULL) {
        fprintf(stderr, "# lb_proxy_start: %s\n", f->err);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->nctx; i++)
        redisFree(f->ctx[i]);
    for (int i = 0; i < f->nfds; i++)
        close(f->fds[i]);
    lb_proxy_stop(f->proxy);
    free(f);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t median(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return v[n / 2];
}

static int add_link(fixture *f, int *port)
{
    int link = lb_proxy_add_link(f->proxy, "127.0.0.1", lb_server_port(g_server), port);
    assert_true(link >= 0);
    assert_true(*port > 0);
    return link;
}

static redisContext *connect_port(fixture *f, int port, int timeout_ms)
{
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_non_null(c);
    assert_true(f->nctx < MAX_CTX);
    f->ctx[f->nctx++] = c;
    if (c->err != 0)
        fail_msg("connect to %d: %s", port, c->errstr);
    assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

static void assert_pong(redisContext *c)
{
    redisReply *r = redisCommand(c, "PING");
    if (r == NULL)
        fail_msg("PING: %s", c->errstr);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
}

static int64_t ping_rtt_us(redisContext *c)
{
    int64_t t0 = now_us();
    assert_pong(c);
    return now_us() - t0;
}

static int64_t median_rtt_us(redisContext *c, int n)
{
    int64_t v[OVERHEAD_SAMPLES];
    assert_true(n <= OVERHEAD_SAMPLES);
    for (int i = 0; i < n; i++)
        v[i] = ping_rtt_us(c);
    return median(v, n);
}

/* SET and GET back a value of len bytes; checks every byte. */
static void big_round_trip(redisContext *c, size_t len)
{
    char *val = malloc(len);
    assert_non_null(val);
    for (size_t i = 0; i < len; i++)
        val[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    redisReply *r = redisCommand(c, "SET lockbench:test:proxy:big %b", val, len);
    assert_non_null(r);
    freeReplyObject(r);
    r = redisCommand(c, "GET lockbench:test:proxy:big");
    assert_non_null(r);
    assert_int_equal(r->len, len);
    assert_memory_equal(r->str, val, len);
    freeReplyObject(r);
    r = redisCommand(c, "DEL lockbench:test:proxy:big");
    assert_non_null(r);
    freeReplyObject(r);
    free(val);
}

/* A blocking raw socket, for what hiredis hides: held replies, resets, half-close. */
static int raw_connect(fixture *f, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_true(f->nfds < MAX_FDS);
    f->fds[f->nfds++] = fd;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("connect to %d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void raw_send(int fd, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads until `want` bytes arrived, the peer closed or failed, or the deadline passed. Returns
 * the byte count; *rc gets the last recv result (0 = EOF, -1 = error with *err). */
static size_t raw_recv(int fd, char *buf, size_t want, int timeout_ms, ssize_t *rc, int *err)
{
    int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
    size_t got = 0;
    *rc = 1;
    *err = 0;
    while (got < want) {
        int64_t left_ms = (deadline - now_us()) / 1000;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0)
            break;
        ssize_t n = recv(fd, buf + got, want - got, 0);
        *rc = n;
        if (n <= 0) {
            *err = n < 0 ? errno : 0;
            break;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

static void raw_expect(int fd, const char *want, int timeout_ms)
{
    char buf[256];
    ssize_t rc;
    int err;
    size_t got = raw_recv(fd, buf, strlen(want), timeout_ms, &rc, &err);
    if (got != strlen(want) || strcmp(buf, want) != 0)
        fail_msg("expected \"%s\", got %zu bytes \"%s\" (rc %zd, %s)", want, got, buf, rc,
                 strerror(err));
}

/* True when nothing arrives within timeout_ms. */
static bool raw_silent(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, timeout_ms) == 0;
}

/* Connections the server has, seen from a direct connection (which counts itself). */
static int server_clients(redisContext *direct)
{
    redisReply *r = redisCommand(direct, "CLIENT LIST");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    int n = 0;
    for (const char *s = r->str; (s = strchr(s, '\n')) != NULL; s++)
        n++;
    freeReplyObject(r);
    return n;
}

static void wait_server_clients(redisContext *direct, int want)
{
    int64_t deadline = now_us() + 3000000;
    int n = server_clients(direct);
    while (n != want && now_us() < deadline) {
        usleep(2000);
        n = server_clients(direct);
    }
    assert_int_equal(n, want);
}

static lb_proxy_stats get_stats(fixture *f, int link)
{
    lb_proxy_stats st;
    assert_int_equal(lb_proxy_get_stats(f->proxy, link, &st), 0);
    return st;
}

/* Polls the link's counters until pred holds or 3 s pass; returns the last reading. */
static lb_proxy_stats wait_stats(fixture *f, int link, bool (*pred)(const lb_proxy_stats *))
{
    int64_t deadline = now_us() + 3000000;
    lb_proxy_stats st = get_stats(f, link);
    while (!pred(&st) && now_us() < deadline) {
        usleep(500);
        st = get_stats(f, link);
    }
    return st;
}

static bool no_open_connections(const lb_proxy_stats *st)
{
    return st->open_connections == 0;
}

static bool some_bytes_held(const lb_proxy_stats *st)
{
    return st->bytes_held > 0;
}

static bool request_delivered(const lb_proxy_stats *st)
{
    return st->bytes_to_server > strlen("PING\r\n");
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_zero_latency_relays_in_order(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    redisContext *c = connect_port(f, port, LONG_TIMEOUT_MS);
    assert_pong(c);

    enum { N = 2000 };
    for (int i = 0; i < N; i++)
        assert_int_equal(redisAppendCommand(c, "ECHO %d", i), REDIS_OK);
    for (int i = 0; i < N; i++) {
        redisReply *r;
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(atoi(r->str), i);
        freeReplyObject(r);
    }

    /* A value larger than the per-connection buffer cap exercises partial writes and
     * backpressure in both directions. */
    size_t big = 3 * 1024 * 1024;
    big_round_trip(c, big);
    lb_proxy_stats st;
    assert_int_equal(lb_proxy_get_stats(f->proxy, link, &st), 0);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.open_connections, 1);
    assert_true(st.bytes_to_server > big);
    assert_true(st.bytes_to_client > big);
}

static void test_zero_latency_overhead(void **state)
{
    fixture *f = *state;
    int port;
    add_link(f, &port);
    redisContext *direct = connect_port(f, lb_server_port(g_server), LONG_TIMEOUT_MS);
    redisContext *proxied = connect_port(f, port, LONG_TIMEOUT_MS);
    median_rtt_us(direct, 20);    /* warm-up */
    median_rtt_us(proxied, 20);
    int64_t d = median_rtt_us(direct, OVERHEAD_SAMPLES);
    int64_t p = median_rtt_us(proxied, OVERHEAD_SAMPLES);
    printf("# rtt direct %lld us, proxied %lld us (median of %d PINGs)\n", (long long)d,
           (long long)p, OVERHEAD_SAMPLES);
    assert_true(p >= d / 2);
    assert_true(p - d < 2000);    /* a relay hop is tens of microseconds, not milliseconds */
}

/* How late this thread's own sleep of ms wakes, now: the median of a few. */
static int64_t median_oversleep_us(int64_t ms)
{
    int64_t late[5];
    for (int i = 0; i < 5; i++) {
        int64_t t0 = now_us();
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
            ;
        late[i] = now_us() - t0 - ms * 1000;
    }
    return median(late, 5);
}

/* Median added round trip for a one-way latency: within 10 % + 0.5 ms of twice the latency,
 * beyond what the machine's own timers miss by at the time (each way is a timer in the proxy;
 * on a loaded machine, under a sanitizer, a sleep of 5 ms can wake a millisecond late). */
static void check_latency(fixture *f, int link, redisContext *direct, redisContext *proxied,
                          int64_t latency_ms)
{
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, latency_ms * 1000, 0), 0);
    int64_t d = median_rtt_us(direct, RTT_SAMPLES);
    int64_t p = median_rtt_us(proxied, RTT_SAMPLES);
    int64_t late = median_oversleep_us(latency_ms);
    int64_t added = p - d, want = 2 * latency_ms * 1000;
    int64_t tol = want / 10 + 500;
    printf("# latency %lld ms: added round trip %lld us (want %lld - %lld .. + %lld + 2 x %lld "
           "this machine's timers were late)\n", (long long)latency_ms, (long long)added,
           (long long)want, (long long)tol, (long long)tol, (long long)late);
    assert_in_range(added, want - tol, want + tol + 2 * (late > 0 ? late : 0));
}

static void test_latency_accuracy(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    redisContext *direct = connect_port(f, lb_server_port(g_server), LONG_TIMEOUT_MS);
    redisContext *proxied = connect_port(f, port, LONG_TIMEOUT_MS);
    assert_pong(proxied);
    check_latency(f, link, direct, proxied, 5);
    check_latency(f, link, direct, proxied, 20);
    check_latency(f, link, direct, proxied, 50);
    /* Delayed and jittered chunks of a large value stay whole and in order. */
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, 2000, 1000), 0);
    big_round_trip(proxied, 3 * 1024 * 1024);
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, 0, 0), 0);
    assert_true(median_rtt_us(proxied, RTT_SAMPLES) < 2000);
}

static void test_jitter_bounds_and_order(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    const int64_t lat = 10000, jit = 5000;
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, lat, jit), 0);
    redisContext *c = connect_port(f, port, LONG_TIMEOUT_MS);

    int64_t lo = INT64_MAX, hi = 0, rtts[RTT_SAMPLES];
    for (int i = 0; i < RTT_SAMPLES; i++) {
        int64_t rtt = rtts[i] = ping_rtt_us(c);
        lo = rtt < lo ? rtt : lo;
        hi = rtt > hi ? rtt : hi;
    }
    int64_t med = median(rtts, RTT_SAMPLES);
    printf("# jitter 10+-5 ms one way: round trips %lld..%lld us, median %lld\n", (long long)lo,
           (long long)hi, (long long)med);
    assert_true(lo >= 2 * (lat - jit));          /* a chunk is never early */
    /* Late is the scheduler's doing as much as the proxy's, so the upper side is judged on the
     * median, which a loaded machine moves little: the sum of two uniform draws centres on
     * 2 * lat and stays within 2 * jit of it. */
    assert_in_range(med, 2 * (lat - jit), 2 * (lat + jit) + 2 * lat / 10 + 500);
    assert_true(hi - lo >= 1000);                /* the jitter is there */

    /* Commands sent apart, each its own chunk with its own draw, must come back in order. */
    int fd = raw_connect(f, port);
    enum { N = 40 };
    char cmd[32], want[64] = "";
    for (int i = 0; i < N; i++) {
        snprintf(cmd, sizeof cmd, "ECHO %02d\r\n", i);
        raw_send(fd, cmd);
        usleep(300);    /* pacing, so reads split into chunks; not a wait for a condition */
    }
    for (int i = 0; i < N; i++) {
        snprintf(want, sizeof want, "$2\r\n%02d\r\n", i);
        raw_expect(fd, want, LONG_TIMEOUT_MS);
    }
}

static void test_partition_holds_then_delivers(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    redisContext *shortc = connect_port(f, port, SHORT_TIMEOUT_MS);
    assert_pong(shortc);
    int held = raw_connect(f, port);
    raw_send(held, "PING\r\n");
    raw_expect(held, "+PONG\r\n", LONG_TIMEOUT_MS);

    assert_int_equal(lb_proxy_set_partition(f->proxy, link, true), 0);
    int64_t t0 = now_us();
    redisReply *r = redisCommand(shortc, "PING");
    int64_t waited = now_us() - t0;
    assert_null(r);
    assert_int_equal(shortc->err, REDIS_ERR_IO);
    assert_in_range(waited, SHORT_TIMEOUT_MS * 1000 * 3 / 4, SHORT_TIMEOUT_MS * 1000 * 5);

    raw_send(held, "ECHO held\r\n");
    int fresh = raw_connect(f, port);    /* completes in the backlog, then nothing answers */
    raw_send(fresh, "ECHO fresh\r\n");
    assert_true(raw_silent(held, SHORT_TIMEOUT_MS));
    assert_true(raw_silent(fresh, 10));
    lb_proxy_stats st;
    assert_int_equal(lb_proxy_get_stats(f->proxy, link, &st), 0);
    assert_int_equal(st.connections, 2);

    assert_int_equal(lb_proxy_set_partition(f->proxy, link, false), 0);
    raw_expect(held, "$4\r\nheld\r\n", LONG_TIMEOUT_MS);
    raw_expect(fresh, "$5\r\nfresh\r\n", LONG_TIMEOUT_MS);
    redisContext *after = connect_port(f, port, SHORT_TIMEOUT_MS);
    assert_pong(after);
}

static void test_partition_holds_reply_in_flight(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    int fd = raw_connect(f, port);
    raw_send(fd, "PING\r\n");
    raw_expect(fd, "+PONG\r\n", LONG_TIMEOUT_MS);

    /* The request reaches the server, its reply is read back and held for 100 ms when the
     * partition starts: it must be kept, not dropped, and delivered on heal. */
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, 100000, 0), 0);
    raw_send(fd, "ECHO inflight\r\n");
    lb_proxy_stats st = wait_stats(f, link, request_delivered);
    assert_true(request_delivered(&st));
    st = wait_stats(f, link, some_bytes_held);    /* the reply, read and waiting its turn */
    assert_true(st.bytes_held > 0);
    assert_int_equal(lb_proxy_set_partition(f->proxy, link, true), 0);
    assert_true(raw_silent(fd, 300));
    st = get_stats(f, link);
    assert_int_equal(st.bytes_held, strlen("$8\r\ninflight\r\n"));
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, 0, 0), 0);
    assert_int_equal(lb_proxy_set_partition(f->proxy, link, false), 0);
    raw_expect(fd, "$8\r\ninflight\r\n", LONG_TIMEOUT_MS);
    assert_int_equal(get_stats(f, link).bytes_held, 0);
}

static void test_reset_closes_both_sides(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    redisContext *direct = connect_port(f, lb_server_port(g_server), LONG_TIMEOUT_MS);
    int base = server_clients(direct);
    redisContext *c = connect_port(f, port, LONG_TIMEOUT_MS);
    assert_pong(c);
    int fd = raw_connect(f, port);
    raw_send(fd, "PING\r\n");
    raw_expect(fd, "+PONG\r\n", LONG_TIMEOUT_MS);
    wait_server_clients(direct, base + 2);

    assert_int_equal(lb_proxy_reset(f->proxy, link), 0);
    char buf[16];
    ssize_t rc;
    int err;
    raw_recv(fd, buf, 1, LONG_TIMEOUT_MS, &rc, &err);
    assert_true(rc < 0 && err == ECONNRESET);    /* SO_LINGER 0: a reset, not a FIN */
    redisReply *r = redisCommand(c, "PING");
    assert_null(r);
    assert_true(c->err == REDIS_ERR_IO || c->err == REDIS_ERR_EOF);
    wait_server_clients(direct, base);    /* the upstream side is closed too */

    lb_proxy_stats st;
    assert_int_equal(lb_proxy_get_stats(f->proxy, link, &st), 0);
    assert_int_equal(st.resets, 2);
    assert_int_equal(st.open_connections, 0);
    redisContext *again = connect_port(f, port, LONG_TIMEOUT_MS);
    assert_pong(again);
}

/* A failover's move: the link's connections are reset and new ones reach the new target; the
 * link keeps its port and its faults. The second server is stopped at exit if an assertion
 * fails first (servers.c kills what is left). */
static void test_set_target_moves_connections(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    lb_server *other = lb_server_start(LB_PERSIST_NONE, f->err, sizeof f->err);
    if (other == NULL)
        fail_msg("lb_server_start: %s", f->err);
    redisContext *there = connect_port(f, lb_server_port(other), LONG_TIMEOUT_MS);
    freeReplyObject(redisCommand(there, "SET moved yes"));
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, 20000, 0), 0);
    redisContext *c = connect_port(f, port, LONG_TIMEOUT_MS);
    assert_pong(c);

    assert_int_equal(lb_proxy_set_target(f->proxy, link, "127.0.0.1", lb_server_port(other)), 0);
    redisReply *r = redisCommand(c, "PING");
    assert_null(r);                              /* the old connection was reset */
    redisContext *again = connect_port(f, port, LONG_TIMEOUT_MS);
    int64_t t0 = now_us();
    r = redisCommand(again, "GET moved");
    int64_t rtt = now_us() - t0;
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);   /* only the other server has the key */
    assert_string_equal(r->str, "yes");
    freeReplyObject(r);
    assert_true(rtt >= 2 * 20000);                   /* the latency stayed on the link */
    assert_int_equal(get_stats(f, link).resets, 1);
    errno = 0;
    assert_int_equal(lb_proxy_set_target(f->proxy, link, "127.0.0.1", 0), -1);
    assert_int_equal(errno, EINVAL);
    lb_server_stop(other);
}

static void test_reset_during_partition(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    int open = raw_connect(f, port);
    raw_send(open, "PING\r\n");
    raw_expect(open, "+PONG\r\n", LONG_TIMEOUT_MS);
    assert_int_equal(lb_proxy_set_partition(f->proxy, link, true), 0);
    int waiting = raw_connect(f, port);    /* in the backlog */
    assert_int_equal(lb_proxy_reset(f->proxy, link), 0);
    char buf[16];
    ssize_t rc;
    int err;
    raw_recv(open, buf, 1, LONG_TIMEOUT_MS, &rc, &err);
    assert_true(rc < 0 && err == ECONNRESET);
    raw_recv(waiting, buf, 1, LONG_TIMEOUT_MS, &rc, &err);
    assert_true(rc < 0 && err == ECONNRESET);
    assert_int_equal(lb_proxy_set_partition(f->proxy, link, false), 0);
    redisContext *c = connect_port(f, port, LONG_TIMEOUT_MS);
    assert_pong(c);
}

static void test_links_are_independent(void **state)
{
    fixture *f = *state;
    int port_a, port_b;
    int a = add_link(f, &port_a);
    add_link(f, &port_b);
    redisContext *ca = connect_port(f, port_a, SHORT_TIMEOUT_MS);
    redisContext *cb = connect_port(f, port_b, SHORT_TIMEOUT_MS);
    assert_pong(ca);
    assert_pong(cb);

    assert_int_equal(lb_proxy_set_latency(f->proxy, a, 50000, 0), 0);
    assert_true(ping_rtt_us(ca) >= 100000);
    assert_true(median_rtt_us(cb, RTT_SAMPLES) < 5000);

    assert_int_equal(lb_proxy_set_partition(f->proxy, a, true), 0);
    assert_pong(cb);
    assert_null(redisCommand(ca, "PING"));
    assert_true(median_rtt_us(cb, RTT_SAMPLES) < 5000);
}

static void test_half_close_passes_reply_then_eof(void **state)
{
    fixture *f = *state;
    int port;
    int link = add_link(f, &port);
    assert_int_equal(lb_proxy_set_latency(f->proxy, link, 5000, 0), 0);
    int fd = raw_connect(f, port);
    raw_send(fd, "PING\r\n");
    raw_expect(fd, "+PONG\r\n", LONG_TIMEOUT_MS);
    raw_send(fd, "ECHO last\r\n");
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    raw_expect(fd, "$4\r\nlast\r\n", LONG_TIMEOUT_MS);
    char buf[16];
    ssize_t rc;
    int err;
    raw_recv(fd, buf, 1, LONG_TIMEOUT_MS, &rc, &err);
    assert_int_equal(rc, 0);

    /* Both sides closed, so the proxy drops the connection. */
    assert_int_equal(wait_stats(f, link, no_open_connections).open_connections, 0);
}

static void test_unreachable_target_resets_client(void **state)
{
    fixture *f = *state;
    /* A port nothing listens on: bound, read, closed. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    assert_int_equal(bind(probe, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&sa, &len), 0);
    close(probe);
    int port;
    int link = lb_proxy_add_link(f->proxy, "localhost", ntohs(sa.sin_port), &port);
    assert_true(link >= 0);
    int fd = raw_connect(f, port);
    char buf[16];
    ssize_t rc;
    int err;
    raw_recv(fd, buf, 1, LONG_TIMEOUT_MS, &rc, &err);
    assert_true(rc < 0 && err == ECONNRESET);
    assert_int_equal(wait_stats(f, link, no_open_connections).open_connections, 0);
    assert_int_equal(lb_proxy_add_link(f->proxy, "127.0.0.1", 0, &port), -1);
}

static void test_many_links(void **state)
{
    fixture *f = *state;
    redisContext *cs[MANY_LINKS];
    for (int i = 0; i < MANY_LINKS; i++) {
        int port;
        assert_int_equal(add_link(f, &port), i);
        cs[i] = connect_port(f, port, LONG_TIMEOUT_MS);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < MANY_LINKS; i++)
            assert_pong(cs[i]);
    assert_int_equal(lb_proxy_set_partition(f->proxy, MANY_LINKS - 1, true), 0);
    assert_int_equal(lb_proxy_set_latency(f->proxy, 0, 1000, 500), 0);
    for (int i = 0; i < MANY_LINKS - 1; i++)
        assert_pong(cs[i]);
    assert_int_equal(lb_proxy_set_partition(f->proxy, MANY_LINKS, true), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_stop_with_live_connections(void **state)
{
    fixture *f = *state;
    redisContext *direct = connect_port(f, lb_server_port(g_server), LONG_TIMEOUT_MS);
    int base_clients = server_clients(direct);
    lb_proxy_stop(f->proxy);    /* the fixture's proxy: measure fds without it */
    f->proxy = NULL;
    int base_fds = count_open_fds();

    f->proxy = lb_proxy_start(SEED, f->err, sizeof f->err);
    assert_non_null(f->proxy);
    int pa, pb, pc;
    add_link(f, &pa);
    int b = add_link(f, &pb);
    int lc = add_link(f, &pc);
    int fa = raw_connect(f, pa);
    int fb = raw_connect(f, pb);
    int fc = raw_connect(f, pc);
    raw_send(fa, "PING\r\n");
    raw_expect(fa, "+PONG\r\n", LONG_TIMEOUT_MS);
    raw_send(fb, "PING\r\n");
    raw_expect(fb, "+PONG\r\n", LONG_TIMEOUT_MS);
    raw_send(fc, "PING\r\n");
    raw_expect(fc, "+PONG\r\n", LONG_TIMEOUT_MS);
    wait_server_clients(direct, base_clients + 3);
    assert_int_equal(lb_proxy_set_partition(f->proxy, b, true), 0);
    raw_send(fb, "ECHO held\r\n");                    /* bytes held at stop */
    assert_int_equal(lb_proxy_set_latency(f->proxy, lc, 200000, 0), 0);
    raw_send(fc, "ECHO delayed\r\n");                 /* chunk queued at stop */
    assert_true(wait_stats(f, lc, some_bytes_held).bytes_held > 0);

    lb_proxy_stop(f->proxy);
    f->proxy = NULL;
    int fds[] = { fa, fb, fc };
    for (int i = 0; i < 3; i++) {
        char buf[64];
        ssize_t rc;
        int err;
        raw_recv(fds[i], buf, sizeof buf - 1, LONG_TIMEOUT_MS, &rc, &err);
        assert_true(rc <= 0);    /* closed: EOF (or a reset) */
    }
    wait_server_clients(direct, base_clients);
    /* The fixture still holds the three client sockets and the direct context. */
    assert_int_equal(count_open_fds(), base_fds + 3);
}

int main(void)
{
    alarm(TEST_TIME_LIMIT_S);
    signal(SIGPIPE, SIG_IGN);    /* a write to a reset socket must fail, not kill the test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zero_latency_relays_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_latency_overhead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_accuracy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jitter_bounds_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_holds_then_delivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_holds_reply_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_closes_both_sides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_target_moves_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_during_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_passes_reply_then_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_target_resets_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_live_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
