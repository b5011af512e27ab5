/* test_sim_diff.c -- the modelled Redis against a real redis-server: the same random command
 * sequences go to both, and every reply must match.
 *
 * The sequences (seeded) use the lock command set on a small key space, so types collide: strings
 * (GET, SET with NX/XX/PX/EX/GET/KEEPTTL, SETNX, INCR, DEL, EXISTS, TYPE), expiry (PTTL, TTL,
 * PEXPIRE with NX/XX/GT/LT, PERSIST), lists (RPUSH, LPUSH, LPOP, RPOP, LLEN, LRANGE, LREM, BLPOP
 * where it returns at once), sorted sets (ZADD with options, ZREM, ZRANGE by rank and score,
 * ZRANGEBYSCORE, ZSCORE, ZCARD, ZRANK), TIME, WAIT where it returns at once (no replicas on
 * either side), the core's own scripts by EVAL and EVALSHA (and
 * SCRIPT LOAD/EXISTS, NOSCRIPT), WATCH/MULTI/EXEC/DISCARD/UNWATCH with a second connection
 * changing watched keys, and some bad commands (arity, syntax, unknown).
 *
 * Kept deterministic: every TTL is >= 60 s or <= 1 ms, and a command that set a short one is
 * followed by a pause (the model's clock moves with the real one: it runs on CLOCK_REALTIME);
 * active expiry is off on the real server (DEBUG SET-ACTIVE-EXPIRE 0); PTTL and TTL are compared
 * within the real time between the two executions, TIME to the second; errors by their first
 * word. The heartbeat sets of the FIFO scripts hold scores derived from TIME, so they have keys
 * of their own that the sequences never read in score order. A mismatch prints the seed and the
 * step; SIM_DIFF_SEED=N runs that seed alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "servers.h"
#include "sim/redis.h"

#define SEEDS 8
#define STEPS 600

/* ---- replies as values both sides convert to ---------------------------------------------- */

typedef struct rv {
    int type;  /* dlock_reply_type */
    long long i;
    char *s;
    size_t len, n;
    struct rv *el;
} rv;

static void rv_free(rv *v)
{
    for (size_t i = 0; i < v->n; i++)
        rv_free(&v->el[i]);
    free(v->el);
    free(v->s);
    memset(v, 0, sizeof *v);
}

static char *dup_bytes(const char *p, size_t len)
{
    char *d = malloc(len + 1);
    memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

static void rv_from_model(rv *v, const dlock_reply *r)
{
    memset(v, 0, sizeof *v);
    v->type = r->type;
    v->i = r->integer;
    if (r->type == DLOCK_REPLY_STRING || r->type == DLOCK_REPLY_STATUS ||
        r->type == DLOCK_REPLY_ERROR) {
        v->s = dup_bytes(r->str, r->len);
        v->len = r->len;
    }
    if (r->type == DLOCK_REPLY_ARRAY) {
        v->n = r->elements;
        v->el = calloc(v->n ? v->n : 1, sizeof *v->el);
        for (size_t i = 0; i < v->n; i++)
            rv_from_model(&v->el[i], &r->element[i]);
    }
}

static void rv_from_real(rv *v, const redisReply *r)
{
    memset(v, 0, sizeof *v);
    switch (r->type) {
    case REDIS_REPLY_STRING:
        v->type = DLOCK_REPLY_STRING;
        break;
    case REDIS_REPLY_STATUS:
        v->type = DLOCK_REPLY_STATUS;
        break;
    case REDIS_REPLY_ERROR:
        v->type = DLOCK_REPLY_ERROR;
        break;
    case REDIS_REPLY_INTEGER:
        v->type = DLOCK_REPLY_INTEGER;
        v->i = r->integer;
        return;
    case REDIS_REPLY_NIL:
        v->type = DLOCK_REPLY_NIL;
        return;
    case REDIS_REPLY_ARRAY:
        v->type = DLOCK_REPLY_ARRAY;
        v->n = r->elements;
        v->el = calloc(v->n ? v->n : 1, sizeof *v->el);
        for (size_t i = 0; i < v->n; i++)
            rv_from_real(&v->el[i], r->element[i]);
        return;
    default:
        v->type = 0;
        return;
    }
    v->s = dup_bytes(r->str, r->len);
    v->len = r->len;
}

static size_t rv_text(char *out, size_t cap, const rv *v)
{
    size_t n = 0;
#define PUT(...) (n += n < cap ? (size_t)snprintf(out + n, cap - n, __VA_ARGS__) : 0)
    switch (v->type) {
    case DLOCK_REPLY_STRING: PUT("\"%s\"", v->s); break;
    case DLOCK_REPLY_STATUS: PUT("+%s", v->s); break;
    case DLOCK_REPLY_ERROR: PUT("-%s", v->s); break;
    case DLOCK_REPLY_INTEGER: PUT(":%lld", v->i); break;
    case DLOCK_REPLY_NIL: PUT("(nil)"); break;
    case DLOCK_REPLY_ARRAY:
        PUT("[");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                PUT(",");
            if (n < cap)
                n += rv_text(out + n, cap - n, &v->el[i]);
        }
        PUT("]");
        break;
    default: PUT("?"); break;
    }
#undef PUT
    return n;
}

static size_t first_word(const char *s)
{
    size_t n = 0;
    while (s[n] && s[n] != ' ')
        n++;
    return n;
}

static bool is_time_reply(const rv *v)
{
    return v->type == DLOCK_REPLY_ARRAY && v->n == 2 && v->el[0].type == DLOCK_REPLY_STRING &&
           v->el[1].type == DLOCK_REPLY_STRING && atoll(v->el[0].s) > 1000000000LL;
}

/* Equal, with errors by class; loose (the command read a TTL or the clock): integers within
 * tol, TIME to the second. */
static bool rv_same(const rv *a, const rv *b, bool loose, long long tol)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case DLOCK_REPLY_ERROR: {
        size_t na = first_word(a->s), nb = first_word(b->s);
        return na == nb && memcmp(a->s, b->s, na) == 0;
    }
    case DLOCK_REPLY_STRING:
    case DLOCK_REPLY_STATUS:
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case DLOCK_REPLY_INTEGER:
        return a->i == b->i || (loose && a->i >= 0 && b->i >= 0 && llabs(a->i - b->i) <= tol);
    case DLOCK_REPLY_NIL:
        return true;
    case DLOCK_REPLY_ARRAY:
        if (loose && is_time_reply(a) && is_time_reply(b))
            return llabs(atoll(a->el[0].s) - atoll(b->el[0].s)) <= 2;
        if (a->n != b->n)
            return false;
        for (size_t i = 0; i < a->n; i++)
            if (!rv_same(&a->el[i], &b->el[i], loose, tol))
                return false;
        return true;
    }
    return false;
}

/* ---- the two sides ------------------------------------------------------------------------ */

typedef struct side_model {
    sim_server *s;
    sim_conn *c[2];
    int owner[2];
    rv got;
    bool have;
    int64_t last_us;
} side_model;

static void on_model_reply(void *ctx, void *owner, int64_t at_us, const dlock_reply *r)
{
    side_model *m = ctx;
    assert_false(m->have);
    rv_from_model(&m->got, r);
    m->have = true;
    m->last_us = at_us;
}

static int64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The command on the model at the real clock's now; false when the model gave no reply. */
static bool model_cmd(side_model *m, int conn, int argc, const char **argv, const size_t *len,
                      rv *out)
{
    int64_t now = realtime_us();
    if (now <= m->last_us)
        now = m->last_us + 1;
    m->have = false;
    sim_conn_push(m->c[conn], now, argc, argv, len);
    for (int guard = 0; !m->have && guard < 1000; guard++) {
        int64_t next = sim_server_next_us(m->s);
        if (next == INT64_MAX || next > now + 2000000)
            break;  /* it would block */
        sim_server_run(m->s, next);
    }
    if (!m->have)
        return false;
    *out = m->got;
    memset(&m->got, 0, sizeof m->got);
    return true;
}

typedef struct fixture {
    lb_server *server;
    redisContext *real[2];
    side_model model;
    char err[512];
} fixture;

static redisReply *real_cmd(fixture *f, int conn, int argc, const char **argv, const size_t *len)
{
    return redisCommandArgv(f->real[conn], argc, argv, len);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    f->server = lb_server_start(LB_PERSIST_NONE, f->err, sizeof f->err);
    if (!f->server) {
        fprintf(stderr, "# cannot start redis-server: %s\n", f->err);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        struct timeval tv = {2, 0};
        f->real[i] = redisConnectWithTimeout("127.0.0.1", lb_server_port(f->server), tv);
        if (!f->real[i] || f->real[i]->err)
            return -1;
        redisSetTimeout(f->real[i], tv);
    }
    freeReplyObject(redisCommand(f->real[0], "DEBUG SET-ACTIVE-EXPIRE 0"));
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 2; i++)
        if (f->real[i])
            redisFree(f->real[i]);
    lb_server_stop(f->server);
    free(f);
    return 0;
}

static void model_start(fixture *f)
{
    sim_server_params p;
    sim_server_params_init(&p);
    p.unix_epoch_us = 0;  /* virtual time is CLOCK_REALTIME: TIME and expiry follow the real one */
    side_model *m = &f->model;
    memset(m, 0, sizeof *m);
    m->s = sim_server_new(&p, on_model_reply, m);
    assert_non_null(m->s);
    for (int i = 0; i < 2; i++) {
        m->owner[i] = i;
        m->c[i] = sim_conn_open(m->s, &m->owner[i]);
    }
    m->last_us = realtime_us();
}

static void model_stop(fixture *f)
{
    sim_server_free(f->model.s);
    f->model.s = NULL;
}

/* ---- the random sequences ----------------------------------------------------------------- */

typedef struct gen {
    uint64_t rng;
    char buf[64][128];
    const char *argv[64];
    size_t len[64];
    int argc;
    bool short_ttl;   /* a TTL <= 1 ms went out: pause after */
    bool loose;       /* the reply reads a TTL or the clock */
    int conn;
    bool in_multi;
    bool tx_loose, tx_short;
    char blpop_key[32];  /* a list the last step found non-empty: BLPOP returns at once */
} gen;

static uint64_t rnd(gen *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

static int pick(gen *g, int n)
{
    return (int)(rnd(g) % (uint64_t)n);
}

static bool chance(gen *g, int percent)
{
    return pick(g, 100) < percent;
}

static void arg(gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->buf[g->argc], sizeof g->buf[0], fmt, ap);
    va_end(ap);
    g->argv[g->argc] = g->buf[g->argc];
    g->len[g->argc] = strlen(g->buf[g->argc]);
    g->argc++;
}

/* An argument too long for the buffers (a script's text): by reference. */
static void arg_ref(gen *g, const char *text)
{
    g->argv[g->argc] = text;
    g->len[g->argc] = strlen(text);
    g->argc++;
}

static const char *const keys[] = {"k0", "k1", "k2", "k3", "k4", "sig:t1", "sig:t2"};
#define NKEYS ((int)(sizeof keys / sizeof keys[0]))
static const char *const hb_keys[] = {"hb0", "hb1"};

static const char *key(gen *g)
{
    return keys[pick(g, NKEYS)];
}

static const char *any_key(gen *g)  /* heartbeat sets included */
{
    return chance(g, 15) ? hb_keys[pick(g, 2)] : key(g);
}

static const char *value(gen *g)
{
    static const char *const v[] = {"v0", "v1", "t1", "t2", "0", "1", "7", "-3", "12",
                                    "9223372036854775807", "abc", "", "2.5"};
    return v[pick(g, (int)(sizeof v / sizeof v[0]))];
}

/* A TTL in ms (or s): long, short (pause after), or bad. */
static void ttl_arg(gen *g, bool seconds)
{
    int k = pick(g, 10);
    if (k < 6) {
        arg(g, "%d", seconds ? 60 + pick(g, 60) : 60000 + pick(g, 60000));
    } else if (k < 8 && !seconds) {
        arg(g, "1");
        g->short_ttl = true;
    } else {
        static const char *const bad[] = {"0", "-5", "x"};
        arg(g, "%s", bad[pick(g, 3)]);
        if (!seconds)
            g->short_ttl = true;  /* PEXPIRE 0 / -5 delete now: harmless to pause */
    }
}

static void score(gen *g)
{
    static const char *const s[] = {"1", "2", "2.5", "-3", "10", "0", "1e3", "+inf", "-inf",
                                    "abc", "(1"};
    arg(g, "%s", s[pick(g, (int)(sizeof s / sizeof s[0]))]);
}

static void index_arg(gen *g)
{
    arg(g, "%d", pick(g, 7) - 3);
}

static void gen_string_cmd(gen *g)
{
    switch (pick(g, 10)) {
    case 0:
    case 1:
        arg(g, "GET");
        arg(g, "%s", any_key(g));
        break;
    case 2:
    case 3: {
        arg(g, "SET");
        arg(g, "%s", key(g));
        arg(g, "%s", value(g));
        int opts = pick(g, 4);
        for (int i = 0; i < opts; i++) {
            int o = pick(g, 7);
            if (o == 0)
                arg(g, "NX");
            else if (o == 1)
                arg(g, "XX");
            else if (o == 2)
                arg(g, "GET");
            else if (o == 3)
                arg(g, "KEEPTTL");
            else if (o == 4 || o == 5) {
                arg(g, "PX");
                ttl_arg(g, false);
            } else {
                arg(g, "EX");
                ttl_arg(g, true);
            }
        }
        break;
    }
    case 4:
        arg(g, "SETNX");
        arg(g, "%s", key(g));
        arg(g, "%s", value(g));
        break;
    case 5:
        arg(g, "INCR");
        arg(g, "%s", key(g));
        break;
    case 6:
        arg(g, "DEL");
        for (int i = pick(g, 2); i >= 0; i--)
            arg(g, "%s", any_key(g));
        break;
    case 7:
        arg(g, "EXISTS");
        for (int i = pick(g, 3); i >= 0; i--)
            arg(g, "%s", any_key(g));
        break;
    case 8:
        arg(g, "TYPE");
        arg(g, "%s", any_key(g));
        break;
    default:
        arg(g, "SETNX");
        arg(g, "%s", key(g));
        arg(g, "%s", value(g));
        break;
    }
}

static void gen_expiry_cmd(gen *g)
{
    switch (pick(g, 5)) {
    case 0:
    case 1:
        arg(g, "%s", chance(g, 70) ? "PTTL" : "TTL");
        arg(g, "%s", any_key(g));
        g->loose = true;
        break;
    case 2:
    case 3: {
        bool secs = chance(g, 20);
        arg(g, secs ? "EXPIRE" : "PEXPIRE");
        arg(g, "%s", any_key(g));
        ttl_arg(g, secs);
        if (chance(g, 30)) {
            static const char *const o[] = {"NX", "XX", "GT", "LT", "ZZ"};
            arg(g, "%s", o[pick(g, 5)]);
        }
        break;
    }
    default:
        arg(g, "PERSIST");
        arg(g, "%s", any_key(g));
        break;
    }
}

static void gen_list_cmd(gen *g)
{
    switch (pick(g, 9)) {
    case 0:
    case 1:
        arg(g, chance(g, 50) ? "RPUSH" : "LPUSH");
        arg(g, "%s", key(g));
        for (int i = pick(g, 3); i >= 0; i--)
            arg(g, "%s", value(g));
        break;
    case 2:
        arg(g, chance(g, 50) ? "LPOP" : "RPOP");
        arg(g, "%s", key(g));
        if (chance(g, 30))
            arg(g, "%d", pick(g, 4) - 1);
        break;
    case 3:
    case 7:  /* and a BLPOP next when the list has elements */
        arg(g, "LLEN");
        arg(g, "%s", chance(g, 90) ? key(g) : any_key(g));
        break;
    case 4:
        arg(g, "LRANGE");
        arg(g, "%s", key(g));
        index_arg(g);
        index_arg(g);
        break;
    case 5:
        arg(g, "LREM");
        arg(g, "%s", key(g));
        arg(g, "%d", pick(g, 5) - 2);
        arg(g, "%s", value(g));
        break;
    default:  /* inside MULTI, or with a bad timeout: it returns at once */
        arg(g, "BLPOP");
        arg(g, "%s", key(g));
        if (chance(g, 30))
            arg(g, "%s", key(g));
        arg(g, "%s", g->in_multi ? "0" : chance(g, 50) ? "-1" : "x");
        break;
    }
}

static void gen_zset_cmd(gen *g)
{
    switch (pick(g, 9)) {
    case 0:
    case 1: {
        arg(g, "ZADD");
        arg(g, "%s", key(g));
        static const char *const o[] = {"NX", "XX", "GT", "LT", "CH", "INCR"};
        for (int i = pick(g, 3) - 1; i > 0; i--)
            arg(g, "%s", o[pick(g, 6)]);
        for (int i = pick(g, 2); i >= 0; i--) {
            score(g);
            arg(g, "%s", value(g));
        }
        break;
    }
    case 2:
        arg(g, "ZREM");
        arg(g, "%s", key(g));
        arg(g, "%s", value(g));
        break;
    case 3: {
        arg(g, "ZRANGE");
        arg(g, "%s", key(g));
        bool byscore = chance(g, 40);
        if (byscore) {
            score(g);
            score(g);
            arg(g, "BYSCORE");
        } else {
            index_arg(g);
            index_arg(g);
        }
        if (chance(g, 30))
            arg(g, "REV");
        if (byscore && chance(g, 30)) {
            arg(g, "LIMIT");
            arg(g, "%d", pick(g, 3));
            arg(g, "%d", pick(g, 4) - 1);
        }
        if (chance(g, 50))
            arg(g, "WITHSCORES");
        break;
    }
    case 4:
        arg(g, "ZRANGEBYSCORE");
        arg(g, "%s", key(g));
        score(g);
        score(g);
        if (chance(g, 50))
            arg(g, "WITHSCORES");
        break;
    case 5:
        arg(g, "ZSCORE");
        arg(g, "%s", key(g));
        arg(g, "%s", value(g));
        break;
    case 6:
        arg(g, "ZCARD");
        arg(g, "%s", any_key(g));
        break;
    case 7:
        arg(g, "ZRANK");
        arg(g, "%s", key(g));
        arg(g, "%s", value(g));
        break;
    default:
        arg(g, "ZADD");
        arg(g, "%s", key(g));
        score(g);
        arg(g, "%s", value(g));
        break;
    }
}

static const char *token(gen *g)
{
    static const char *const t[] = {"t1", "t2", "t3", "1", "2", "5"};
    return t[pick(g, 6)];
}

static void gen_script_cmd(gen *g)
{
    static const dlock__script *const scripts[] = {
        &dlock__script_release, &dlock__script_extend, &dlock__script_acquire_fenced,
        &dlock__script_fenced_set, &dlock__script_notify_release, &dlock__script_fifo_acquire,
        &dlock__script_fifo_release, &dlock__script_fenced_get};
    int which = pick(g, 8);
    const dlock__script *s = scripts[which];
    bool by_sha = chance(g, 50);
    arg(g, by_sha ? "EVALSHA" : "EVAL");
    arg_ref(g, by_sha ? s->sha : s->text);
    int numkey_arg = g->argc;
    arg(g, "0");
    int nkeys = 0;
    switch (which) {
    case 0:  /* release: lock; token */
        arg(g, "%s", any_key(g)), nkeys = 1;
        arg(g, "%s", token(g));
        break;
    case 1:  /* extend: lock; token, ttl */
    case 2:  /* acquire_fenced: lock, fence; token, ttl */
        arg(g, "%s", key(g)), nkeys = 1;
        if (which == 2)
            arg(g, "%s", any_key(g)), nkeys = 2;
        arg(g, "%s", token(g));
        if (chance(g, 20))
            arg(g, "0");
        else
            ttl_arg(g, false);
        break;
    case 3:  /* fenced_set: data, fence, owner; token, value, owner ("" = not named) */
        arg(g, "%s", key(g)), arg(g, "%s", any_key(g)), arg(g, "%s", any_key(g)), nkeys = 3;
        arg(g, "%s", token(g));
        arg(g, "%s", value(g));
        arg(g, "%s", chance(g, 30) ? "" : token(g));
        break;
    case 4:  /* notify_release: lock, signal; token */
        arg(g, "%s", key(g)), arg(g, "%s", key(g)), nkeys = 2;
        arg(g, "%s", token(g));
        break;
    case 5: {  /* fifo_acquire: lock, queue, heartbeats, counter, fence, signal */
        arg(g, "%s", key(g)), arg(g, "%s", key(g)), arg(g, "%s", hb_keys[pick(g, 2)]);
        arg(g, "%s", key(g)), arg(g, "%s", key(g)), arg(g, "%s", key(g)), nkeys = 6;
        const char *t = token(g);
        static const char *const lease[] = {"60000", "0", "1"};
        int l = pick(g, 3);
        int fence = pick(g, 2);
        arg(g, "%s", t);
        arg(g, "%s:%s:%d", t, lease[l], fence);
        if (l == 2)
            g->short_ttl = true;
        arg(g, "%s", lease[l]);
        if (chance(g, 80)) {
            arg(g, "%d", 60000 + pick(g, 1000));
        } else {
            arg(g, "%d", pick(g, 2));
            g->short_ttl = true;
        }
        arg(g, "%d", fence);
        break;
    }
    case 7:  /* fenced_get: data, fence, owner; token, reader */
        arg(g, "%s", key(g)), arg(g, "%s", any_key(g)), arg(g, "%s", any_key(g)), nkeys = 3;
        arg(g, "%s", token(g));
        arg(g, "%s", chance(g, 20) ? "" : token(g));
        break;
    default: {  /* fifo_release: lock, queue, heartbeats, fence; token, member, prefix, bound */
        arg(g, "%s", key(g)), arg(g, "%s", key(g)), arg(g, "%s", hb_keys[pick(g, 2)]);
        arg(g, "%s", key(g)), nkeys = 4;
        const char *t = token(g);
        arg(g, "%s", t);
        arg(g, "%s:60000:%d", t, pick(g, 2));
        arg(g, "sig:");
        arg(g, "%s", chance(g, 80) ? "60000" : "1");
        g->short_ttl = true;  /* a hand-over lease can be as short as a member's ttl */
        break;
    }
    }
    if (chance(g, 8)) {  /* keys and arguments shifted: a token may land where a ttl goes */
        nkeys = chance(g, 40) ? g->argc - numkey_arg : nkeys > 0 ? nkeys - 1 : 0;
        g->short_ttl = true;
    }
    snprintf(g->buf[numkey_arg], sizeof g->buf[0], "%d", nkeys);
    g->len[numkey_arg] = strlen(g->buf[numkey_arg]);
}

/* WAIT where it answers at once (the real server has no replica either): none to wait for,
 * inside MULTI, or a bad argument. */
static void gen_wait_cmd(gen *g)
{
    static const char *const n[] = {"0", "-1", "x", "1"}, *const t[] = {"0", "5", "-1", "1.5"};
    int which = pick(g, 4);
    int when = pick(g, 4);
    bool blocks = which == 3 && when < 2;  /* one replica, a valid timeout */
    if (blocks && !(g->in_multi && g->conn == 0))
        which = 0;  /* outside a transaction it would block for its timeout */
    arg(g, "WAIT");
    arg(g, "%s", n[which]);
    arg(g, "%s", t[when]);
}

static void gen_bad_cmd(gen *g)
{
    switch (pick(g, 6)) {
    case 4:
        gen_wait_cmd(g);
        break;
    case 0:
        arg(g, "GET"), arg(g, "k0"), arg(g, "k1");
        break;
    case 1:
        arg(g, "SET"), arg(g, "k0"), arg(g, "v"), arg(g, "NX"), arg(g, "XX");
        break;
    case 2:
        arg(g, "NOSUCHCMD"), arg(g, "k0");
        break;
    case 3:
        arg(g, "SCRIPT"), arg(g, "%s", chance(g, 50) ? "EXISTS" : "LOAD");
        arg_ref(g, chance(g, 50) ? dlock__script_release.sha : dlock__script_release.text);
        break;
    default:
        arg(g, "TIME");
        g->loose = true;
        break;
    }
}

/* A command for conn A (in or out of a transaction) or, sometimes, for B. */
static void gen_cmd(gen *g)
{
    g->argc = 0;
    g->short_ttl = g->loose = false;
    g->conn = 0;
    if (g->blpop_key[0]) {
        arg(g, "BLPOP");
        if (chance(g, 40))
            arg(g, "%s", key(g));
        arg(g, "%s", g->blpop_key);
        static const char *const t[] = {"0", "0.5", "1", "2.25"};
        arg(g, "%s", t[pick(g, 4)]);
        g->blpop_key[0] = '\0';
        return;
    }
    if (!g->in_multi && chance(g, 15))
        g->conn = 1;
    else if (g->in_multi && chance(g, 25)) {
        arg(g, chance(g, 80) ? "EXEC" : "DISCARD");
        g->loose = g->tx_loose;
        g->short_ttl = g->tx_short;
        g->in_multi = false;
        return;
    } else if (g->conn == 0 && chance(g, g->in_multi ? 2 : 8)) {
        switch (pick(g, 4)) {
        case 0:
        case 1:
            arg(g, "WATCH");
            for (int i = pick(g, 2); i >= 0; i--)
                arg(g, "%s", key(g));
            return;
        case 2:
            arg(g, "MULTI");
            if (!g->in_multi)
                g->tx_loose = g->tx_short = false;
            g->in_multi = true;
            return;
        default:
            arg(g, chance(g, 70) ? "UNWATCH" : "EXEC");
            if (g->argv[0][0] == 'E')
                g->in_multi = false;
            return;
        }
    }
    int k = pick(g, 100);
    if (k < 22)
        gen_string_cmd(g);
    else if (k < 34)
        gen_expiry_cmd(g);
    else if (k < 52)
        gen_list_cmd(g);
    else if (k < 68)
        gen_zset_cmd(g);
    else if (k < 95)
        gen_script_cmd(g);
    else
        gen_bad_cmd(g);
    if (g->in_multi && g->conn == 0) {
        g->tx_loose |= g->loose;
        g->tx_short |= g->short_ttl;
    }
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void fail_step(uint64_t seed, int step, const gen *g, const rv *model, const rv *real)
{
    char cmd[1024] = "", a[2048] = "(no reply: it blocked)", b[2048] = "?";
    size_t n = 0;
    for (int i = 0; i < g->argc && n < sizeof cmd; i++)
        n += (size_t)snprintf(cmd + n, sizeof cmd - n, "%s%.60s", i ? " " : "", g->argv[i]);
    if (model)
        rv_text(a, sizeof a, model);
    rv_text(b, sizeof b, real);
    fail_msg("seed %llu step %d on connection %c: %s\n  model: %s\n  redis: %s",
             (unsigned long long)seed, step, g->conn ? 'B' : 'A', cmd, a, b);
}

static void run_seed(fixture *f, uint64_t seed)
{
    freeReplyObject(redisCommand(f->real[0], "FLUSHALL"));
    freeReplyObject(redisCommand(f->real[0], "SCRIPT FLUSH"));
    freeReplyObject(redisCommand(f->real[0], "UNWATCH"));
    freeReplyObject(redisCommand(f->real[1], "UNWATCH"));
    model_start(f);
    gen g = {.rng = seed * 2654435761ULL + 88172645463325252ULL};
    for (int step = 0; step < STEPS; step++) {
        gen_cmd(&g);
        int64_t before = realtime_us();
        redisReply *rr = real_cmd(f, g.conn, g.argc, g.argv, g.len);
        if (!rr)
            fail_msg("seed %llu step %d: redis-server did not answer (%s)",
                     (unsigned long long)seed, step, f->real[g.conn]->errstr);
        rv real, model;
        rv_from_real(&real, rr);
        freeReplyObject(rr);
        bool got = model_cmd(&f->model, g.conn, g.argc, g.argv, g.len, &model);
        long long tol = (realtime_us() - before) / 1000 + 2;
        if (!got)
            fail_step(seed, step, &g, NULL, &real);
        if (!rv_same(&model, &real, g.loose, g.argv[0][0] == 'T' && g.argv[0][1] == 'T' ? 1 : tol))
            fail_step(seed, step, &g, &model, &real);
        rv_free(&model);
        if (g.short_ttl)
            sleep_us(3000);
        if (g.conn == 0 && !g.in_multi && strcmp(g.argv[0], "LLEN") == 0 &&
            real.type == DLOCK_REPLY_INTEGER && real.i > 0)
            snprintf(g.blpop_key, sizeof g.blpop_key, "%s", g.argv[1]);
        rv_free(&real);
    }
    if (g.in_multi) {
        freeReplyObject(redisCommand(f->real[0], "DISCARD"));
    }
    model_stop(f);
}

static void model_and_redis_answer_alike(void **state)
{
    fixture *f = *state;
    const char *env = getenv("SIM_DIFF_SEED");
    if (env && *env) {
        run_seed(f, strtoull(env, NULL, 10));
        return;
    }
    for (uint64_t seed = 1; seed <= SEEDS; seed++)
        run_seed(f, seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(model_and_redis_answer_alike, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
