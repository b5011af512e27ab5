/* calibrate.c -- the simulator's model, measured (calibrate.h). */
#include "calibrate.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "endpoint.h"
#include "run.h"
#include "servers.h"

#define CONNS 50          /* connections in a burst, one command in flight on each */
#define ROUNDS 300        /* rounds of a burst: 15 000 commands */
#define REPEATS 3         /* bursts of each kind: the least CPU per command of them is kept */
#define PINGS 2000

static const char *const keys[] = {"rtt_us", "server_us_per_command", "script_us_per_call",
                                   "client_us_per_command", "client_cores", "server_hz",
                                   "cores"};

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static double self_cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

/* The server's CPU seconds so far (INFO cpu: used_cpu_sys + used_cpu_user); -1 on failure. */
static double server_cpu_s(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO cpu");
    double sum = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *s = strstr(r->str, "used_cpu_sys:"), *u = strstr(r->str, "used_cpu_user:");
        if (s && u)
            sum = atof(s + strlen("used_cpu_sys:")) + atof(u + strlen("used_cpu_user:"));
    }
    freeReplyObject(r);
    return sum;
}

typedef struct {
    redisContext *c[CONNS];
    redisContext *admin;
    char err[512];
} bench;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The median round trip of a lone PING, in ns, waited for as an event loop waits: the process
 * sleeps in poll(2) until the reply is there, so the round trip includes the wake-up that a
 * lone client on the loop driver pays (on a virtual machine, most of it). */
static int64_t ping_ns(bench *b)
{
    static int64_t t[PINGS];
    redisContext *c = b->admin;
    for (int i = 0; i < PINGS; i++) {
        int64_t t0 = mono_ns();
        redisAppendCommand(c, "PING");
        int done = 0;
        while (!done)
            if (redisBufferWrite(c, &done) != REDIS_OK)
                return -1;
        redisReply *r = NULL;
        for (;;) {
            if (redisGetReplyFromReader(c, (void **)&r) != REDIS_OK)
                return -1;
            if (r)
                break;
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            if (poll(&p, 1, 5000) != 1 || redisBufferRead(c) != REDIS_OK)
                return -1;
        }
        t[i] = mono_ns() - t0;
        bool pong = r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!pong)
            return -1;
    }
    qsort(t, PINGS, sizeof t[0], cmp_i64);
    return t[PINGS / 2];
}

/* Scripts for the per-call cost: an EVALSHA making no redis.call, and one making ten of the
 * kinds the lock's scripts make -- TIME, a sorted set of waiters (49 members, as with 50
 * clients on a key), a lease with PX, a signal list -- and leaving the keys as it found them. */
#define SCRIPT0 "return 0"
#define SCRIPT10                                                                               \
    "local t = redis.call('TIME') "                                                            \
    "redis.call('ZADD', KEYS[1], t[1], ARGV[1]) "                                              \
    "redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t[1]) "                                     \
    "redis.call('ZRANGE', KEYS[1], 0, 0) "                                                     \
    "redis.call('ZREM', KEYS[1], ARGV[1]) "                                                    \
    "redis.call('SET', KEYS[2], ARGV[1], 'PX', 60000) "                                        \
    "redis.call('GET', KEYS[2]) "                                                              \
    "redis.call('RPUSH', KEYS[3], '1') "                                                       \
    "redis.call('PEXPIRE', KEYS[3], 60000) "                                                   \
    "redis.call('DEL', KEYS[2], KEYS[3]) "                                                     \
    "return 0"
static char sha0[41], sha10[41];

/* A burst: ROUNDS rounds, each writing one command on every connection, then reading every
 * reply. script 0: commands as a lock's alternate, SET key x NX PX 10000, then DEL key; script
 * 1 or 10: EVALSHA of a script making none or ten redis.call. The server's and this process's
 * CPU per command over the burst. */
static int burst(bench *b, int script, double *server_us, double *client_us)
{
    double s0 = server_cpu_s(b->admin), c0 = self_cpu_s();
    long commands = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < CONNS; i++) {
            char key[32];
            snprintf(key, sizeof key, "lockbench:calibrate:%d", i);
            if (script)
                redisAppendCommand(b->c[i], "EVALSHA %s 3 %s:z %s:s %s:l m%d",
                                   script == 10 ? sha10 : sha0, key, key, key, i);
            else if (round % 2 == 0)
                redisAppendCommand(b->c[i], "SET %s x NX PX 10000", key);
            else
                redisAppendCommand(b->c[i], "DEL %s", key);
        }
        for (int i = 0; i < CONNS; i++) {
            redisReply *r = NULL;
            if (redisGetReply(b->c[i], (void **)&r) != REDIS_OK || !r ||
                r->type == REDIS_REPLY_ERROR) {
                snprintf(b->err, sizeof b->err, "calibration burst: %s",
                         r && r->type == REDIS_REPLY_ERROR ? r->str : b->c[i]->errstr);
                freeReplyObject(r);
                return -1;
            }
            freeReplyObject(r);
            commands++;
        }
    }
    double s1 = server_cpu_s(b->admin), c1 = self_cpu_s();
    if (s0 < 0 || s1 < 0) {
        snprintf(b->err, sizeof b->err, "INFO cpu gave no figures");
        return -1;
    }
    *server_us = (s1 - s0) * 1e6 / (double)commands;
    *client_us = (c1 - c0) * 1e6 / (double)commands;
    return 0;
}

/* The least CPU per command, the server's and this process's, over REPEATS bursts: on a shared
 * machine other work only ever adds to CPU time (caches, a busy sibling core), so the quietest
 * burst is the closest to the cost itself. */
static int burst_min(bench *b, int script, double *server_us, double *client_us)
{
    *server_us = *client_us = INFINITY;
    for (int i = 0; i < REPEATS; i++) {
        double srv, cli;
        if (burst(b, script, &srv, &cli) < 0)
            return -1;
        *server_us = fmin(*server_us, srv);
        *client_us = fmin(*client_us, cli);
    }
    return 0;
}

static long server_hz(redisContext *c)
{
    redisReply *r = redisCommand(c, "CONFIG GET hz");
    long hz = 10;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->str)
        hz = atol(r->element[1]->str);
    freeReplyObject(r);
    return hz > 0 ? hz : 10;
}

static const char *redis_version(redisContext *c, char *buf, size_t len)
{
    redisReply *r = redisCommand(c, "INFO server");
    snprintf(buf, len, "unknown");
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *v = strstr(r->str, "redis_version:");
        if (v)
            sscanf(v + strlen("redis_version:"), "%63[^\r\n]", buf);
    }
    freeReplyObject(r);
    return buf;
}

static int usage(const char *msg, const char *arg)
{
    fprintf(stderr, "lockbench calibrate: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\nusage: lockbench calibrate [--redis URL] [--out FILE]\n");
    return LB_EXIT_USAGE;
}

static void close_bench(bench *b)
{
    for (int i = 0; i < CONNS; i++)
        if (b->c[i])
            redisFree(b->c[i]);
    if (b->admin)
        redisFree(b->admin);
}

int lb_calibrate_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'r'}, {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *out = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'r')
            url = optarg;
        else if (ch == 'o')
            out = optarg;
        else
            return usage("unknown option%s", "");
    }
    if (optind < argc)
        return usage("unexpected argument '%s'", argv[optind]);
    char err[512];
    if (url && lb_endpoint_check(url, err, sizeof err) < 0)
        return usage("--redis: %s", err);
    lb_server *managed = NULL;
    if (!url) {
        if (!(managed = lb_server_start(LB_PERSIST_NONE, err, sizeof err))) {
            fprintf(stderr, "lockbench calibrate: %s\n", err);
            return LB_EXIT_ENV;
        }
        url = lb_server_url(managed);
    }
    bench b = {0};
    int rc = LB_EXIT_ENV;
    if (!(b.admin = lb_endpoint_connect(url, 2000, b.err, sizeof b.err)))
        goto done;
    for (int i = 0; i < CONNS; i++)
        if (!(b.c[i] = lb_endpoint_connect(url, 2000, b.err, sizeof b.err)))
            goto done;
    struct timeval tv = {.tv_sec = 5};
    redisSetTimeout(b.admin, tv);
    for (int i = 0; i < CONNS; i++)
        redisSetTimeout(b.c[i], tv);
    bool loaded = true;
    for (int k = 0; k < 2 && loaded; k++) {
        redisReply *r = redisCommand(b.admin, "SCRIPT LOAD %s", k ? SCRIPT10 : SCRIPT0);
        loaded = r && r->type == REDIS_REPLY_STRING && r->len == 40;
        if (loaded)
            memcpy(k ? sha10 : sha0, r->str, 41);
        else
            snprintf(b.err, sizeof b.err, "SCRIPT LOAD: %s",
                     r && r->type == REDIS_REPLY_ERROR ? r->str : b.admin->errstr);
        freeReplyObject(r);
    }
    for (int i = 0; loaded && i < CONNS; i++) {  /* the waiters' sorted sets */
        for (int m = 0; m < 49; m++)
            redisAppendCommand(b.admin, "ZADD lockbench:calibrate:%d:z %d w%d", i, m, m);
        for (int m = 0; m < 49 && loaded; m++) {
            redisReply *r = NULL;
            loaded = redisGetReply(b.admin, (void **)&r) == REDIS_OK && r &&
                     r->type == REDIS_REPLY_INTEGER;
            freeReplyObject(r);
        }
        if (!loaded)
            snprintf(b.err, sizeof b.err, "ZADD: %s", b.admin->errstr);
    }
    if (!loaded)
        goto done;
    double warm_s, warm_c, srv, cli, srv_script, cli_script, srv_script0, cli_script0;
    int64_t ping;
    if (burst(&b, 0, &warm_s, &warm_c) < 0 || (ping = ping_ns(&b)) < 0 ||
        burst_min(&b, 0, &srv, &cli) < 0 || burst_min(&b, 1, &srv_script0, &cli_script0) < 0 ||
        burst_min(&b, 10, &srv_script, &cli_script) < 0) {
        if (!b.err[0])
            snprintf(b.err, sizeof b.err, "PING: %s", b.admin->errstr);
        goto done;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long cores = cpus > 1 ? cpus / 2 : 1;   /* the loop driver's threads (runloop.c) */
    double rtt = (double)ping / 1000.0 - srv - cli;
    lb_sim m = {.rtt_us = rtt < 1 ? 1 : (int64_t)(rtt + 0.5),
                .server_us_per_command = srv < 1 ? 1 : (int64_t)(srv + 0.5),
                .script_us_per_call = srv_script > srv_script0
                                          ? (int64_t)((srv_script - srv_script0) / 10 + 0.5) : 0,
                .client_us_per_command = cli < 1 ? 1 : (int64_t)(cli + 0.5),
                .client_cores = cores, .server_hz = server_hz(b.admin),
                .cores = cpus > 0 ? cpus : 1};  /* the clients and the servers share them */
    char version[64];
    json_t *doc = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:f, s:f, s:f, s:f, s:f, s:i, s:i, s:i, s:s, s:i}}",
        keys[0], (json_int_t)m.rtt_us, keys[1], (json_int_t)m.server_us_per_command,
        keys[2], (json_int_t)m.script_us_per_call, keys[3], (json_int_t)m.client_us_per_command,
        keys[4], (json_int_t)m.client_cores, keys[5], (json_int_t)m.server_hz,
        keys[6], (json_int_t)m.cores, "measured",
        "ping_rtt_us", (double)ping / 1000.0, "server_us_per_command", srv,
        "server_us_per_script_no_calls", srv_script0,
        "server_us_per_script_ten_calls", srv_script, "client_us_per_command", cli, "connections", CONNS, "commands_per_burst",
        CONNS * ROUNDS, "bursts_kept_least_of", REPEATS, "redis_version", redis_version(b.admin, version, sizeof version),
        "cpus", (int)cpus);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!text) {
        snprintf(b.err, sizeof b.err, "out of memory");
        goto done;
    }
    size_t len = strlen(text);
    if (out) {
        char *line = malloc(len + 2);
        if (line) {
            memcpy(line, text, len);
            line[len] = '\n';
        }
        if (!line || lb_atomic_write(out, line, len + 1) < 0) {
            fprintf(stderr, "lockbench calibrate: %s: %s\n", out, strerror(errno));
            free(line);
            free(text);
            close_bench(&b);
            lb_server_stop(managed);
            return LB_EXIT_USAGE;
        }
        free(line);
        fprintf(stderr, "calibration: %s\n", out);
    } else {
        printf("%s\n", text);
    }
    free(text);
    rc = LB_EXIT_OK;
done:
    for (int i = 0; b.admin && i < CONNS; i++) {  /* a server of the user's is left as found */
        redisReply *r = redisCommand(b.admin, "DEL lockbench:calibrate:%d lockbench:calibrate:%d:z "
                                     "lockbench:calibrate:%d:s lockbench:calibrate:%d:l", i, i, i, i);
        freeReplyObject(r);
    }
    if (rc != LB_EXIT_OK)
        fprintf(stderr, "lockbench calibrate: %s: %s\n", url, b.err[0] ? b.err : "failed");
    close_bench(&b);
    lb_server_stop(managed);
    return rc;
}

int lb_calibration_load(const char *path, lb_sim *m, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return -1;
    }
    int64_t *dst[] = {&m->rtt_us, &m->server_us_per_command, &m->script_us_per_call,
                      &m->client_us_per_command, &m->client_cores, &m->server_hz, &m->cores};
    static const int64_t lo[] = {0, 0, 0, 0, 1, 1, 0}, hi[] = {1000000000, 1000000000, 1000000000,
                                                               1000000000, 1024, 500, 1024};
    int rc = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && rc == 0; i++) {
        json_t *v = json_object_get(doc, keys[i]);
        if (!json_is_integer(v) || json_integer_value(v) < lo[i] || json_integer_value(v) > hi[i]) {
            snprintf(err, errlen, "%s: %s: %s", path, keys[i],
                     v ? "must be an integer in range" : "missing");
            rc = -1;
        } else {
            *dst[i] = json_integer_value(v);
        }
    }
    json_decref(doc);
    return rc;
}
