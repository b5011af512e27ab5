/* scenario.c -- load, override, validate and default a scenario (SPEC section 5).
 *
 * The only file that reads scenario JSON. A load runs these steps on a jansson tree:
 *
 *   parse (duplicate keys rejected) → apply --set → decode the base → for each variant:
 *   share the resolved base, apply its `set`, fold its expectations in, decode it as a whole.
 *
 * "Decode" validates and fills in one pass, driven by the field tables below: each table entry
 * names a key, its type and range, its default (as JSON text) and where its value goes in the C
 * struct. The same pass builds the resolved tree (keys in table order, defaults filled) that
 * scenario.json is written from; the strings of an lb_scenario point into that tree, which the
 * scenario keeps alive. Checks that involve more than one key (fencing needs token, redlock
 * needs an odd number of servers, …) run after a section is decoded.
 *
 * Layers: --set edits the file as written, before anything is resolved. A client group's lock,
 * workload and network are the resolved base sections with the group's keys laid over them, and
 * a variant is the resolved base with its paths replaced; both are decoded again. Building on
 * the resolved base means a reloaded scenario.json resolves to the same groups and variants.
 * A variant's tree shares every node it does not change with the base's and copies only the
 * objects on the paths it sets (copy on write), so resolving N variants is linear in N: a deep
 * copy of the base per variant copied all N variants' definitions N times.
 * One default depends on another key: a layer that sets duration_ms but not iterations gets the
 * iteration default that goes with its duration (see rederive_iterations).
 *
 * The first error stops the load; its message goes to the caller's buffer as
 * "FILE: [variants[I] (NAME): ]KEY.PATH: message".
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "fields.h"
#include "scenario.h"

#define MS_MAX      1000000000000LL   /* ~31 years: bounds durations so sums cannot overflow */
#define NAME_MAX_LEN 64
#define STR_MAX_LEN  200
#define PATH_LEN     320
#define DEF_ITERATIONS "iterations"   /* marker: the default depends on duration_ms */

_Static_assert(sizeof(lb_algorithm) == sizeof(int), "enums are stored as int");

struct lb__scenario_priv {
    json_t *resolved;   /* scenario.json; owns the strings of the scenario */
    json_t *keep;       /* decoded group sections (own the strings of the groups) */
    char   *file;
};

/* ---- names --------------------------------------------------------------------------------- */

static const char *const algorithm_names[] = {"token", "legacy", "redlock", NULL};
static const char *const wait_names[] = {"poll", "notify", "fifo", NULL};
static const char *const backoff_names[] = {
    "none", "constant", "linear", "exponential", "full-jitter", "equal-jitter",
    "decorrelated-jitter", "servicestack", NULL};
static const char *const cs_names[] = {"counter", "incr", "none", NULL};
static const char *const process_names[] = {"poisson", "uniform", NULL};
static const char *const driver_names[] = {"auto", "threads", "loop", "sim", NULL};
static const char *const persistence_names[] = {"none", "aof-everysec", "aof-always", NULL};
static const char *const action_names[] = {
    "crash", "pause", "delay", "partition", "reset", "kill-server", "pause-server",
    "clock-skew", "crash-host", "failover", "delay-replication", "partition-replication", NULL};
static const char *const when_names[] = {"holding", NULL};
static const char *const old_names[] = {"kill", "demote", NULL};

static const char *name_of(const char *const *names, size_t n, int i)
{
    return i >= 0 && (size_t)i < n ? names[i] : "?";
}
#define NAME_OF(tbl, i) name_of(tbl, sizeof(tbl) / sizeof(tbl[0]) - 1, (int)(i))

const char *lb_algorithm_name(lb_algorithm a) { return NAME_OF(algorithm_names, a); }
const char *lb_wait_name(lb_wait w) { return NAME_OF(wait_names, w); }
const char *lb_backoff_policy_name(lb_backoff_policy p) { return NAME_OF(backoff_names, p); }
const char *lb_critical_section_name(lb_critical_section c) { return NAME_OF(cs_names, c); }
const char *lb_arrival_process_name(lb_arrival_process p) { return NAME_OF(process_names, p); }
const char *lb_driver_name(lb_driver d) { return NAME_OF(driver_names, d); }
const char *lb_persistence_name(lb_persistence p) { return NAME_OF(persistence_names, p); }
const char *lb_event_action_name(lb_event_action a) { return NAME_OF(action_names, a); }
const char *lb_failover_old_name(lb_failover_old o) { return NAME_OF(old_names, o); }

/* ---- errors --------------------------------------------------------------------------------- */

typedef struct {
    const char *file;
    char        prefix[160];   /* "variants[I] (NAME): " while resolving a variant */
    char       *err;
    size_t      errlen;
    bool        external_servers;
} ctx;

/* Writes "FILE: PREFIX PATH: message" and returns -1. */
static int fail(ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "%s: %s%s%s%s", c->file, c->prefix, path,
                 *path ? ": " : "", msg);
    return -1;
}

/* A short rendering of a value for "got X": its JSON on one line, or for a long container
 * only its kind. */
static const char *describe(const json_t *v, char *buf, size_t n)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    if (!s)
        return "a value";
    if (strlen(s) <= 60)
        snprintf(buf, n, "%s", s);
    else if (json_is_object(v) || json_is_array(v))
        snprintf(buf, n, "%s", json_is_object(v) ? "an object" : "an array");
    else
        snprintf(buf, n, "%.57s...", s);
    free(s);
    return buf;
}
#define GOT(v) describe((v), (char[80]){0}, 80)

/* Appends to a path buffer, truncating (a truncated path in a message beats no message). */
static void path_append(char *out, size_t *n, const char *s)
{
    size_t len = strnlen(s, PATH_LEN - 1 - *n);
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
}

/* out = parent.key (out may not alias parent). */
static void path_key(char *out, const char *parent, const char *key)
{
    size_t n = 0;
    out[0] = '\0';
    path_append(out, &n, parent);
    if (*parent)
        path_append(out, &n, ".");
    path_append(out, &n, key);
}

static void path_index(char *out, const char *parent, size_t i)
{
    char num[24];
    snprintf(num, sizeof num, "%zu", i);
    path_key(out, parent, num);
}

/* ---- the schema ------------------------------------------------------------------------------ */

typedef enum { F_INT, F_NUM, F_BOOL, F_STR, F_ENUM, F_DIST, F_OBJ, F_SKIP } ftype;

typedef struct field {
    const char         *key;
    ftype               type;
    size_t              off;        /* of the value in the struct being filled */
    const char         *def;        /* default as JSON text; NULL = required */
    int64_t             min, max;   /* F_INT; F_STR: length */
    double              dmin, dmax; /* F_NUM */
    bool                nullable;   /* F_INT: null stores null_as */
    int64_t             null_as;
    bool                narrow;     /* F_INT stored in an int */
    const char *const  *names;      /* F_ENUM */
    const struct field *sub;        /* F_OBJ; nullable: null or absent leaves the struct zero,
                                       and its first member, a bool, says it is there */
} field;

#define INT_F(k, T, m, d, lo, hi) \
    {.key = k, .type = F_INT, .off = offsetof(T, m), .def = d, .min = lo, .max = hi}
#define NINT_F(k, T, m, d, lo, hi, nv) \
    {.key = k, .type = F_INT, .off = offsetof(T, m), .def = d, .min = lo, .max = hi, \
     .nullable = true, .null_as = nv}
#define NUM_F(k, T, m, d, lo, hi) \
    {.key = k, .type = F_NUM, .off = offsetof(T, m), .def = d, .dmin = lo, .dmax = hi}
#define BOOL_F(k, T, m, d) {.key = k, .type = F_BOOL, .off = offsetof(T, m), .def = d}
#define STR_F(k, T, m, d, minlen, maxlen) \
    {.key = k, .type = F_STR, .off = offsetof(T, m), .def = d, .min = minlen, .max = maxlen}
#define ENUM_F(k, T, m, d, n) {.key = k, .type = F_ENUM, .off = offsetof(T, m), .def = d, .names = n}
#define DIST_F(k, T, m, d) {.key = k, .type = F_DIST, .off = offsetof(T, m), .def = d}
#define OBJ_F(k, T, m, s) {.key = k, .type = F_OBJ, .off = offsetof(T, m), .def = "{}", .sub = s}
#define NOBJ_F(k, T, m, s) \
    {.key = k, .type = F_OBJ, .off = offsetof(T, m), .def = "null", .sub = s, .nullable = true}
#define SKIP_F(k) {.key = k, .type = F_SKIP}
#define END_F {.key = NULL}

static const field backoff_fields[] = {
    ENUM_F("policy", lb_backoff, policy, "\"exponential\"", backoff_names),
    INT_F("base_ms", lb_backoff, base_ms, "1", 0, MS_MAX),
    INT_F("cap_ms", lb_backoff, cap_ms, "100", 0, MS_MAX),
    END_F};

static const field lock_fields[] = {
    ENUM_F("algorithm", lb_lock, algorithm, "\"token\"", algorithm_names),
    STR_F("key", lb_lock, key, "\"testlock\"", 1, STR_MAX_LEN),
    INT_F("keys", lb_lock, keys, "1", 1, 100000),
    NINT_F("ttl_ms", lb_lock, ttl_ms, "30000", 0, MS_MAX, 0),
    NINT_F("wait_timeout_ms", lb_lock, wait_timeout_ms, "null", 0, MS_MAX, -1),
    ENUM_F("wait", lb_lock, wait, "\"poll\"", wait_names),
    OBJ_F("backoff", lb_lock, backoff, backoff_fields),
    BOOL_F("renew", lb_lock, renew, "false"),
    BOOL_F("fencing", lb_lock, fencing, "false"),
    NUM_F("drift_factor", lb_lock, drift_factor, "0.01", 0, 1),
    INT_F("command_timeout_ms", lb_lock, command_timeout_ms, "1000", 1, MS_MAX),
    INT_F("min_replicas", lb_lock, min_replicas, "0", 0, 100),
    INT_F("replica_timeout_ms", lb_lock, replica_timeout_ms, "100", 1, MS_MAX),
    END_F};

#define RATE_MAX 1e9

static const field arrival_fields[] = {
    NUM_F("rate_per_s", lb_arrival, rate_per_s, NULL, 0, RATE_MAX),
    ENUM_F("process", lb_arrival, process, "\"poisson\"", process_names),
    INT_F("max_outstanding", lb_arrival, max_outstanding, "10000", 0, 100000000),
    END_F};

static const field workload_fields[] = {
    NINT_F("iterations", lb_workload, iterations, DEF_ITERATIONS, 1, MS_MAX, 0),
    NINT_F("duration_ms", lb_workload, duration_ms, "null", 1, MS_MAX, -1),
    DIST_F("hold_ms", lb_workload, hold_ms, "0"),
    DIST_F("think_ms", lb_workload, think_ms, "0"),
    ENUM_F("critical_section", lb_workload, critical_section, "\"counter\"", cs_names),
    BOOL_F("release", lb_workload, release, "true"),
    NOBJ_F("arrival", lb_workload, arrival, arrival_fields),
    BOOL_F("inside_check", lb_workload, inside_check, "false"),
    END_F};

static const field network_fields[] = {
    INT_F("latency_ms", lb_network, latency_ms, "0", 0, MS_MAX),
    INT_F("jitter_ms", lb_network, jitter_ms, "0", 0, MS_MAX),
    END_F};

static const field redis_fields[] = {
    {.key = "servers", .type = F_INT, .off = offsetof(lb_redis, servers), .def = "1",
     .min = 1, .max = LB_SCENARIO_MAX_SERVERS, .narrow = true},
    ENUM_F("persistence", lb_redis, persistence, "\"none\"", persistence_names),
    {.key = "replicas", .type = F_INT, .off = offsetof(lb_redis, replicas), .def = "0",
     .min = 0, .max = LB_SCENARIO_MAX_REPLICAS, .narrow = true},
    INT_F("sentinels", lb_redis, sentinels, "0", 0, MS_MAX),   /* 0, 3 or 5: check_sentinels */
    END_F};

static const field sim_fields[] = {
    INT_F("rtt_us", lb_sim, rtt_us, "50", 0, MS_MAX),
    INT_F("server_us_per_command", lb_sim, server_us_per_command, "10", 0, MS_MAX),
    INT_F("script_us_per_call", lb_sim, script_us_per_call, "10", 0, MS_MAX),
    INT_F("client_us_per_command", lb_sim, client_us_per_command, "11", 0, MS_MAX),
    INT_F("client_cores", lb_sim, client_cores, "1", 1, 1024),
    INT_F("cores", lb_sim, cores, "0", 0, 1024),
    INT_F("server_hz", lb_sim, server_hz, "10", 1, 500),
    END_F};

static const field top_fields[] = {
    STR_F("name", lb_scenario, name, NULL, 1, NAME_MAX_LEN),
    STR_F("description", lb_scenario, description, "\"\"", 0, 4000),
    INT_F("seed", lb_scenario, seed, "1", 0, INT64_MAX),
    ENUM_F("driver", lb_scenario, driver, "\"auto\"", driver_names),
    OBJ_F("sim", lb_scenario, sim, sim_fields),
    OBJ_F("redis", lb_scenario, redis, redis_fields),
    OBJ_F("lock", lb_scenario, lock, lock_fields),
    OBJ_F("workload", lb_scenario, workload, workload_fields),
    OBJ_F("network", lb_scenario, network, network_fields),
    SKIP_F("clients"), SKIP_F("events"), SKIP_F("variants"), SKIP_F("expect"),
    END_F};

#define DEFAULT_CLIENTS "[{\"name\": \"worker\", \"count\": 5}]"

/* A group's own keys; lock, workload and network are merged over the base and decoded apart. */
static const field group_fields[] = {
    STR_F("name", lb_client_group, name, NULL, 1, NAME_MAX_LEN),   /* default "group-I", set by the caller */
    INT_F("count", lb_client_group, count, "1", 1, LB_SIM_MAX_CLIENTS),
    INT_F("start_ms", lb_client_group, start_ms, "0", 0, MS_MAX),
    SKIP_F("lock"), SKIP_F("workload"), SKIP_F("network"),
    END_F};

static const field variant_fields[] = {
    STR_F("name", lb_variant, name, NULL, 1, NAME_MAX_LEN),
    SKIP_F("set"),
    END_F};

/* Events are decoded into this, then copied into an lb_event. */
typedef struct {
    int64_t at_ms;
    int     action, when, old;
    int64_t restart_after_ms, duration_ms, latency_ms, jitter_ms, server, offset_ms;
} event_raw;

static const field event_fields[] = {
    INT_F("at_ms", event_raw, at_ms, NULL, 0, MS_MAX),
    ENUM_F("do", event_raw, action, NULL, action_names),
    SKIP_F("clients"),
    ENUM_F("when", event_raw, when, NULL, when_names),
    NINT_F("restart_after_ms", event_raw, restart_after_ms, NULL, 0, MS_MAX, -1),
    INT_F("duration_ms", event_raw, duration_ms, NULL, 0, MS_MAX),
    INT_F("latency_ms", event_raw, latency_ms, NULL, 0, MS_MAX),
    INT_F("jitter_ms", event_raw, jitter_ms, "0", 0, MS_MAX),
    INT_F("server", event_raw, server, NULL, 0, MS_MAX),
    INT_F("offset_ms", event_raw, offset_ms, NULL, -MS_MAX, MS_MAX),
    ENUM_F("old", event_raw, old, "\"kill\"", old_names),
    END_F};

/* Bits index event_fields. */
enum { E_AT = 1 << 0, E_DO = 1 << 1, E_CLIENTS = 1 << 2, E_WHEN = 1 << 3, E_RESTART = 1 << 4,
       E_DURATION = 1 << 5, E_LATENCY = 1 << 6, E_JITTER = 1 << 7, E_SERVER = 1 << 8,
       E_OFFSET = 1 << 9, E_OLD = 1 << 10 };

/* Per action (lb_event_action order): the keys it requires and the ones it also accepts. */
static const struct { unsigned required, optional; } action_keys[] = {
    [LB_EV_CRASH]        = {E_CLIENTS, E_WHEN | E_RESTART},
    [LB_EV_PAUSE]        = {E_CLIENTS | E_DURATION, E_WHEN},
    [LB_EV_DELAY]        = {E_CLIENTS | E_LATENCY | E_DURATION, E_JITTER},
    [LB_EV_PARTITION]    = {E_CLIENTS | E_DURATION, 0},
    [LB_EV_RESET]        = {E_CLIENTS, 0},
    [LB_EV_KILL_SERVER]  = {E_SERVER, E_RESTART},
    [LB_EV_CRASH_HOST]   = {E_SERVER, E_RESTART},
    [LB_EV_PAUSE_SERVER] = {E_SERVER | E_DURATION, 0},
    [LB_EV_CLOCK_SKEW]   = {E_CLIENTS | E_OFFSET, 0},
    [LB_EV_FAILOVER]     = {E_SERVER, E_OLD | E_RESTART},
    [LB_EV_DELAY_REPLICATION]     = {E_SERVER | E_LATENCY | E_DURATION, 0},
    [LB_EV_PARTITION_REPLICATION] = {E_SERVER | E_DURATION, 0},
};

static const field *find_field(const field *fields, const char *key)
{
    for (const field *f = fields; f->key; f++)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

/* ---- decoding values ---------------------------------------------------------------------- */

/* A range small enough to state is stated ("an integer from 1 to 9"); else only its sign. */
static bool int_range_stated(const field *f)
{
    return f->max < MS_MAX || f->min < 0;
}

static void int_phrase(const field *f, char *buf, size_t n)
{
    if (int_range_stated(f))
        snprintf(buf, n, "an integer from %" PRId64 " to %" PRId64, f->min, f->max);
    else
        snprintf(buf, n, "%s", f->min == 0 ? "a non-negative integer"
                             : f->min == 1 ? "a positive integer" : "an integer");
}

static int decode_int(ctx *c, const field *f, json_t *v, void *dst, const char *path)
{
    int64_t x = f->null_as;
    if (!(f->nullable && json_is_null(v))) {
        char what[96];
        int_phrase(f, what, sizeof what);
        x = json_integer_value(v);
        if (!json_is_integer(v) || x < f->min || (int_range_stated(f) && x > f->max))
            return fail(c, path, "must be %s%s, got %s", what, f->nullable ? " or null" : "",
                        GOT(v));
        if (x > f->max)
            return fail(c, path, "must be at most %" PRId64 ", got %s", f->max, GOT(v));
    }
    if (f->narrow)
        *(int *)dst = (int)x;
    else
        *(int64_t *)dst = x;
    return 0;
}

static int decode_num(ctx *c, const field *f, json_t *v, void *dst, const char *path)
{
    if (!json_is_number(v) || json_number_value(v) < f->dmin || json_number_value(v) > f->dmax)
        return fail(c, path, "must be a number from %g to %g, got %s", f->dmin, f->dmax, GOT(v));
    *(double *)dst = json_number_value(v);
    return 0;
}

static bool is_plain_string(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static int decode_str(ctx *c, const field *f, json_t *v, void *dst, const char *path)
{
    if (!is_plain_string(v))
        return fail(c, path, "must be a string, got %s", GOT(v));
    size_t len = json_string_length(v);
    if ((int64_t)len < f->min || (int64_t)len > f->max)
        return fail(c, path, "must be a string of %" PRId64 " to %" PRId64 " characters, got %s",
                    f->min, f->max, GOT(v));
    *(const char **)dst = json_string_value(v);
    return 0;
}

static int decode_enum(ctx *c, const field *f, json_t *v, void *dst, const char *path)
{
    if (is_plain_string(v))
        for (int i = 0; f->names[i]; i++)
            if (strcmp(f->names[i], json_string_value(v)) == 0) {
                memcpy(dst, &i, sizeof i);
                return 0;
            }
    char list[256] = "";
    for (int i = 0; f->names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 f->names[i]);
    return fail(c, path, "must be one of %s, got %s", list, GOT(v));
}

static int decode_bool(ctx *c, json_t *v, void *dst, const char *path)
{
    if (!json_is_boolean(v))
        return fail(c, path, "must be true or false, got %s", GOT(v));
    *(bool *)dst = json_is_true(v);
    return 0;
}

static bool is_ms(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= MS_MAX;
}

/* A number, {"uniform": [a, b]} or {"exponential": mean}, all non-negative integers (ms). */
static int decode_dist(ctx *c, json_t *v, lb_dist *d, const char *path)
{
    char sub[PATH_LEN];
    json_t *u = json_object_get(v, "uniform"), *e = json_object_get(v, "exponential");
    if (is_ms(v)) {
        *d = (lb_dist){.kind = LB_DIST_FIXED, .a = json_integer_value(v),
                       .b = json_integer_value(v)};
        return 0;
    }
    if (json_is_object(v) && json_object_size(v) == 1 && u) {
        path_key(sub, path, "uniform");
        if (!json_is_array(u) || json_array_size(u) != 2 || !is_ms(json_array_get(u, 0)) ||
            !is_ms(json_array_get(u, 1)))
            return fail(c, sub, "must be [a, b] with non-negative integers, got %s",
                        GOT(u));
        *d = (lb_dist){.kind = LB_DIST_UNIFORM, .a = json_integer_value(json_array_get(u, 0)),
                       .b = json_integer_value(json_array_get(u, 1))};
        if (d->a > d->b)
            return fail(c, sub, "a must not exceed b, got [%" PRId64 ", %" PRId64 "]", d->a,
                        d->b);
        return 0;
    }
    if (json_is_object(v) && json_object_size(v) == 1 && e) {
        path_key(sub, path, "exponential");
        if (!is_ms(e))
            return fail(c, sub, "must be a non-negative integer (the mean), got %s", GOT(e));
        *d = (lb_dist){.kind = LB_DIST_EXPONENTIAL, .mean = json_integer_value(e)};
        return 0;
    }
    return fail(c, path, "must be a non-negative integer, {\"uniform\": [a, b]} or "
                         "{\"exponential\": mean}, got %s", GOT(v));
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();   /* a scenario is small: running out of memory here is not recoverable */
    return p;
}

/* ---- decoding objects ---------------------------------------------------------------------- */

static int decode_object(ctx *c, const field *fields, json_t *in, void *base, const char *path,
                         json_t **out);

/* Validates v against f, stores it at base + f->off and returns the resolved value in *out. */
static int decode_value(ctx *c, const field *f, json_t *v, void *base, const char *path,
                        json_t **out)
{
    void *dst = (char *)base + f->off;
    int rc = -1;
    switch (f->type) {
    case F_INT:  rc = decode_int(c, f, v, dst, path); break;
    case F_NUM:  rc = decode_num(c, f, v, dst, path); break;
    case F_BOOL: rc = decode_bool(c, v, dst, path); break;
    case F_STR:  rc = decode_str(c, f, v, dst, path); break;
    case F_ENUM: rc = decode_enum(c, f, v, dst, path); break;
    case F_DIST: rc = decode_dist(c, v, dst, path); break;
    case F_OBJ:
        if (f->nullable && json_is_null(v)) {
            rc = 0;
            break;
        }
        if (decode_object(c, f->sub, v, dst, path, out) < 0)
            return -1;
        if (f->nullable)
            *(bool *)dst = true;
        return 0;
    case F_SKIP: rc = 0; break;
    }
    *out = rc == 0 ? json_incref(v) : NULL;
    return rc;
}

static json_t *load_default(const field *f, const json_t *in)
{
    const char *def = f->def;
    if (strcmp(def, DEF_ITERATIONS) == 0) {   /* one iteration unless a duration bounds the run */
        const json_t *d = json_object_get(in, "duration_ms");
        def = d && !json_is_null(d) ? "null" : "1";
    }
    return json_loads(def, JSON_DECODE_ANY, NULL);
}

static int check_keys(ctx *c, const field *fields, json_t *in, const char *path)
{
    const char *key;
    size_t len;
    json_t *v;
    json_object_keylen_foreach(in, key, len, v) {
        if (len != strlen(key) || !find_field(fields, key)) {
            char sub[PATH_LEN];
            path_key(sub, path, key);
            return fail(c, sub, "unknown key");
        }
    }
    return 0;
}

/* Decodes the object `in` (NULL = absent: all defaults) into base, key by key in table order;
 * *out is the resolved object (table order, defaults filled, F_SKIP keys left to the caller). */
static int decode_object(ctx *c, const field *fields, json_t *in, void *base, const char *path,
                         json_t **out)
{
    *out = NULL;
    if (in && !json_is_object(in))
        return fail(c, path, "%s be an object, got %s", *path ? "must" : "the top level must",
                    GOT(in));
    if (in && check_keys(c, fields, in, path) < 0)
        return -1;
    json_t *res = json_object();
    for (const field *f = fields; f->key; f++) {
        if (f->type == F_SKIP)
            continue;
        char sub[PATH_LEN];
        path_key(sub, path, f->key);
        json_t *v = in ? json_object_get(in, f->key) : NULL, *owned = NULL, *rv;
        if (!v && (f->type != F_OBJ || f->nullable)) {
            if (!f->def) {
                json_decref(res);
                return fail(c, sub, "missing required key");
            }
            v = owned = load_default(f, in);
        }
        int rc = decode_value(c, f, v, base, sub, &rv);
        json_decref(owned);
        if (rc < 0) {
            json_decref(res);
            return -1;
        }
        json_object_set_new(res, f->key, rv);
    }
    *out = res;
    return 0;
}

static bool is_name(const char *s)
{
    if (!*s || strlen(s) > NAME_MAX_LEN)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return false;
    return true;
}

static int check_name(ctx *c, const json_t *v, const char *path)
{
    if (!is_name(json_string_value(v)))
        return fail(c, path, "must match [a-z0-9-]+ (at most %d characters), got %s",
                    NAME_MAX_LEN, GOT(v));
    return 0;
}

/* ---- client groups ------------------------------------------------------------------------ */

/* The base section as written with the group's keys laid over it; nested sections (backoff)
 * merge key by key, everything else is replaced. */
static json_t *merge_section(json_t *base, json_t *over, const field *fields)
{
    json_t *out = json_is_object(base) ? json_copy(base) : json_object(), *v;
    const char *key;
    size_t len;
    json_object_keylen_foreach(over, key, len, v) {
        const field *f = len == strlen(key) ? find_field(fields, key) : NULL;
        json_t *bv = json_object_getn(out, key, len);
        if (f && f->type == F_OBJ && json_is_object(v) && json_is_object(bv))
            json_object_setn_new(out, key, len, merge_section(bv, v, f->sub));
        else
            json_object_setn(out, key, len, v);
    }
    return out;
}

/* Where a check involving k1 (and k2) is reported: the group's override when it sets one of
 * them, else the base section. */
static void check_path(char *out, const json_t *over, const char *gpath, const char *section,
                       const char *k1, const char *k2)
{
    bool in_group = over && (json_object_get(over, k1) || (k2 && json_object_get(over, k2)));
    path_key(out, in_group ? gpath : section, k1);
}

static int check_lock(ctx *c, const lb_lock *l, const lb_redis *redis, const json_t *over,
                      const char *gpath)
{
    char p[PATH_LEN];
    const char *alg = lb_algorithm_name(l->algorithm);
    int servers = redis->servers;
    /* A managed server has redis.replicas of them; --redis's servers have what they have. */
    check_path(p, over, gpath, "lock", "min_replicas", NULL);
    if (!c->external_servers && l->min_replicas > redis->replicas)
        return fail(c, p, "%" PRId64 " replicas must acknowledge each grant, but redis.replicas "
                    "is %d", l->min_replicas, redis->replicas);
    check_path(p, over, gpath, "lock", "algorithm", NULL);
    if (l->algorithm != LB_ALG_REDLOCK && servers != 1)
        return fail(c, p, "%s uses exactly one server, but redis.servers is %d", alg, servers);
    if (l->algorithm == LB_ALG_REDLOCK && servers % 2 == 0)
        return fail(c, p, "redlock needs an odd number of servers, but redis.servers is %d",
                    servers);
    check_path(p, over, gpath, "lock", "fencing", "algorithm");
    if (l->fencing && l->algorithm != LB_ALG_TOKEN)
        return fail(c, p, "needs algorithm token, got %s", alg);
    check_path(p, over, gpath, "lock", "renew", "algorithm");
    if (l->renew && l->algorithm == LB_ALG_LEGACY)
        return fail(c, p, "needs algorithm token or redlock, got legacy");
    check_path(p, over, gpath, "lock", "backoff", NULL);
    if (l->backoff.base_ms > l->backoff.cap_ms)
        return fail(c, p, "base_ms must not exceed cap_ms, got %" PRId64 " > %" PRId64,
                    l->backoff.base_ms, l->backoff.cap_ms);
    return 0;
}

static int check_workload(ctx *c, const lb_workload *w, const json_t *over, const char *gpath)
{
    bool in_group = over && (json_object_get(over, "iterations") ||
                             json_object_get(over, "duration_ms"));
    if (w->iterations == 0 && w->duration_ms < 0)
        return fail(c, in_group ? gpath : "workload",
                    "iterations and duration_ms are both null: nothing would end the run");
    char p[PATH_LEN], q[PATH_LEN];
    if (w->arrival.on && !(w->arrival.rate_per_s > 0)) {
        check_path(p, over, gpath, "workload", "arrival", NULL);
        path_key(q, p, "rate_per_s");
        return fail(c, q, "must be greater than 0, got %g", w->arrival.rate_per_s);
    }
    if (w->arrival.on && (w->think_ms.kind != LB_DIST_FIXED || w->think_ms.a != 0)) {
        check_path(p, over, gpath, "workload", "think_ms", "arrival");
        return fail(c, p, "must be 0 with an arrival schedule (the schedule says when each "
                          "acquire starts)");
    }
    return 0;
}

/* A layer (a group's workload, a variant's set) that sets duration_ms but not iterations gets
 * the iteration default that goes with its duration (none for a number, 1 for null), not the
 * base's resolved value: "iterations applies only when duration_ms is null". */
static void rederive_iterations(json_t *workload, const json_t *layer)
{
    if (json_object_get(layer, "duration_ms") && !json_object_get(layer, "iterations"))
        json_object_del(workload, "iterations");
}

/* Decodes the group's effective `key` section into dst; keeps the group's override (as
 * written) in the resolved group. */
static int decode_section(ctx *c, lb_scenario *s, json_t *group, json_t *rgroup,
                          const char *key, const field *fields, void *dst, const char *gpath)
{
    char path[PATH_LEN];
    path_key(path, gpath, key);
    json_t *over = json_object_get(group, key), *res;
    if (over && !json_is_object(over))
        return fail(c, path, "must be an object, got %s", GOT(over));
    json_t *merged = merge_section(json_object_get(s->priv->resolved, key), over, fields);
    if (strcmp(key, "workload") == 0)
        rederive_iterations(merged, over);
    int rc = decode_object(c, fields, merged, dst, path, &res);
    json_decref(merged);
    if (rc < 0)
        return -1;
    json_array_append_new(s->priv->keep, res);
    if (over)
        json_object_set(rgroup, key, over);
    if (strcmp(key, "lock") == 0)
        return check_lock(c, dst, &s->redis, over, path);
    if (strcmp(key, "workload") == 0)
        return check_workload(c, dst, over, path);
    return 0;
}

static int decode_group_sections(ctx *c, lb_scenario *s, json_t *g, json_t *rg,
                                 lb_client_group *grp, const char *gpath)
{
    if (decode_section(c, s, g, rg, "lock", lock_fields, &grp->lock, gpath) < 0 ||
        decode_section(c, s, g, rg, "workload", workload_fields, &grp->workload,
                       gpath) < 0 ||
        decode_section(c, s, g, rg, "network", network_fields, &grp->network, gpath) < 0)
        return -1;
    return 0;
}

static int decode_group(ctx *c, lb_scenario *s, json_t *g, size_t i, json_t *res)
{
    char gpath[PATH_LEN], npath[PATH_LEN];
    lb_client_group *grp = &s->groups[i];
    path_index(gpath, "clients", i);
    path_key(npath, gpath, "name");
    if (!json_is_object(g))
        return fail(c, gpath, "must be an object, got %s", GOT(g));
    json_t *gin = json_copy(g), *rg;
    if (!json_object_get(gin, "name"))
        json_object_set_new(gin, "name", json_sprintf("group-%zu", i));
    int rc = decode_object(c, group_fields, gin, grp, gpath, &rg);
    json_decref(gin);
    if (rc < 0)
        return -1;
    json_array_append_new(res, rg);
    if (check_name(c, json_object_get(rg, "name"), npath) < 0)
        return -1;
    for (size_t j = 0; j < i; j++)
        if (strcmp(s->groups[j].name, grp->name) == 0)
            return fail(c, npath, "duplicate group name %s", GOT(json_object_get(rg, "name")));
    if (decode_group_sections(c, s, g, rg, grp, gpath) < 0)
        return -1;
    grp->first_client = s->nclients;
    s->nclients += (size_t)grp->count;
    if (s->driver != LB_DRIVER_SIM && s->nclients > LB_SCENARIO_MAX_CLIENTS)
        return fail(c, "clients", "%zu clients in all, at most %d (%d with \"driver\": \"sim\")",
                    s->nclients, LB_SCENARIO_MAX_CLIENTS, LB_SIM_MAX_CLIENTS);
    if (s->nclients > LB_SIM_MAX_CLIENTS)
        return fail(c, "clients", "%zu clients in all, at most %d", s->nclients,
                    LB_SIM_MAX_CLIENTS);
    return 0;
}

static int decode_clients(ctx *c, json_t *raw, lb_scenario *s, json_t **out)
{
    json_t *in = json_object_get(raw, "clients"), *owned = NULL;
    if (!in)
        in = owned = json_loads(DEFAULT_CLIENTS, 0, NULL);
    int rc = -1;
    *out = json_array();
    if (!json_is_array(in) || json_array_size(in) == 0)
        fail(c, "clients", "must be a non-empty array of client groups, got %s", GOT(in));
    else {
        s->ngroups = json_array_size(in);
        s->groups = xcalloc(s->ngroups, sizeof *s->groups);
        rc = 0;
        for (size_t i = 0; i < s->ngroups && rc == 0; i++)
            rc = decode_group(c, s, json_array_get(in, i), i, *out);
    }
    json_decref(owned);
    return rc;
}

/* ---- events --------------------------------------------------------------------------------- */

static int field_index(const field *fields, const char *key, size_t len)
{
    for (int i = 0; fields[i].key; i++)
        if (len == strlen(key) && strcmp(fields[i].key, key) == 0)
            return i;
    return -1;
}

/* "all" or a non-empty list of distinct client numbers. */
static int decode_event_clients(ctx *c, const json_t *v, const lb_scenario *s, lb_event *ev,
                                const char *path)
{
    if (is_plain_string(v) && strcmp(json_string_value(v), "all") == 0) {
        ev->all_clients = true;
        ev->nclients = s->nclients;
        ev->clients = xcalloc(s->nclients, sizeof *ev->clients);
        for (size_t i = 0; i < s->nclients; i++)
            ev->clients[i] = (int)i;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(c, path, "must be \"all\" or a non-empty list of client numbers, got %s",
                    GOT(v));
    ev->clients = xcalloc(json_array_size(v), sizeof *ev->clients);
    for (size_t i = 0; i < json_array_size(v); i++) {
        char sub[PATH_LEN];
        json_t *x = json_array_get(v, i);
        json_int_t n = json_integer_value(x);
        path_index(sub, path, i);
        if (!json_is_integer(x) || n < 0)
            return fail(c, sub, "must be a client number, got %s", GOT(x));
        if ((size_t)n >= s->nclients)
            return fail(c, sub, "client %" JSON_INTEGER_FORMAT " does not exist (clients are 0 to "
                        "%zu)", n, s->nclients - 1);
        for (size_t j = 0; j < i; j++)
            if (ev->clients[j] == n)
                return fail(c, sub, "client %" JSON_INTEGER_FORMAT " is listed twice", n);
        ev->clients[ev->nclients++] = (int)n;
    }
    return 0;
}

static int check_event_keys(ctx *c, json_t *v, unsigned allowed, const char *action,
                            const char *path)
{
    const char *key;
    size_t len;
    json_t *x;
    json_object_keylen_foreach(v, key, len, x) {
        char sub[PATH_LEN];
        int i = field_index(event_fields, key, len);
        path_key(sub, path, key);
        if (i < 0)
            return fail(c, sub, "unknown key");
        if (!(allowed & (1u << i)))
            return fail(c, sub, "unknown key for %s", action);
    }
    return 0;
}

/* Decodes the keys the action takes, in table order, into r (and the client list into ev). */
static int decode_event_fields(ctx *c, json_t *v, const lb_scenario *s, event_raw *r,
                               lb_event *ev, const char *path, json_t *res)
{
    unsigned required = E_AT | E_DO | action_keys[r->action].required;
    unsigned allowed = required | action_keys[r->action].optional;
    for (int i = 0; event_fields[i].key; i++) {
        const field *f = &event_fields[i];
        char sub[PATH_LEN];
        json_t *x = json_object_get(v, f->key), *owned = NULL, *rv = NULL;
        path_key(sub, path, f->key);
        if (!(allowed & (1u << i)) || (!x && !(required & (1u << i)) && !f->def))
            continue;
        if (!x && (required & (1u << i)))
            return i == 0 ? fail(c, sub, "missing required key")
                          : fail(c, sub, "missing required key for %s", action_names[r->action]);
        if (!x)
            x = owned = load_default(f, v);
        int rc = f->type == F_SKIP ? decode_event_clients(c, x, s, ev, sub)
                                   : decode_value(c, f, x, r, sub, &rv);
        if (rc == 0 && f->type == F_SKIP)
            rv = json_incref(x);
        json_decref(owned);
        if (rc < 0)
            return -1;
        json_object_set_new(res, f->key, rv);
    }
    return 0;
}

static bool acts_on_replicas(int action)
{
    return action == LB_EV_FAILOVER || action == LB_EV_DELAY_REPLICATION ||
           action == LB_EV_PARTITION_REPLICATION;
}

/* failover and the replication faults: the server has replicas; a demoted primary keeps
 * running, so only a killed one can restart. */
static int check_event_replicas(ctx *c, const event_raw *r, const lb_scenario *s,
                                const char *path)
{
    char sub[PATH_LEN];
    path_key(sub, path, "server");
    if (s->redis.replicas == 0)
        return fail(c, sub, "%s needs replicas of server %" PRId64 ", but redis.replicas is 0",
                    action_names[r->action], r->server);
    path_key(sub, path, "restart_after_ms");
    if (r->action == LB_EV_FAILOVER && r->old == LB_OLD_DEMOTE && r->restart_after_ms >= 0)
        return fail(c, sub, "only with \"old\": \"kill\" (a demoted primary keeps running)");
    return 0;
}

static int check_event_server(ctx *c, const event_raw *r, const lb_scenario *s,
                              const char *path)
{
    char sub[PATH_LEN];
    if (r->action != LB_EV_KILL_SERVER && r->action != LB_EV_PAUSE_SERVER &&
        r->action != LB_EV_CRASH_HOST && !acts_on_replicas(r->action))
        return 0;
    path_key(sub, path, "server");
    if (r->server >= s->redis.servers)
        return fail(c, sub, "server %" PRId64 " does not exist (redis.servers is %d)", r->server,
                    s->redis.servers);
    if (acts_on_replicas(r->action) && check_event_replicas(c, r, s, path) < 0)
        return -1;
    path_key(sub, path, "do");
    if (r->action == LB_EV_CRASH_HOST && s->driver != LB_DRIVER_SIM)
        return fail(c, sub, "crash-host is the simulator's (a real run cannot lose its host): "
                            "set \"driver\": \"sim\"");
    if (r->action == LB_EV_CRASH_HOST)
        return 0;
    if (c->external_servers)
        return fail(c, sub, "%s needs servers that lockbench manages, not --redis",
                    action_names[r->action]);
    return 0;
}

/* Sentinels are real processes lockbench starts to watch the primaries it manages and promote
 * one of their replicas: 3 or 5 of them (a majority of 2 or 3 agrees that a primary is down),
 * only with replicas, not on --redis's servers, not in the simulator. Clients find the primary
 * through them (sentinel://), so the fault proxy, which relays a client to one fixed address,
 * cannot carry a client's own network faults. */
static int check_sentinels(ctx *c, const lb_scenario *s)
{
    const char *key = "redis.sentinels";
    if (s->redis.sentinels == 0)
        return 0;
    if (s->redis.sentinels != 3 && s->redis.sentinels != 5)
        return fail(c, key, "must be 0, 3 or 5 (a majority of 2 or 3 agrees on a failover), got "
                    "%" PRId64, s->redis.sentinels);
    if (s->driver == LB_DRIVER_SIM)
        return fail(c, key, "the simulator does not model sentinels: run this scenario with "
                            "\"driver\": \"loop\" or \"threads\"");
    if (c->external_servers)
        return fail(c, key, "sentinels watch servers that lockbench manages, not --redis");
    if (s->redis.replicas == 0)
        return fail(c, key, "sentinels promote a replica: set redis.replicas to 1 or more");
    for (size_t g = 0; g < s->ngroups; g++) {
        const lb_network *n = &s->groups[g].network;
        if (n->latency_ms > 0 || n->jitter_ms > 0)
            return fail(c, key, "clients follow the primary the sentinels name, and the fault "
                                "proxy relays to a fixed address: client group %s has network "
                                "latency or jitter", s->groups[g].name);
    }
    return 0;
}

/* With sentinels, an event that would fight them or need a fixed address for a client. */
static int check_event_sentinels(ctx *c, const event_raw *r, const lb_scenario *s,
                                 const char *path)
{
    char sub[PATH_LEN];
    if (s->redis.sentinels == 0)
        return 0;
    path_key(sub, path, "do");
    if (r->action == LB_EV_FAILOVER)
        return fail(c, sub, "failover is lockbench's own promotion, behind the backs of the "
                            "sentinels (redis.sentinels), which would undo it: kill-server or "
                            "pause-server the primary and let them promote a replica");
    if (r->action == LB_EV_DELAY || r->action == LB_EV_PARTITION || r->action == LB_EV_RESET)
        return fail(c, sub, "%s relays clients through the fault proxy to a fixed address, and "
                            "with redis.sentinels they follow the primary the sentinels name",
                    action_names[r->action]);
    return 0;
}

static int decode_event(ctx *c, json_t *v, size_t i, lb_event *ev, const lb_scenario *s,
                        json_t *res_events)
{
    char path[PATH_LEN], sub[PATH_LEN];
    event_raw r = {.when = -1, .restart_after_ms = -1, .server = -1, .old = LB_OLD_KILL};
    json_t *d, *rv;
    path_index(path, "events", i);
    path_key(sub, path, "do");
    if (!json_is_object(v))
        return fail(c, path, "must be an object, got %s", GOT(v));
    if (!(d = json_object_get(v, "do")))
        return fail(c, sub, "missing required key");
    if (decode_value(c, find_field(event_fields, "do"), d, &r, sub, &rv) < 0)
        return -1;
    json_decref(rv);
    unsigned allowed = E_AT | E_DO | action_keys[r.action].required |
                       action_keys[r.action].optional;
    if (check_event_keys(c, v, allowed, action_names[r.action], path) < 0)
        return -1;
    json_t *res = json_object();
    json_array_append_new(res_events, res);
    if (decode_event_fields(c, v, s, &r, ev, path, res) < 0 ||
        check_event_server(c, &r, s, path) < 0 || check_event_sentinels(c, &r, s, path) < 0)
        return -1;
    ev->at_ms = r.at_ms;
    ev->action = (lb_event_action)r.action;
    ev->when_holding = r.when == 0;
    ev->restart_after_ms = r.restart_after_ms;
    ev->duration_ms = r.duration_ms;
    ev->latency_ms = r.latency_ms;
    ev->jitter_ms = r.jitter_ms;
    ev->server = (int)r.server;
    ev->offset_ms = r.offset_ms;
    ev->old = (lb_failover_old)r.old;
    return 0;
}

/* Replicas are real processes lockbench starts: not on --redis's servers, not in the
 * simulator's model (yet). Checked before the events, which may need them. */
static int check_redis(ctx *c, const lb_scenario *s)
{
    if (check_sentinels(c, s) < 0)
        return -1;
    if (s->redis.replicas > 0 && c->external_servers)
        return fail(c, "redis.replicas", "replicas need servers that lockbench manages, not --redis");
    return 0;
}

/* ---- random schedules ---------------------------------------------------------------------
 * An event as written may be a template: a distribution in place of a time ({"uniform": [a, b]},
 * {"exponential": mean}), {"choose": k} in place of its clients (k distinct) or its server (one
 * event per server drawn), "p" (the chance it happens at all) and "times" (k events, drawn
 * independently). Templates are drawn here, before decoding, so every later stage -- the
 * drivers, events.csv, scenario.json, a failure file -- sees plain events with the drawn values:
 * a real run draws once, and the resolved file replays the draws on any driver.
 *
 * The draws come from the scenario's seed through a stream of their own per event and copy
 * (seed, place in the file, copy number), apart from the clients' streams, so drawing them
 * disturbs no client and editing one event leaves the others' draws alone. Each copy draws in
 * a fixed order: p, then the times in the order of event_fields, then clients, then server. */

static const char *const drawn_keys[] = {"at_ms", "restart_after_ms", "duration_ms",
                                         "latency_ms", "jitter_ms", "offset_ms", NULL};

static uint64_t mix64(uint64_t z)   /* splitmix64's finalizer */
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t draw_next(uint64_t *s)
{
    return mix64(*s += 0x9e3779b97f4a7c15ULL);
}

static double draw_unit(uint64_t *s)   /* [0, 1) */
{
    return (double)(draw_next(s) >> 11) * 0x1.0p-53;
}

/* Each input goes through the whole mix before the next joins: neighbouring events and copies
 * (inputs one apart) get unrelated streams. */
static uint64_t draw_stream(uint64_t seed, size_t event, int64_t copy)
{
    uint64_t s = mix64(seed ^ 0x6576656e7473ULL);   /* "events": apart from the clients' streams */
    s = mix64(s ^ mix64((uint64_t)event + 0x9e3779b97f4a7c15ULL));
    return mix64(s ^ mix64((uint64_t)copy + 0x632be59bd9b4e019ULL));
}

static bool is_template(json_t *v)
{
    if (json_object_get(v, "p") || json_object_get(v, "times"))
        return true;
    for (int k = 0; drawn_keys[k]; k++)
        if (json_is_object(json_object_get(v, drawn_keys[k])))
            return true;
    return json_is_object(json_object_get(v, "clients")) ||
           json_is_object(json_object_get(v, "server"));
}

/* A time the field f takes: an integer in its range, or a distribution of such. */
static int check_drawn(ctx *c, const field *f, json_t *v, const char *path)
{
    char sub[PATH_LEN];
    json_t *u = json_object_get(v, "uniform"), *e = json_object_get(v, "exponential");
    if (!json_is_object(v))
        return 0;   /* decoded (and checked) as a plain value */
    if (json_object_size(v) == 1 && u) {
        path_key(sub, path, "uniform");
        json_t *a = json_array_get(u, 0), *b = json_array_get(u, 1);
        if (!json_is_array(u) || json_array_size(u) != 2 || !json_is_integer(a) ||
            !json_is_integer(b) || json_integer_value(a) < f->min ||
            json_integer_value(b) > f->max)
            return fail(c, sub, "must be [a, b], integers from %" PRId64 " to %" PRId64
                        ", got %s", f->min, f->max, GOT(u));
        if (json_integer_value(a) > json_integer_value(b))
            return fail(c, sub, "a must not exceed b, got %s", GOT(u));
        return 0;
    }
    if (json_object_size(v) == 1 && e) {
        path_key(sub, path, "exponential");
        if (!json_is_number(e) || json_number_value(e) <= 0 ||
            json_number_value(e) > (double)f->max)
            return fail(c, sub, "must be a positive number (the mean, ms), got %s", GOT(e));
        return 0;
    }
    return fail(c, path, "must be an integer, {\"uniform\": [a, b]} or {\"exponential\": mean}, "
                         "got %s", GOT(v));
}

static json_int_t draw_time(const field *f, json_t *v, uint64_t *rng)
{
    json_t *u = json_object_get(v, "uniform");
    if (u) {
        json_int_t a = json_integer_value(json_array_get(u, 0));
        json_int_t b = json_integer_value(json_array_get(u, 1));
        json_int_t x = a + (json_int_t)(draw_unit(rng) * ((double)(b - a) + 1.0));
        return x > b ? b : x;
    }
    double x = -log(1.0 - draw_unit(rng)) * json_number_value(json_object_get(v, "exponential"));
    return x >= (double)f->max ? f->max : (json_int_t)llround(x);
}

/* {"choose": k} with 1 <= k <= n; n = 0 when what it chooses from is not known here. */
static int check_choose(ctx *c, json_t *v, int64_t n, const char *what, const char *path)
{
    char sub[PATH_LEN];
    json_t *k = json_object_get(v, "choose");
    if (!json_is_object(v))
        return 0;
    path_key(sub, path, "choose");
    if (json_object_size(v) != 1 || !k)
        return fail(c, path, "must be {\"choose\": k}, got %s", GOT(v));
    if (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > n)
        return fail(c, sub, "must be an integer from 1 to %" PRId64 " (the %s), got %s", n,
                    what, GOT(k));
    return 0;
}

/* k distinct numbers of 0..n-1, ascending (Floyd's sampling over a bitmap). */
static json_t *draw_choice(int64_t n, int64_t k, uint64_t *rng)
{
    uint8_t *taken = xcalloc((size_t)(n + 7) / 8, 1);
    for (int64_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)(draw_unit(rng) * (double)(j + 1));
        t = t > j ? j : t;
        if (taken[t / 8] & (1u << (t % 8)))
            t = j;
        taken[t / 8] |= (uint8_t)(1u << (t % 8));
    }
    json_t *out = json_array();
    for (int64_t i = 0; i < n; i++)
        if (taken[i / 8] & (1u << (i % 8)))
            json_array_append_new(out, json_integer(i));
    free(taken);
    return out;
}

static int check_template(ctx *c, json_t *v, const lb_scenario *s, const char *path,
                          json_int_t *times, double *p)
{
    char sub[PATH_LEN];
    json_t *t = json_object_get(v, "times"), *pv = json_object_get(v, "p");
    *times = 1;
    *p = 1.0;
    path_key(sub, path, "times");
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 10000))
        return fail(c, sub, "must be an integer from 1 to 10000 (events drawn), got %s", GOT(t));
    if (t)
        *times = json_integer_value(t);
    path_key(sub, path, "p");
    if (pv && (!json_is_number(pv) || json_number_value(pv) < 0 || json_number_value(pv) > 1))
        return fail(c, sub, "must be a number from 0 to 1 (the chance the event happens), got %s",
                    GOT(pv));
    if (pv)
        *p = json_number_value(pv);
    for (int k = 0; drawn_keys[k]; k++) {
        path_key(sub, path, drawn_keys[k]);
        if (check_drawn(c, find_field(event_fields, drawn_keys[k]),
                        json_object_get(v, drawn_keys[k]), sub) < 0)
            return -1;
    }
    path_key(sub, path, "clients");
    if (check_choose(c, json_object_get(v, "clients"), (int64_t)s->nclients, "clients", sub) < 0)
        return -1;
    path_key(sub, path, "server");
    return check_choose(c, json_object_get(v, "server"), s->redis.servers, "servers", sub);
}

/* Draws the copies of template v (the file's event i) into out: plain events. */
static int draw_template(ctx *c, json_t *v, size_t i, const lb_scenario *s, json_t *out)
{
    char path[PATH_LEN];
    json_int_t times;
    double p;
    path_index(path, "events", i);
    if (check_template(c, v, s, path, &times, &p) < 0)
        return -1;
    for (json_int_t copy = 0; copy < times; copy++) {
        uint64_t rng = draw_stream(s->seed, i, copy);
        if (p < 1.0 && !(draw_unit(&rng) < p))
            continue;
        json_t *e = json_copy(v), *x;
        json_object_del(e, "times");
        json_object_del(e, "p");
        for (int k = 0; drawn_keys[k]; k++)
            if (json_is_object(x = json_object_get(e, drawn_keys[k])))
                json_object_set_new(e, drawn_keys[k],
                                    json_integer(draw_time(find_field(event_fields, drawn_keys[k]),
                                                           x, &rng)));
        if (json_is_object(x = json_object_get(e, "clients")))
            json_object_set_new(e, "clients",
                                draw_choice((int64_t)s->nclients,
                                            json_integer_value(json_object_get(x, "choose")), &rng));
        json_t *servers = NULL;
        if (json_is_object(x = json_object_get(e, "server")))
            servers = draw_choice(s->redis.servers,
                                  json_integer_value(json_object_get(x, "choose")), &rng);
        for (size_t k = 0; k < (servers ? json_array_size(servers) : 1); k++) {
            json_t *one = servers ? json_copy(e) : json_incref(e);
            if (servers)
                json_object_set(one, "server", json_array_get(servers, k));
            json_array_append_new(out, one);
        }
        json_decref(servers);
        json_decref(e);
    }
    return 0;
}

static int decode_events(ctx *c, json_t *raw, lb_scenario *s, json_t **out)
{
    json_t *in = json_object_get(raw, "events"), *drawn;
    size_t *origin;   /* drawn event → its place in the file, for messages */
    *out = json_array();
    if (check_redis(c, s) < 0)
        return -1;
    if (!in)
        return 0;
    if (!json_is_array(in))
        return fail(c, "events", "must be an array of events, got %s", GOT(in));
    drawn = json_array();
    origin = xcalloc(1, sizeof *origin);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(in); i++) {
        json_t *v = json_array_get(in, i);
        size_t before = json_array_size(drawn);
        if (json_is_object(v) && is_template(v))
            rc = draw_template(c, v, i, s, drawn);
        else
            json_array_append(drawn, v);
        origin = realloc(origin, (json_array_size(drawn) + 1) * sizeof *origin);
        if (!origin)
            abort();
        for (size_t k = before; k < json_array_size(drawn); k++)
            origin[k] = i;
    }
    s->nevents = rc == 0 ? json_array_size(drawn) : 0;
    s->events = xcalloc(s->nevents, sizeof *s->events);
    for (size_t i = 0; rc == 0 && i < s->nevents; i++)
        rc = decode_event(c, json_array_get(drawn, i), origin[i], &s->events[i], s, *out);
    free(origin);
    json_decref(drawn);
    return rc;
}

/* ---- variants ----------------------------------------------------------------------------- */

static int decode_sets(ctx *c, json_t *set, lb_variant *v, const char *path)
{
    const char *key;
    size_t len;
    json_t *x;
    if (!json_is_object(set))
        return fail(c, path, "must be an object mapping key paths to values, got %s", GOT(set));
    v->sets = xcalloc(json_object_size(set), sizeof *v->sets);
    json_object_keylen_foreach(set, key, len, x) {
        char sub[PATH_LEN];
        size_t first = strcspn(key, ".");
        path_key(sub, path, key);
        if (len != strlen(key) || len == 0)
            return fail(c, sub, "must be a dotted key path");
        if ((first == 4 && strncmp(key, "name", 4) == 0) ||
            (first == 8 && strncmp(key, "variants", 8) == 0) ||
            (first == 6 && strncmp(key, "expect", 6) == 0))
            return fail(c, sub, "a variant cannot set name, variants or expect (per-variant "
                                "expectations go under expect.variants)");
        v->sets[v->nsets].path = key;
        v->sets[v->nsets++].value = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
    }
    return 0;
}

/* seen: the names so far, as the keys of an object (a hash, so N variants cost N lookups). */
static int decode_variant(ctx *c, lb_scenario *s, json_t *in, size_t i, json_t *res,
                          json_t *seen)
{
    char path[PATH_LEN], sub[PATH_LEN];
    lb_variant *v = &s->variants[i];
    json_t *rv, *set;
    path_index(path, "variants", i);
    path_key(sub, path, "name");
    if (decode_object(c, variant_fields, in, v, path, &rv) < 0)
        return -1;
    json_array_append_new(res, rv);
    if (check_name(c, json_object_get(rv, "name"), sub) < 0)
        return -1;
    if (json_object_get(seen, v->name))
        return fail(c, sub, "duplicate variant name %s", GOT(json_object_get(rv, "name")));
    json_object_set_new(seen, v->name, json_true());
    set = json_object_get(in, "set");
    json_object_set_new(rv, "set", set ? json_incref(set) : json_object());
    path_key(sub, path, "set");
    return decode_sets(c, json_object_get(rv, "set"), v, sub);
}

static int decode_variants(ctx *c, json_t *raw, lb_scenario *s, json_t **out)
{
    json_t *in = json_object_get(raw, "variants");
    *out = json_array();
    if (!in)
        return 0;
    if (!json_is_array(in))
        return fail(c, "variants", "must be an array of variants, got %s", GOT(in));
    s->nvariants = json_array_size(in);
    s->variants = xcalloc(s->nvariants, sizeof *s->variants);
    json_t *seen = json_object();
    int rc = 0;
    for (size_t i = 0; i < s->nvariants && rc == 0; i++)
        rc = decode_variant(c, s, json_array_get(in, i), i, *out, seen);
    json_decref(seen);
    return rc;
}

/* ---- expectations --------------------------------------------------------------------------- */

static int decode_bound(ctx *c, json_t *v, lb_expect *e, const char *path)
{
    const char *key;
    size_t len;
    json_t *x;
    if (json_is_number(v)) {
        *e = (lb_expect){e->path, true, json_number_value(v), json_number_value(v)};
        return 0;
    }
    if (!json_is_object(v) || json_object_size(v) == 0)
        return fail(c, path, "must be a number or {\"min\": a, \"max\": b}, got %s", GOT(v));
    e->min = -INFINITY;
    e->max = INFINITY;
    json_object_keylen_foreach(v, key, len, x) {
        char sub[PATH_LEN];
        bool is_min = strcmp(key, "min") == 0;
        path_key(sub, path, key);
        if (len != strlen(key) || (!is_min && strcmp(key, "max") != 0))
            return fail(c, sub, "unknown key");
        if (!json_is_number(x))
            return fail(c, sub, "must be a number, got %s", GOT(x));
        *(is_min ? &e->min : &e->max) = json_number_value(x);
    }
    if (e->min > e->max)
        return fail(c, path, "min %g is greater than max %g", e->min, e->max);
    return 0;
}

/* Decodes path → bound pairs of `in` into e[*n...]; "variants" is skipped when skip_variants. */
static int decode_expect_map(ctx *c, json_t *in, const char *path, lb_expect *e, size_t *n,
                             bool skip_variants)
{
    const char *key;
    size_t len;
    json_t *v;
    json_object_keylen_foreach(in, key, len, v) {
        char sub[PATH_LEN];
        path_key(sub, path, key);
        if (skip_variants && strcmp(key, "variants") == 0 && len == strlen(key))
            continue;
        const lb_field *f = len == strlen(key) ? lb_field_find(key) : NULL;
        if (!f)
            return fail(c, sub, "unknown summary path");
        if (!f->expect)
            return fail(c, sub, "a summary figure that an expectation cannot name");
        e[*n].path = key;
        if (decode_bound(c, v, &e[*n], sub) < 0)
            return -1;
        ++*n;
    }
    return 0;
}

/* The variants' names as the keys of an object, for lookups in constant time. */
static json_t *variant_names(const lb_scenario *s)
{
    json_t *names = json_object();
    for (size_t i = 0; i < s->nvariants; i++)
        json_object_set_new(names, s->variants[i].name, json_true());
    return names;
}

/* expect.variants: {NAME: {path: bound}}; validated here, folded into each variant later. */
static int check_variant_expects(ctx *c, json_t *in, const lb_scenario *s)
{
    const char *key;
    size_t len;
    json_t *m;
    if (!json_is_object(in))
        return fail(c, "expect.variants", "must be an object mapping variant names to "
                    "expectations, got %s", GOT(in));
    json_t *names = variant_names(s);
    int rc = 0;
    json_object_keylen_foreach(in, key, len, m) {
        char sub[PATH_LEN];
        path_key(sub, "expect.variants", key);
        if (len != strlen(key) || !json_object_get(names, key))
            rc = fail(c, sub, "no such variant");
        else if (!json_is_object(m))
            rc = fail(c, sub, "must be an object mapping summary paths to bounds, got %s",
                      GOT(m));
        else {
            lb_expect *tmp = xcalloc(json_object_size(m), sizeof *tmp);
            size_t n = 0;
            rc = decode_expect_map(c, m, sub, tmp, &n, false);
            free(tmp);
        }
        if (rc < 0)
            break;
    }
    json_decref(names);
    return rc;
}

static int decode_expect(ctx *c, json_t *raw, lb_scenario *s, json_t **out)
{
    json_t *in = json_object_get(raw, "expect"), *pv;
    *out = NULL;
    if (!in) {
        *out = json_object();
        return 0;
    }
    if (!json_is_object(in))
        return fail(c, "expect", "must be an object mapping summary paths to bounds, got %s",
                    GOT(in));
    *out = json_incref(in);
    s->expect = xcalloc(json_object_size(in), sizeof *s->expect);
    if (decode_expect_map(c, in, "expect", s->expect, &s->nexpect, true) < 0)
        return -1;
    pv = json_object_get(in, "variants");
    return pv ? check_variant_expects(c, pv, s) : 0;
}

/* ---- decoding a whole scenario ------------------------------------------------------------ */

static lb_scenario *scenario_new(const char *file)
{
    lb_scenario *s = xcalloc(1, sizeof *s);
    s->priv = xcalloc(1, sizeof *s->priv);
    s->priv->keep = json_array();
    s->priv->file = strdup(file);
    if (!s->priv->file)
        abort();
    s->file = s->priv->file;
    return s;
}

typedef int (*section_fn)(ctx *c, json_t *raw, lb_scenario *s, json_t **out);

static int decode_scenario(ctx *c, json_t *raw, lb_scenario *s)
{
    static const struct { const char *key; section_fn fn; } sections[] = {
        {"clients", decode_clients}, {"events", decode_events},
        {"variants", decode_variants}, {"expect", decode_expect}};
    json_t *res;
    if (decode_object(c, top_fields, raw, s, "", &res) < 0)
        return -1;
    s->priv->resolved = res;
    if (check_name(c, json_object_get(res, "name"), "name") < 0)
        return -1;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        json_t *part;
        int rc = sections[i].fn(c, raw, s, &part);
        if (part)
            json_object_set_new(res, sections[i].key, part);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The loop runs every scenario; threads stay as the cross-check. */
lb_driver lb_scenario_driver(const lb_scenario *s)
{
    return s->driver == LB_DRIVER_AUTO ? LB_DRIVER_LOOP : s->driver;
}

/* ---- --set and a variant's set: replacing a dotted path ------------------------------------- */

static bool is_index(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s) && strlen(s) < 10;
}

static json_t *child_of(json_t *cur, const char *seg)
{
    if (json_is_object(cur))
        return json_object_get(cur, seg);
    return is_index(seg) ? json_array_get(cur, strtoul(seg, NULL, 10)) : NULL;
}

static int no_child(ctx *c, json_t *cur, const char *walked, const char *seg, const char *label)
{
    if (!is_index(seg))
        return fail(c, label, "%s is a list: %s is not an index", walked, seg);
    return fail(c, label, "%s has no element %s (it has %zu)", walked, seg, json_array_size(cur));
}

static int set_child(ctx *c, json_t *cur, const char *seg, json_t *value, const char *walked,
                     const char *label)
{
    if (json_is_object(cur))
        return json_object_set_new(cur, seg, value) == 0 ? 0
               : fail(c, label, "the key is not valid UTF-8");
    if (child_of(cur, seg))
        return json_array_set_new(cur, strtoul(seg, NULL, 10), value);
    json_decref(value);
    return no_child(c, cur, walked, seg, label);
}

/* Replaces the member `seg` of parent (a key or an index) with a shallow copy of child and
 * returns the copy. A variant's tree shares nodes with the base's, so an object or list is
 * copied before it changes; the copy shares the members, so the cost is its size, not the
 * size of everything under it. */
static json_t *own_child(json_t *parent, const char *seg, json_t *child)
{
    json_t *copy = json_copy(child);
    if (!copy)
        abort();   /* as xcalloc: out of memory on a small document */
    if (json_is_object(parent))
        json_object_set_new(parent, seg, copy);
    else
        json_array_set_new(parent, strtoul(seg, NULL, 10), copy);
    return copy;
}

static json_t *object_member(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);
    if (!o && json_is_object(parent) && json_object_set_new(parent, key, json_object()) == 0)
        o = json_object_get(parent, key);
    return json_is_object(o) ? o : NULL;
}

/* expect.PATH and expect.variants.NAME.PATH: summary paths are dotted themselves, so they are
 * one key, not a walk. */
static int set_expect(ctx *c, json_t *root, const char *rest, json_t *value, const char *label)
{
    json_t *e = object_member(root, "expect");
    const char *name = rest + strlen("variants."), *dot = strchr(name, '.');
    if (e && strncmp(rest, "variants.", 9) == 0 && dot && dot != name && dot[1]) {
        char nm[PATH_LEN];
        snprintf(nm, sizeof nm, "%.*s", (int)(dot - name), name);
        e = object_member(object_member(e, "variants"), nm);
        rest = dot + 1;
    }
    if (!e || !*rest) {
        json_decref(value);
        return fail(c, label, !e ? "the expectations are not an object" : "empty key");
    }
    return json_object_set_new(e, rest, value) == 0 ? 0
           : fail(c, label, "the key is not valid UTF-8");
}

/* Replaces the value at a dotted path (value is stolen). Missing objects on the way are created
 * (a missing clients list starts from the default one); list elements must exist. The objects
 * and lists on the way are copied first (own_child), so root may share the rest with another
 * tree. What the result means is checked by the decode that follows. */
static int apply_path(ctx *c, json_t *root, const char *path, json_t *value, const char *what)
{
    char label[PATH_LEN], buf[PATH_LEN], walked[PATH_LEN] = "";
    snprintf(label, sizeof label, "%s %s", what, path);
    if (!*path || strlen(path) >= sizeof buf) {
        json_decref(value);
        return fail(c, label, *path ? "path too long" : "empty path");
    }
    if (strncmp(path, "expect.", 7) == 0)
        return set_expect(c, root, path + 7, value, label);
    strcpy(buf, path);
    json_t *cur = root;
    for (char *seg = buf, *dot;; seg = dot + 1) {
        if ((dot = strchr(seg, '.')))
            *dot = '\0';
        if (!*seg) {
            json_decref(value);
            return fail(c, label, "empty key in the path");
        }
        if (!dot)
            return set_child(c, cur, seg, value, walked, label);
        json_t *child = child_of(cur, seg);
        if (!child && json_is_array(cur)) {
            json_decref(value);
            return no_child(c, cur, walked, seg, label);
        }
        if (!child) {
            bool clients = cur == root && strcmp(seg, "clients") == 0;
            child = clients ? json_loads(DEFAULT_CLIENTS, 0, NULL) : json_object();
            if (json_object_set_new(cur, seg, child) < 0) {
                json_decref(value);
                return fail(c, label, "the key is not valid UTF-8");
            }
        }
        char tmp[PATH_LEN];
        path_key(tmp, walked, seg);
        memcpy(walked, tmp, sizeof walked);
        if (!json_is_object(child) && !json_is_array(child)) {
            json_decref(value);
            return fail(c, label, "%s is not an object", walked);
        }
        cur = own_child(cur, seg, child);
    }
}

static int apply_override(ctx *c, json_t *root, const lb_override *o)
{
    if (!o->path || !o->value)
        return fail(c, "--set", "needs PATH=VALUE");
    json_t *v = json_loads(o->value, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!v)
        v = json_string(o->value);   /* not JSON: the text itself */
    if (!v) {
        char label[PATH_LEN];
        snprintf(label, sizeof label, "--set %s", o->path);
        return fail(c, label, "VALUE is neither JSON nor UTF-8 text");
    }
    return apply_path(c, root, o->path, v, "--set");
}

bool lb_override_from_arg(char *arg, lb_override *out)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return false;
    *eq = '\0';
    out->path = arg;
    out->value = eq + 1;
    return true;
}

/* ---- resolving variants ------------------------------------------------------------------- */

/* Moves expect.variants.NAME into expect (overriding common paths) and drops the rest, in a
 * copy of expect: the base's is shared. */
static void fold_expect(json_t *raw, const char *name)
{
    json_t *e = json_object_get(raw, "expect");
    if (!json_is_object(e))
        return;
    json_t *mine = json_object_get(json_object_get(e, "variants"), name);
    e = own_child(raw, "expect", e);
    json_object_del(e, "variants");   /* mine lives on: the base's expect holds it */
    if (json_is_object(mine))
        json_object_update(e, mine);
}

/* A variant is the resolved base with its paths replaced, decoded again. Starting from the
 * resolved form (not the file as written) makes a reloaded scenario.json resolve each variant
 * exactly as the original did. vraw starts as a shallow copy of the base's top level and
 * copies what it changes (own_child), so a variant costs what it sets, not the file's size. */
static int resolve_variant(ctx *c, lb_scenario *base, size_t i)
{
    lb_variant *v = &base->variants[i];
    json_t *vdef = json_array_get(json_object_get(base->priv->resolved, "variants"), i);
    json_t *set = json_object_get(vdef, "set"), *vraw = json_copy(base->priv->resolved);
    int rc = 0;
    if (!vraw)
        abort();
    json_object_del(vraw, "variants");
    snprintf(c->prefix, sizeof c->prefix, "variants[%zu] (%s): ", i, v->name);
    for (size_t k = 0; k < v->nsets && rc == 0; k++)
        rc = apply_path(c, vraw, v->sets[k].path,
                        json_deep_copy(json_object_get(set, v->sets[k].path)), "set");
    json_t *w = json_object_get(vraw, "workload");
    if (rc == 0 && json_is_object(w) && json_object_get(set, "workload.duration_ms") &&
        !json_object_get(set, "workload.iterations"))
        json_object_del(own_child(vraw, "workload", w), "iterations");   /* as for a group */
    if (rc == 0) {
        fold_expect(vraw, v->name);
        v->scenario = scenario_new(base->file);
        v->scenario->variant = v->name;
        rc = decode_scenario(c, vraw, v->scenario);
    }
    json_decref(vraw);
    c->prefix[0] = '\0';
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Whether the file (or one of its variants) runs on the simulator: a "sim" object is an error
 * only when nothing would read it. */
static bool runs_sim(const lb_scenario *s)
{
    if (s->nvariants == 0)
        return s->driver == LB_DRIVER_SIM;
    for (size_t i = 0; i < s->nvariants; i++)
        if (s->variants[i].scenario && s->variants[i].scenario->driver == LB_DRIVER_SIM)
            return true;
    return false;
}

/* --calibration: a "sim" object to fill (made when the file has none). */
static int calibrate_root(json_t *root)
{
    json_t *sim = json_object_get(root, "sim");
    if (!sim)
        return json_object_set_new(root, "sim", json_object()) == 0 ? 0 : -1;
    return json_is_object(sim) ? 0 : -1;
}

/* The calibrated model under the keys the file does not set: the file's own win. */
static void fill_calibration(json_t *sim, const lb_sim *m)
{
    const struct { const char *key; int64_t v; } kv[] = {
        {"rtt_us", m->rtt_us}, {"server_us_per_command", m->server_us_per_command},
        {"script_us_per_call", m->script_us_per_call},
        {"client_us_per_command", m->client_us_per_command},
        {"client_cores", m->client_cores}, {"cores", m->cores}, {"server_hz", m->server_hz}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (!json_object_get(sim, kv[i].key))
            json_object_set_new(sim, kv[i].key, json_integer(kv[i].v));
}

static int load_root(ctx *c, json_t *root, const lb_load_options *opt, lb_scenario **out)
{
    lb_scenario *s = NULL;
    for (size_t i = 0; opt && i < opt->noverrides; i++)
        if (apply_override(c, root, &opt->overrides[i]) < 0)
            return -1;
    /* The command line's driver wins over the file's: a failure file written for the
     * simulator (model and all) runs on a real driver with --driver loop. */
    bool names_sim = json_object_get(root, "sim") != NULL, driver_given = false;
    for (size_t i = 0; opt && i < opt->noverrides; i++)
        driver_given |= opt->overrides[i].path && strcmp(opt->overrides[i].path, "driver") == 0;
    if (opt && opt->calibration && calibrate_root(root) < 0)
        return fail(c, "sim", "must be an object, got %s", GOT(json_object_get(root, "sim")));
    if (opt && opt->calibration)
        fill_calibration(json_object_get(root, "sim"), opt->calibration);
    s = scenario_new(c->file);
    if (decode_scenario(c, root, s) < 0)
        goto fail;
    s->variant = s->nvariants ? NULL : "default";
    for (size_t i = 0; i < s->nvariants; i++)
        if (resolve_variant(c, s, i) < 0)
            goto fail;
    if (names_sim && !runs_sim(s) && !driver_given) {
        c->prefix[0] = '\0';
        fail(c, "sim", "the simulator's model, but no variant runs on the simulator (set "
                       "\"driver\": \"sim\", or --driver sim)");
        goto fail;
    }
    if (!runs_sim(s))  /* the resolved file names the model only where it is used */
        json_object_del(s->priv->resolved, "sim");
    *out = s;
    return 0;
fail:
    lb_scenario_free(s);
    return -1;
}

/* Parse errors carry the position: "FILE:LINE:COL: message". */
static int finish_load(ctx *c, json_t *root, const json_error_t *e, const lb_load_options *opt,
                       lb_scenario **out)
{
    *out = NULL;
    if (!root) {
        if (e->line > 0 && c->err && c->errlen)
            snprintf(c->err, c->errlen, "%s:%d:%d: %s", c->file, e->line, e->column, e->text);
        else
            fail(c, "", "%s", e->text);
        return -1;
    }
    int rc = load_root(c, root, opt, out);
    json_decref(root);
    return rc;
}

int lb_scenario_load(const char *path, const lb_load_options *opt, lb_scenario **out,
                     char *err, size_t errlen)
{
    ctx c = {.file = path, .err = err, .errlen = errlen,
             .external_servers = opt && opt->external_servers};
    json_error_t e;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    struct stat st;
    if (!f)
        return fail(&c, "", "cannot open: %s", strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return fail(&c, "", "cannot read: %s", strerror(EISDIR));
    }
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &e);
    fclose(f);
    return finish_load(&c, root, &e, opt, out);
}

int lb_scenario_load_buffer(const char *name, const char *data, size_t len,
                            const lb_load_options *opt, lb_scenario **out,
                            char *err, size_t errlen)
{
    ctx c = {.file = name, .err = err, .errlen = errlen,
             .external_servers = opt && opt->external_servers};
    json_error_t e;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
    return finish_load(&c, root, &e, opt, out);
}

void lb_scenario_free(lb_scenario *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nvariants; i++) {
        lb_scenario_free(s->variants[i].scenario);
        for (size_t k = 0; k < s->variants[i].nsets; k++)
            free(s->variants[i].sets[k].value);
        free(s->variants[i].sets);
    }
    free(s->variants);
    for (size_t i = 0; i < s->nevents; i++)
        free(s->events[i].clients);
    free(s->events);
    free(s->groups);
    free(s->expect);
    if (s->priv) {
        json_decref(s->priv->resolved);
        json_decref(s->priv->keep);
        free(s->priv->file);
        free(s->priv);
    }
    free(s);
}

/* ---- accessors ------------------------------------------------------------------------------ */

size_t lb_scenario_variant_count(const lb_scenario *s)
{
    return s->nvariants ? s->nvariants : 1;
}

const char *lb_scenario_variant_name(const lb_scenario *s, size_t i)
{
    const lb_scenario *v = lb_scenario_variant(s, i);
    return v ? v->variant : NULL;
}

const lb_scenario *lb_scenario_variant(const lb_scenario *s, size_t i)
{
    if (!s->nvariants)
        return i == 0 ? s : NULL;
    return i < s->nvariants ? s->variants[i].scenario : NULL;
}

char *lb_scenario_dump(const lb_scenario *s)
{
    char *text = json_dumps(s->priv->resolved, JSON_INDENT(2));
    size_t n = text ? strlen(text) : 0;
    char *out = text ? realloc(text, n + 2) : NULL;
    if (!out) {
        free(text);
        return NULL;
    }
    memcpy(out + n, "\n", 2);
    return out;
}
