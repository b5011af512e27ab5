/* commands.c -- the modelled Redis's commands, as Redis 7.0 answers them: the same replies,
 * the same order of checks (argument parsing, then the key's type), the same error words
 * (WRONGTYPE, ERR syntax error, ERR value is not an integer or out of range, ...), lazy expiry
 * on every lookup, WATCH touched by every change. Replies are built in the server's arena.
 *
 * The table at the end is the model's command set: what libdlock's sources and scripts and the
 * harness send (test_sim_knows checks it), plus a few that tests and debugging want. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim/model.h"

#define E_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"
#define E_NOTINT    "ERR value is not an integer or out of range"
#define E_SYNTAX    "ERR syntax error"
#define E_NOTFLOAT  "ERR value is not a valid float"

/* ---- replies ---------------------------------------------------------------------------- */

const dlock_reply sim_r_ok = {.type = DLOCK_REPLY_STATUS, .str = "OK", .len = 2};
const dlock_reply sim_r_nil = {.type = DLOCK_REPLY_NIL, .str = ""};
const dlock_reply sim_r_zero = {.type = DLOCK_REPLY_INTEGER, .integer = 0, .str = ""};
const dlock_reply sim_r_one = {.type = DLOCK_REPLY_INTEGER, .integer = 1, .str = ""};
const dlock_reply sim_r_empty = {.type = DLOCK_REPLY_ARRAY, .str = ""};

static dlock_reply *r_new(sim_exec *x, dlock_reply_type t)
{
    dlock_reply *r = sa_alloc(&x->s->arena, sizeof *r);
    memset(r, 0, sizeof *r);
    r->type = t;
    r->str = "";
    return r;
}

static const char *sa_strdup(sim_exec *x, const char *p, size_t len)
{
    char *d = sa_alloc(&x->s->arena, len + 1);
    if (len)
        memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

const dlock_reply *r_error(sim_exec *x, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    for (size_t i = 0; i < len; i++)  /* an error is one line, as Redis makes it */
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = ' ';
    dlock_reply *r = r_new(x, DLOCK_REPLY_ERROR);
    r->str = sa_strdup(x, buf, len);
    r->len = len;
    return r;
}

const dlock_reply *r_status(sim_exec *x, const char *s)
{
    dlock_reply *r = r_new(x, DLOCK_REPLY_STATUS);
    r->len = strlen(s);
    r->str = sa_strdup(x, s, r->len);
    return r;
}

const dlock_reply *r_int(sim_exec *x, long long v)
{
    if (v == 0)
        return &sim_r_zero;
    if (v == 1)
        return &sim_r_one;
    dlock_reply *r = r_new(x, DLOCK_REPLY_INTEGER);
    r->integer = v;
    return r;
}

const dlock_reply *r_bulk(sim_exec *x, const char *p, size_t len)
{
    dlock_reply *r = r_new(x, DLOCK_REPLY_STRING);
    r->str = sa_strdup(x, p, len);
    r->len = len;
    return r;
}

/* Redis 7.0's addReplyDouble for RESP2: "%.17g", inf spelled out. */
const dlock_reply *r_double(sim_exec *x, double d)
{
    char buf[64];
    int n = isinf(d) ? snprintf(buf, sizeof buf, "%s", d > 0 ? "inf" : "-inf")
                     : snprintf(buf, sizeof buf, "%.17g", d);
    return r_bulk(x, buf, (size_t)n);
}

dlock_reply *r_array(sim_exec *x, size_t n)
{
    dlock_reply *r = r_new(x, DLOCK_REPLY_ARRAY);
    r->elements = n;
    if (n) {
        dlock_reply *el = sa_alloc(&x->s->arena, n * sizeof *el);
        memset(el, 0, n * sizeof *el);
        r->element = el;
    }
    return r;
}

static void set_el(dlock_reply *arr, size_t i, const dlock_reply *r)
{
    ((dlock_reply *)arr->element)[i] = *r;
}

const dlock_reply *r_arity(sim_exec *x, const char *name)
{
    return r_error(x, "ERR wrong number of arguments for '%s' command", name);
}

/* ---- numbers, as Redis's util.c parses them --------------------------------------------- */

/* string2ll: no spaces, no '+', no leading zeros, no "-0", within long long. */
bool sim_str2ll(const char *p, size_t slen, long long *value)
{
    size_t plen = 0;
    bool negative = false;
    unsigned long long v;
    if (slen == 0 || slen >= 21)
        return false;
    if (slen == 1 && p[0] == '0') {
        *value = 0;
        return true;
    }
    if (p[0] == '-') {
        negative = true;
        p++;
        plen++;
        if (plen == slen)
            return false;
    }
    if (p[0] >= '1' && p[0] <= '9') {
        v = (unsigned long long)(p[0] - '0');
        p++;
        plen++;
    } else {
        return false;
    }
    while (plen < slen && p[0] >= '0' && p[0] <= '9') {
        if (v > ULLONG_MAX / 10)
            return false;
        v *= 10;
        if (v > ULLONG_MAX - (unsigned long long)(p[0] - '0'))
            return false;
        v += (unsigned long long)(p[0] - '0');
        p++;
        plen++;
    }
    if (plen < slen)
        return false;
    if (negative) {
        if (v > (unsigned long long)(-(LLONG_MIN + 1)) + 1)
            return false;
        *value = v == (unsigned long long)(-(LLONG_MIN + 1)) + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > LLONG_MAX)
            return false;
        *value = (long long)v;
    }
    return true;
}

bool sim_str2d(const char *s, size_t len, double *dp)
{
    char buf[5 * 1024];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (buf[0] == ' ' || (buf[0] >= '\t' && buf[0] <= '\r'))
        return false;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if ((size_t)(end - buf) != len || (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL ||
                                                           v == 0)) || isnan(v))
        return false;
    *dp = v;
    return true;
}

bool sim_str2ld(const char *s, size_t len, long double *dp)
{
    char buf[5 * 1024];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (buf[0] == ' ' || (buf[0] >= '\t' && buf[0] <= '\r'))
        return false;
    char *end;
    errno = 0;
    long double v = strtold(buf, &end);
    if ((size_t)(end - buf) != len ||
        (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || v == 0)) || isnan(v))
        return false;
    *dp = v;
    return true;
}

bool sim_eqi(const sim_str *a, const char *lit)
{
    size_t n = strlen(lit);
    return a->len == n && strncasecmp(a->p, lit, n) == 0;
}

static bool arg_ll(const sim_str *a, long long *v)
{
    return sim_str2ll(a->p, a->len, v);
}

/* ---- keys ------------------------------------------------------------------------------- */

static const dlock_reply *cmd_ping(sim_exec *x, int argc, const sim_str *argv)
{
    if (argc > 2)
        return r_arity(x, "ping");
    if (argc == 2)
        return r_bulk(x, argv[1].p, argv[1].len);
    static const dlock_reply pong = {.type = DLOCK_REPLY_STATUS, .str = "PONG", .len = 4};
    return &pong;
}

static const dlock_reply *cmd_echo(sim_exec *x, int argc, const sim_str *argv)
{
    return r_bulk(x, argv[1].p, argv[1].len);
}

static const dlock_reply *cmd_select(sim_exec *x, int argc, const sim_str *argv)
{
    long long id;
    if (!arg_ll(&argv[1], &id))
        return r_error(x, E_NOTINT);
    if (id < 0 || id >= SIM_DBS)
        return r_error(x, "ERR DB index is out of range");
    x->dbi = (int)id;
    x->db = db_get(x->s, x->dbi);
    if (x->c && !x->in_script)
        x->c->db = x->dbi;
    return &sim_r_ok;
}

static const dlock_reply *cmd_get(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_nil;
    if (v->type != SIM_STRING)
        return r_error(x, E_WRONGTYPE);
    return r_bulk(x, v->u.s.p, v->u.s.len);
}

enum { SET_NX = 1, SET_XX = 2, SET_GET = 4, SET_KEEPTTL = 8, SET_EX = 16, SET_PX = 32,
       SET_EXAT = 64, SET_PXAT = 128 };

static bool parse_set_options(int argc, const sim_str *argv, int *flags, const sim_str **expire)
{
    for (int j = 3; j < argc; j++) {
        const sim_str *o = &argv[j];
        bool next = j < argc - 1;
        int f = *flags;
        int ttl = SET_EX | SET_PX | SET_EXAT | SET_PXAT;
        if (sim_eqi(o, "nx") && !(f & SET_XX)) {
            *flags |= SET_NX;
        } else if (sim_eqi(o, "xx") && !(f & SET_NX)) {
            *flags |= SET_XX;
        } else if (sim_eqi(o, "get")) {
            *flags |= SET_GET;
        } else if (sim_eqi(o, "keepttl") && !(f & ttl)) {
            *flags |= SET_KEEPTTL;
        } else if (next && (sim_eqi(o, "ex") || sim_eqi(o, "px") || sim_eqi(o, "exat") ||
                            sim_eqi(o, "pxat"))) {
            /* one kind of expiry, which may repeat (the last wins), never with KEEPTTL */
            int kind = sim_eqi(o, "ex") ? SET_EX : sim_eqi(o, "px") ? SET_PX
                       : sim_eqi(o, "exat") ? SET_EXAT : SET_PXAT;
            if (f & (SET_KEEPTTL | (ttl & ~kind)))
                return false;
            *flags |= kind;
            *expire = &argv[++j];
        } else {
            return false;
        }
    }
    return true;
}

/* The absolute expiry in ms, or false (an error replied) as getExpireMillisecondsOrReply. */
static bool set_expiry_ms(sim_exec *x, const char *cmd, const sim_str *arg, int flags,
                          long long *ms, const dlock_reply **err)
{
    if (!arg_ll(arg, ms)) {
        *err = r_error(x, E_NOTINT);
        return false;
    }
    bool seconds = flags & (SET_EX | SET_EXAT);
    if (*ms <= 0 || (seconds && *ms > LLONG_MAX / 1000)) {
        *err = r_error(x, "ERR invalid expire time in '%s' command", cmd);
        return false;
    }
    if (seconds)
        *ms *= 1000;
    if (flags & (SET_EX | SET_PX)) {
        if (*ms > LLONG_MAX - x->now_ms) {
            *err = r_error(x, "ERR invalid expire time in '%s' command", cmd);
            return false;
        }
        *ms += x->now_ms;
    }
    return true;
}

static const dlock_reply *set_generic(sim_exec *x, const sim_str *key, const sim_str *value,
                                      int flags, const sim_str *expire, const char *cmd,
                                      const dlock_reply *ok, const dlock_reply *abort_reply)
{
    long long when = -1;
    const dlock_reply *err = NULL;
    if (expire && !set_expiry_ms(x, cmd, expire, flags, &when, &err))
        return err;
    sim_val *v = db_lookup(x, key);
    const dlock_reply *old = &sim_r_nil;
    if (flags & SET_GET) {
        if (v && v->type != SIM_STRING)
            return r_error(x, E_WRONGTYPE);
        if (v)
            old = r_bulk(x, v->u.s.p, v->u.s.len);
    }
    if (((flags & SET_NX) && v) || ((flags & SET_XX) && !v))
        return flags & SET_GET ? old : abort_reply;
    if (v) {
        db_prepare_write(x, key);
        if (v->type != SIM_STRING) {
            sim_val *n = val_new_string(value->p, value->len);
            n->expire_ms = v->expire_ms;
            db_delete(x, key);
            v = db_add(x, key, n);
        } else {
            val_set_string(v, value->p, value->len);
        }
        if (!(flags & SET_KEEPTTL))
            v->expire_ms = -1;
    } else {
        v = db_add(x, key, val_new_string(value->p, value->len));
    }
    if (expire)
        v->expire_ms = when;
    db_signal_modified(x, key);
    return flags & SET_GET ? old : ok;
}

static const dlock_reply *cmd_set(sim_exec *x, int argc, const sim_str *argv)
{
    int flags = 0;
    const sim_str *expire = NULL;
    if (!parse_set_options(argc, argv, &flags, &expire))
        return r_error(x, E_SYNTAX);
    return set_generic(x, &argv[1], &argv[2], flags, expire, "set", &sim_r_ok, &sim_r_nil);
}

static const dlock_reply *cmd_setnx(sim_exec *x, int argc, const sim_str *argv)
{
    return set_generic(x, &argv[1], &argv[2], SET_NX, NULL, "setnx", &sim_r_one, &sim_r_zero);
}

static const dlock_reply *cmd_del(sim_exec *x, int argc, const sim_str *argv)
{
    long long n = 0;
    for (int j = 1; j < argc; j++) {
        if (db_lookup(x, &argv[j])) {
            db_delete(x, &argv[j]);
            db_signal_modified(x, &argv[j]);
            n++;
        }
    }
    return r_int(x, n);
}

static const dlock_reply *cmd_exists(sim_exec *x, int argc, const sim_str *argv)
{
    long long n = 0;
    for (int j = 1; j < argc; j++)
        n += db_lookup(x, &argv[j]) != NULL;
    return r_int(x, n);
}

static const dlock_reply *cmd_type(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    return r_status(x, !v ? "none" : v->type == SIM_STRING ? "string"
                       : v->type == SIM_LIST ? "list" : "zset");
}

static const dlock_reply *incr_by(sim_exec *x, const sim_str *key, long long by)
{
    sim_val *v = db_lookup(x, key);
    long long cur = 0;
    if (v && v->type != SIM_STRING)
        return r_error(x, E_WRONGTYPE);
    if (v && !sim_str2ll(v->u.s.p, v->u.s.len, &cur))
        return r_error(x, E_NOTINT);
    if ((by < 0 && cur < 0 && by < LLONG_MIN - cur) || (by > 0 && cur > 0 && by > LLONG_MAX - cur))
        return r_error(x, "ERR increment or decrement would overflow");
    cur += by;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", cur);
    if (v) {
        db_prepare_write(x, key);
        val_set_string(v, buf, (size_t)n);  /* the expiry stays, as dbOverwrite keeps it */
    } else {
        db_add(x, key, val_new_string(buf, (size_t)n));
    }
    db_signal_modified(x, key);
    return r_int(x, cur);
}

static const dlock_reply *cmd_incr(sim_exec *x, int argc, const sim_str *argv)
{
    return incr_by(x, &argv[1], 1);
}

static const dlock_reply *cmd_decr(sim_exec *x, int argc, const sim_str *argv)
{
    return incr_by(x, &argv[1], -1);
}

static const dlock_reply *cmd_incrby(sim_exec *x, int argc, const sim_str *argv)
{
    long long by;
    if (!arg_ll(&argv[2], &by))
        return r_error(x, E_NOTINT);
    return incr_by(x, &argv[1], by);
}

static const dlock_reply *ttl_generic(sim_exec *x, const sim_str *key, bool ms)
{
    sim_val *v = db_lookup(x, key);
    if (!v)
        return r_int(x, -2);
    if (v->expire_ms < 0)
        return r_int(x, -1);
    long long ttl = v->expire_ms - x->now_ms;
    if (ttl < 0)
        ttl = 0;
    return r_int(x, ms ? ttl : (ttl + 500) / 1000);
}

static const dlock_reply *cmd_pttl(sim_exec *x, int argc, const sim_str *argv)
{
    return ttl_generic(x, &argv[1], true);
}

static const dlock_reply *cmd_ttl(sim_exec *x, int argc, const sim_str *argv)
{
    return ttl_generic(x, &argv[1], false);
}

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

/* EXPIRE/PEXPIRE key time [NX|XX|GT|LT], as expireGenericCommand. */
static const dlock_reply *expire_generic(sim_exec *x, int argc, const sim_str *argv,
                                         bool seconds, const char *cmd)
{
    long long when;
    int flag = 0;
    for (int j = 3; j < argc; j++) {  /* the options first, as Redis parses them */
        if (sim_eqi(&argv[j], "nx"))
            flag |= EXP_NX;
        else if (sim_eqi(&argv[j], "xx"))
            flag |= EXP_XX;
        else if (sim_eqi(&argv[j], "gt"))
            flag |= EXP_GT;
        else if (sim_eqi(&argv[j], "lt"))
            flag |= EXP_LT;
        else
            return r_error(x, "ERR Unsupported option %.*s", (int)argv[j].len, argv[j].p);
    }
    if ((flag & EXP_NX) && (flag & (EXP_XX | EXP_GT | EXP_LT)))
        return r_error(x, "ERR NX and XX, GT or LT options at the same time are not compatible");
    if ((flag & EXP_GT) && (flag & EXP_LT))
        return r_error(x, "ERR GT and LT options at the same time are not compatible");
    if (!arg_ll(&argv[2], &when))
        return r_error(x, E_NOTINT);
    if (seconds) {
        if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000)
            return r_error(x, "ERR invalid expire time in '%s' command", cmd);
        when *= 1000;
    }
    if (when > LLONG_MAX - x->now_ms)
        return r_error(x, "ERR invalid expire time in '%s' command", cmd);
    when += x->now_ms;
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_zero;
    long long cur = v->expire_ms;
    if (((flag & EXP_NX) && cur != -1) || ((flag & EXP_XX) && cur == -1) ||
        ((flag & EXP_GT) && (when <= cur || cur == -1)) ||
        ((flag & EXP_LT) && cur != -1 && when >= cur))
        return &sim_r_zero;
    if (when <= x->now_ms) {  /* already expired: the key goes now */
        db_delete(x, &argv[1]);
    } else {
        db_prepare_write(x, &argv[1]);
        v->expire_ms = when;
    }
    db_signal_modified(x, &argv[1]);
    return &sim_r_one;
}

static const dlock_reply *cmd_pexpire(sim_exec *x, int argc, const sim_str *argv)
{
    return expire_generic(x, argc, argv, false, "pexpire");
}

static const dlock_reply *cmd_expire(sim_exec *x, int argc, const sim_str *argv)
{
    return expire_generic(x, argc, argv, true, "expire");
}

static const dlock_reply *cmd_persist(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v || v->expire_ms < 0)
        return &sim_r_zero;
    db_prepare_write(x, &argv[1]);
    v->expire_ms = -1;
    db_signal_modified(x, &argv[1]);
    return &sim_r_one;
}

static const dlock_reply *cmd_time(sim_exec *x, int argc, const sim_str *argv)
{
    int64_t t = x->s->p.unix_epoch_us + x->now_us;
    char a[32], b[32];
    int na = snprintf(a, sizeof a, "%lld", (long long)(t / 1000000));
    int nb = snprintf(b, sizeof b, "%lld", (long long)(t % 1000000));
    dlock_reply *r = r_array(x, 2);
    set_el(r, 0, r_bulk(x, a, (size_t)na));
    set_el(r, 1, r_bulk(x, b, (size_t)nb));
    return r;
}

static const dlock_reply *cmd_dbsize(sim_exec *x, int argc, const sim_str *argv)
{
    return r_int(x, (long long)x->db->keys.n);
}

static void touch_each(sim_dent *e, void *ud)
{
    sim_exec *x = ud;
    sim_str k = {e->key, e->klen};
    db_prepare_write(x, &k);
    db_signal_modified(x, &k);
}

static const dlock_reply *cmd_flushall(sim_exec *x, int argc, const sim_str *argv)
{
    if (argc > 2 || (argc == 2 && !sim_eqi(&argv[1], "sync") && !sim_eqi(&argv[1], "async")))
        return r_error(x, E_SYNTAX);
    for (int i = 0; i < SIM_DBS; i++) {
        if (!x->s->db[i])
            continue;
        sim_exec y = *x;
        y.dbi = i;
        y.db = x->s->db[i];
        dict_each(&y.db->keys, touch_each, &y);
    }
    db_flush_all(x->s);
    return &sim_r_ok;
}

/* ---- lists ------------------------------------------------------------------------------ */

static const dlock_reply *push_generic(sim_exec *x, int argc, const sim_str *argv, bool head)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (v && v->type != SIM_LIST)
        return r_error(x, E_WRONGTYPE);
    if (!v) {
        v = db_add(x, &argv[1], val_new_list());
        db_signal_list_ready(x, &argv[1]);
    } else {
        db_prepare_write(x, &argv[1]);
    }
    for (int j = 2; j < argc; j++)
        list_push(v->u.l, argv[j].p, argv[j].len, head);
    db_signal_modified(x, &argv[1]);
    return r_int(x, (long long)v->u.l->n);
}

static const dlock_reply *cmd_rpush(sim_exec *x, int argc, const sim_str *argv)
{
    return push_generic(x, argc, argv, false);
}

static const dlock_reply *cmd_lpush(sim_exec *x, int argc, const sim_str *argv)
{
    return push_generic(x, argc, argv, true);
}

/* Pops one element of a list known to be non-empty; the key goes when the list empties. */
static const dlock_reply *pop_one(sim_exec *x, const sim_str *key, sim_val *v, bool head)
{
    db_prepare_write(x, key);
    sim_str s = list_pop(v->u.l, head);
    const dlock_reply *r = r_bulk(x, s.p, s.len);
    free((char *)s.p);
    if (v->u.l->n == 0)
        db_delete(x, key);
    db_signal_modified(x, key);
    return r;
}

static const dlock_reply *pop_generic(sim_exec *x, int argc, const sim_str *argv, bool head,
                                      const char *name)
{
    long long count = 0;
    bool has_count = argc == 3;
    if (argc > 3)
        return r_arity(x, name);
    if (has_count) {
        if (!arg_ll(&argv[2], &count))
            return r_error(x, E_NOTINT);
        if (count < 0)
            return r_error(x, "ERR value is out of range, must be positive");
    }
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_nil;
    if (v->type != SIM_LIST)
        return r_error(x, E_WRONGTYPE);
    if (has_count && count == 0)
        return &sim_r_empty;
    if (!has_count)
        return pop_one(x, &argv[1], v, head);
    size_t n = (size_t)count < v->u.l->n ? (size_t)count : v->u.l->n;
    dlock_reply *r = r_array(x, n);
    db_prepare_write(x, &argv[1]);
    for (size_t i = 0; i < n; i++) {
        sim_str s = list_pop(v->u.l, head);
        set_el(r, i, r_bulk(x, s.p, s.len));
        free((char *)s.p);
    }
    if (v->u.l->n == 0)
        db_delete(x, &argv[1]);
    db_signal_modified(x, &argv[1]);
    return r;
}

static const dlock_reply *cmd_lpop(sim_exec *x, int argc, const sim_str *argv)
{
    return pop_generic(x, argc, argv, true, "lpop");
}

static const dlock_reply *cmd_rpop(sim_exec *x, int argc, const sim_str *argv)
{
    return pop_generic(x, argc, argv, false, "rpop");
}

static const dlock_reply *cmd_llen(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_zero;
    if (v->type != SIM_LIST)
        return r_error(x, E_WRONGTYPE);
    return r_int(x, (long long)v->u.l->n);
}

static const dlock_reply *cmd_lrange(sim_exec *x, int argc, const sim_str *argv)
{
    long long start, end;
    if (!arg_ll(&argv[2], &start) || !arg_ll(&argv[3], &end))
        return r_error(x, E_NOTINT);
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_empty;
    if (v->type != SIM_LIST)
        return r_error(x, E_WRONGTYPE);
    long long llen = (long long)v->u.l->n;
    if (start < 0)
        start += llen;
    if (end < 0)
        end += llen;
    if (start < 0)
        start = 0;
    if (start > end || start >= llen)
        return &sim_r_empty;
    if (end >= llen)
        end = llen - 1;
    dlock_reply *r = r_array(x, (size_t)(end - start + 1));
    for (long long i = start; i <= end; i++) {
        sim_str s = list_at(v->u.l, (size_t)i);
        set_el(r, (size_t)(i - start), r_bulk(x, s.p, s.len));
    }
    return r;
}

static const dlock_reply *cmd_lrem(sim_exec *x, int argc, const sim_str *argv)
{
    long long count;
    if (!arg_ll(&argv[2], &count))
        return r_error(x, E_NOTINT);
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_zero;
    if (v->type != SIM_LIST)
        return r_error(x, E_WRONGTYPE);
    db_prepare_write(x, &argv[1]);
    size_t removed = list_remove(v->u.l, argv[3].p, argv[3].len, count);
    if (v->u.l->n == 0)
        db_delete(x, &argv[1]);
    if (removed)
        db_signal_modified(x, &argv[1]);
    return r_int(x, (long long)removed);
}

/* BLPOP/BRPOP key... timeout: a pop at once when a list has elements; nil inside EXEC or a
 * script; otherwise the client blocks (redis.c serves it, first come first served). */
static const dlock_reply *bpop_generic(sim_exec *x, int argc, const sim_str *argv, bool head)
{
    long double secs;
    const sim_str *t = &argv[argc - 1];
    if (!sim_str2ld(t->p, t->len, &secs))
        return r_error(x, "ERR timeout is not a float or out of range");
    long long ms = (long long)ceill(secs * 1000.0L);
    if (ms < 0)
        return r_error(x, "ERR timeout is negative");
    for (int j = 1; j < argc - 1; j++) {
        sim_val *v = db_lookup(x, &argv[j]);
        if (!v)
            continue;
        if (v->type != SIM_LIST)
            return r_error(x, E_WRONGTYPE);
        return sim_pop_for_blocked(x, &argv[j], v, head);
    }
    if (x->deny_blocking || !x->c)
        return &sim_r_nil;
    conn_block(x, argc - 2, argv + 1, ms > 0 ? x->now_ms + ms : 0, head);
    x->blocked = true;
    return NULL;
}

const dlock_reply *sim_pop_for_blocked(sim_exec *x, const sim_str *key, sim_val *v, bool head)
{
    dlock_reply *r = r_array(x, 2);
    set_el(r, 0, r_bulk(x, key->p, key->len));
    set_el(r, 1, pop_one(x, key, v, head));
    return r;
}

static const dlock_reply *cmd_blpop(sim_exec *x, int argc, const sim_str *argv)
{
    return bpop_generic(x, argc, argv, true);
}

static const dlock_reply *cmd_brpop(sim_exec *x, int argc, const sim_str *argv)
{
    return bpop_generic(x, argc, argv, false);
}

/* WAIT numreplicas timeout (ms): how many replicas acknowledged the primary's offset as of the
 * WAIT -- at once when that is enough, inside EXEC and without a connection (0 without
 * replicas); otherwise, as Redis 7.0 does, once enough have (served before the server sleeps,
 * repl.c) or at the timeout (0 = forever), noticed on the same timer as a BLPOP's. */
static const dlock_reply *cmd_wait(sim_exec *x, int argc, const sim_str *argv)
{
    long long n, ms;
    if (!arg_ll(&argv[1], &n))
        return r_error(x, "ERR value is not an integer or out of range");
    if (!arg_ll(&argv[2], &ms))
        return r_error(x, "ERR timeout is not an integer or out of range");
    if (ms < 0)
        return r_error(x, "ERR timeout is negative");
    if (ms > LLONG_MAX - x->now_ms)
        return r_error(x, "ERR timeout is out of range");
    uint64_t off = x->s->repl_off;  /* what the replicas must have: all written so far */
    int acked = repl_acked(x->s, off);
    if (n <= acked || x->deny_blocking || !x->c)
        return r_int(x, acked);
    conn_block(x, 0, NULL, ms > 0 ? x->now_ms + ms : 0, true);
    x->c->block->replicas = true;
    x->c->block->wait_n = n > INT_MAX ? INT_MAX : (int)n;
    x->c->block->wait_off = off;
    x->c->block->wait_prev = x->s->waiting_tail;
    *(x->s->waiting_tail ? &x->s->waiting_tail->block->wait_next : &x->s->waiting_head) = x->c;
    x->s->waiting_tail = x->c;
    x->blocked = true;
    return NULL;
}

/* ---- sorted sets ------------------------------------------------------------------------ */

enum { Z_NX = 1, Z_XX = 2, Z_GT = 4, Z_LT = 8, Z_CH = 16, Z_INCR = 32 };

static const dlock_reply *cmd_zadd(sim_exec *x, int argc, const sim_str *argv)
{
    int j = 2, f = 0;
    for (; j < argc; j++) {
        const sim_str *o = &argv[j];
        int g = sim_eqi(o, "nx") ? Z_NX : sim_eqi(o, "xx") ? Z_XX : sim_eqi(o, "gt") ? Z_GT
                : sim_eqi(o, "lt") ? Z_LT : sim_eqi(o, "ch") ? Z_CH : sim_eqi(o, "incr") ? Z_INCR : 0;
        if (!g)
            break;
        f |= g;
    }
    int elements = argc - j;
    if (elements % 2 || elements == 0)
        return r_error(x, E_SYNTAX);
    elements /= 2;
    if ((f & Z_NX) && (f & Z_XX))
        return r_error(x, "ERR XX and NX options at the same time are not compatible");
    if (((f & Z_GT) && (f & Z_NX)) || ((f & Z_LT) && (f & Z_NX)) || ((f & Z_GT) && (f & Z_LT)))
        return r_error(x, "ERR GT, LT, and/or NX options at the same time are not compatible");
    if ((f & Z_INCR) && elements > 1)
        return r_error(x, "ERR INCR option supports a single increment-element pair");
    double *scores = sa_alloc(&x->s->arena, (size_t)elements * sizeof *scores);
    for (int i = 0; i < elements; i++)
        if (!sim_str2d(argv[j + 2 * i].p, argv[j + 2 * i].len, &scores[i]))
            return r_error(x, E_NOTFLOAT);
    sim_val *v = db_lookup(x, &argv[1]);
    if (v && v->type != SIM_ZSET)
        return r_error(x, E_WRONGTYPE);
    long long added = 0, updated = 0, processed = 0;
    double score = 0;
    if (!v) {
        if (f & Z_XX)
            goto reply;
        v = db_add(x, &argv[1], val_new_zset());
    } else {
        db_prepare_write(x, &argv[1]);
    }
    for (int i = 0; i < elements; i++) {
        const sim_str *m = &argv[j + 2 * i + 1];
        score = scores[i];
        sim_znode *n = zset_find(v->u.z, m->p, m->len);
        if (n) {
            if (f & Z_NX)
                continue;
            if (f & Z_INCR) {
                score += n->score;
                if (isnan(score)) {
                    if (v->u.z->length == 0)
                        db_delete(x, &argv[1]);
                    return r_error(x, "ERR resulting score is not a number (NaN)");
                }
            }
            if (((f & Z_LT) && score >= n->score) || ((f & Z_GT) && score <= n->score))
                continue;
            processed++;
            if (score != n->score) {
                zset_update(v->u.z, n, score);
                updated++;
            }
        } else {
            if (f & Z_XX)
                continue;
            zset_insert(v->u.z, m->p, m->len, score);
            added++;
            processed++;
        }
    }
reply:
    if (v && v->u.z->length == 0)
        db_delete(x, &argv[1]);
    if (added + updated)
        db_signal_modified(x, &argv[1]);
    if (f & Z_INCR)
        return processed ? r_double(x, score) : &sim_r_nil;
    return r_int(x, (f & Z_CH) ? added + updated : added);
}

static const dlock_reply *cmd_zrem(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_zero;
    if (v->type != SIM_ZSET)
        return r_error(x, E_WRONGTYPE);
    long long deleted = 0;
    db_prepare_write(x, &argv[1]);
    for (int j = 2; j < argc; j++) {
        sim_znode *n = zset_find(v->u.z, argv[j].p, argv[j].len);
        if (n) {
            zset_remove(v->u.z, n);
            deleted++;
            if (v->u.z->length == 0) {
                db_delete(x, &argv[1]);
                break;
            }
        }
    }
    if (deleted)
        db_signal_modified(x, &argv[1]);
    return r_int(x, deleted);
}

static const dlock_reply *cmd_zscore(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_nil;
    if (v->type != SIM_ZSET)
        return r_error(x, E_WRONGTYPE);
    sim_znode *n = zset_find(v->u.z, argv[2].p, argv[2].len);
    return n ? r_double(x, n->score) : &sim_r_nil;
}

static const dlock_reply *cmd_zcard(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_zero;
    if (v->type != SIM_ZSET)
        return r_error(x, E_WRONGTYPE);
    return r_int(x, (long long)v->u.z->length);
}

static const dlock_reply *cmd_zrank(sim_exec *x, int argc, const sim_str *argv)
{
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_nil;
    if (v->type != SIM_ZSET)
        return r_error(x, E_WRONGTYPE);
    sim_znode *n = zset_find(v->u.z, argv[2].p, argv[2].len);
    return n ? r_int(x, (long long)zset_rank(v->u.z, n)) : &sim_r_nil;
}

/* zslParseRange: "(" for an exclusive bound; strtod takes -inf and +inf. */
static bool parse_score_bound(const sim_str *a, double *v, bool *ex)
{
    *ex = a->len > 0 && a->p[0] == '(';
    const char *p = a->p + *ex;
    size_t len = a->len - *ex;
    char buf[128];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, p, len);
    buf[len] = '\0';
    char *end;
    *v = strtod(buf, &end);
    return *end == '\0' && !isnan(*v);
}

typedef struct zrange_out {
    sim_znode **nodes;
    size_t n;
} zrange_out;

static const dlock_reply *zrange_reply(sim_exec *x, sim_znode **nodes, size_t n, bool scores)
{
    dlock_reply *r = r_array(x, n * (scores ? 2 : 1));
    for (size_t i = 0, k = 0; i < n; i++) {
        set_el(r, k++, r_bulk(x, nodes[i]->member, nodes[i]->mlen));
        if (scores)
            set_el(r, k++, r_double(x, nodes[i]->score));
    }
    return r;
}

static const dlock_reply *zrange_by_rank(sim_exec *x, const sim_zset *z, long long start,
                                         long long end, bool rev, bool scores)
{
    long long llen = (long long)z->length;
    if (start < 0)
        start += llen;
    if (end < 0)
        end += llen;
    if (start < 0)
        start = 0;
    if (start > end || start >= llen)
        return &sim_r_empty;
    if (end >= llen)
        end = llen - 1;
    size_t n = (size_t)(end - start + 1);
    sim_znode **nodes = sa_alloc(&x->s->arena, n * sizeof *nodes);
    sim_znode *node = zset_at(z, (size_t)(rev ? llen - 1 - start : start));
    for (size_t i = 0; i < n; i++) {
        nodes[i] = node;
        node = rev ? node->backward : node->level[0].forward;
    }
    return zrange_reply(x, nodes, n, scores);
}

static const dlock_reply *zrange_by_score(sim_exec *x, const sim_zset *z, double min, bool minex,
                                          double max, bool maxex, bool rev, long long offset,
                                          long long limit, bool scores)
{
    if (offset < 0 || min > max || (min == max && (minex || maxex)))
        return &sim_r_empty;
    sim_znode *node = rev ? zset_last_upto(z, max, maxex) : zset_first_from(z, min, minex);
    size_t cap = 16, n = 0;
    sim_znode **nodes = malloc(cap * sizeof *nodes);
    if (!nodes)
        abort();
    for (; node && offset > 0; offset--)
        node = rev ? node->backward : node->level[0].forward;
    while (node && limit != 0) {
        bool in = rev ? (minex ? node->score > min : node->score >= min)
                      : (maxex ? node->score < max : node->score <= max);
        if (!in)
            break;
        if (n == cap) {
            cap *= 2;
            sim_znode **m = realloc(nodes, cap * sizeof *nodes);
            if (!m)
                abort();
            nodes = m;
        }
        nodes[n++] = node;
        node = rev ? node->backward : node->level[0].forward;
        if (limit > 0)
            limit--;
    }
    const dlock_reply *r = zrange_reply(x, nodes, n, scores);
    free(nodes);
    return r;
}

/* ZRANGE key start stop [BYSCORE] [REV] [LIMIT offset count] [WITHSCORES], and
 * ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count], as zrangeGenericCommand.
 * BYLEX is not modelled (a syntax error here). */
static const dlock_reply *zrange_generic(sim_exec *x, int argc, const sim_str *argv,
                                         bool byscore_cmd)
{
    bool scores = false, rev = false, byscore = byscore_cmd;
    long long offset = 0, limit = -1;
    bool has_limit = false;
    for (int j = 4; j < argc; j++) {
        int left = argc - j - 1;
        if (sim_eqi(&argv[j], "withscores")) {
            scores = true;
        } else if (sim_eqi(&argv[j], "limit") && left >= 2) {
            if (!arg_ll(&argv[j + 1], &offset) || !arg_ll(&argv[j + 2], &limit))
                return r_error(x, E_NOTINT);
            has_limit = true;
            j += 2;
        } else if (!byscore_cmd && !rev && sim_eqi(&argv[j], "rev")) {
            rev = true;
        } else if (!byscore_cmd && !byscore && sim_eqi(&argv[j], "byscore")) {
            byscore = true;
        } else {
            return r_error(x, E_SYNTAX);
        }
    }
    if (has_limit && !byscore)
        return r_error(x, "ERR syntax error, LIMIT is only supported in combination with either "
                          "BYSCORE or BYLEX");
    const sim_str *lo = &argv[2], *hi = &argv[3];
    if (rev && byscore) {
        lo = &argv[3];
        hi = &argv[2];
    }
    long long start = 0, end = 0;
    double min = 0, max = 0;
    bool minex = false, maxex = false;
    if (!byscore) {
        if (!arg_ll(lo, &start) || !arg_ll(hi, &end))
            return r_error(x, E_NOTINT);
    } else if (!parse_score_bound(lo, &min, &minex) || !parse_score_bound(hi, &max, &maxex)) {
        return r_error(x, "ERR min or max is not a float");
    }
    sim_val *v = db_lookup(x, &argv[1]);
    if (!v)
        return &sim_r_empty;
    if (v->type != SIM_ZSET)
        return r_error(x, E_WRONGTYPE);
    if (!byscore)
        return zrange_by_rank(x, v->u.z, start, end, rev, scores);
    return zrange_by_score(x, v->u.z, min, minex, max, maxex, rev, offset, limit, scores);
}

static const dlock_reply *cmd_zrange(sim_exec *x, int argc, const sim_str *argv)
{
    return zrange_generic(x, argc, argv, false);
}

static const dlock_reply *cmd_zrangebyscore(sim_exec *x, int argc, const sim_str *argv)
{
    return zrange_generic(x, argc, argv, true);
}

/* ---- the table -------------------------------------------------------------------------- */

static const sim_command table[] = {  /* sorted by name */
    {"auth", -2, SIM_F_NOSCRIPT | SIM_F_NOAUTH, cmd_auth},
    {"blpop", -3, SIM_F_NOSCRIPT, cmd_blpop},
    {"brpop", -3, SIM_F_NOSCRIPT, cmd_brpop},
    {"dbsize", 1, 0, cmd_dbsize},
    {"decr", 2, 0, cmd_decr},
    {"del", -2, 0, cmd_del},
    {"discard", 1, SIM_F_NOSCRIPT, cmd_discard},
    {"echo", 2, 0, cmd_echo},
    {"eval", -3, SIM_F_NOSCRIPT | SIM_F_SCRIPT, cmd_eval},
    {"evalsha", -3, SIM_F_NOSCRIPT | SIM_F_SCRIPT, cmd_evalsha},
    {"exec", 1, SIM_F_NOSCRIPT, cmd_exec},
    {"exists", -2, 0, cmd_exists},
    {"expire", -3, 0, cmd_expire},
    {"flushall", -1, 0, cmd_flushall},
    {"get", 2, 0, cmd_get},
    {"incr", 2, 0, cmd_incr},
    {"incrby", 3, 0, cmd_incrby},
    {"llen", 2, 0, cmd_llen},
    {"lpop", -2, 0, cmd_lpop},
    {"lpush", -3, 0, cmd_lpush},
    {"lrange", 4, 0, cmd_lrange},
    {"lrem", 4, 0, cmd_lrem},
    {"multi", 1, SIM_F_NOSCRIPT, cmd_multi},
    {"persist", 2, 0, cmd_persist},
    {"pexpire", -3, 0, cmd_pexpire},
    {"ping", -1, 0, cmd_ping},
    {"pttl", 2, 0, cmd_pttl},
    {"rpop", -2, 0, cmd_rpop},
    {"rpush", -3, 0, cmd_rpush},
    {"script", -2, SIM_F_NOSCRIPT, cmd_script},
    {"select", 2, 0, cmd_select},
    {"set", -3, 0, cmd_set},
    {"setnx", 3, 0, cmd_setnx},
    {"time", 1, 0, cmd_time},
    {"ttl", 2, 0, cmd_ttl},
    {"type", 2, 0, cmd_type},
    {"unlink", -2, 0, cmd_del},
    {"unwatch", 1, SIM_F_NOSCRIPT, cmd_unwatch},
    {"wait", 3, SIM_F_NOSCRIPT, cmd_wait},
    {"watch", -2, SIM_F_NOSCRIPT, cmd_watch},
    {"zadd", -4, 0, cmd_zadd},
    {"zcard", 2, 0, cmd_zcard},
    {"zrange", -4, 0, cmd_zrange},
    {"zrangebyscore", -4, 0, cmd_zrangebyscore},
    {"zrank", 3, 0, cmd_zrank},
    {"zrem", -3, 0, cmd_zrem},
    {"zscore", 3, 0, cmd_zscore},
};

const sim_command *sim_lookup_command(const char *name, size_t len)
{
    size_t lo = 0, hi = sizeof table / sizeof table[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *t = table[mid].name;
        size_t tlen = strlen(t);
        int c = strncasecmp(name, t, len < tlen ? len : tlen);
        if (c == 0)
            c = len < tlen ? -1 : len > tlen ? 1 : 0;
        if (c == 0)
            return &table[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool sim_server_knows(const char *name)
{
    return name && sim_lookup_command(name, strlen(name)) != NULL;
}

const dlock_reply *sim_call(sim_exec *x, const sim_command *cmd, int argc, const sim_str *argv)
{
    return cmd->fn(x, argc, argv);
}
