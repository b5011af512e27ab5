/* scenario.h -- the scenario loader: JSON file → validated, defaults-filled lb_scenario.
 *
 * The only stage that reads scenario JSON. Loading parses the file, applies the command line's
 * `--set PATH=VALUE` overrides (and `--seed N`, which is `--set seed=N`), validates every key
 * strictly, fills the defaults of SPEC section 5, and resolves each variant: the base scenario
 * with the variant's dotted paths replaced, validated again as a whole.
 *
 * Everything here is plain C; no jansson type crosses this header. Strings inside an
 * lb_scenario are owned by it and live until lb_scenario_free.
 *
 * Error messages (one line, into the caller's buffer; the loader prints nothing):
 *     FILE:LINE:COL: <parser message>                       malformed JSON
 *     FILE: KEY.PATH: <message>                             a bad key or value
 *     FILE: --set PATH: <message>                           an override that cannot be applied
 *     FILE: variants[I] (NAME): KEY.PATH: <message>         a variant that is invalid once applied
 * Key paths are dotted with 0-based array indices (`clients.0.count`, `events.2.server`), the
 * same syntax `--set` and a variant's `set` accept. Every load error is a bad-input error (exit 2).
 *
 * Layers and defaults:
 * - `--set` edits the file as written, in order, before validation; `--seed N` is the override
 *   {"seed", "N"} placed last. `expect.PATH` and `expect.variants.NAME.PATH` set one expectation.
 * - `clients` defaults to [{"name": "worker", "count": 5}]; a group's name defaults to
 *   "group-I", its count to 1, its start_ms to 0. Group and variant names match [a-z0-9-]+ and
 *   are unique.
 * - A group's lock, workload and network are the resolved base sections with the group's keys
 *   laid over them (nested backoff merged key by key). A variant is the resolved base with its
 *   paths replaced; it cannot set name, variants or expect (use expect.variants.NAME).
 * - iterations defaults to 1 when duration_ms is null and to null (no limit) when it is set; a
 *   group or variant that sets duration_ms without iterations gets that default again.
 * - Cross-key rules: token and legacy use exactly one server, redlock an odd number (1..9);
 *   fencing needs token; renew needs token or redlock; backoff base_ms <= cap_ms; iterations
 *   and duration_ms are not both null; events name existing clients and servers; replicas
 *   need managed servers and a real driver, and the replication events need replicas;
 *   sentinels (0, 3 or 5) need replicas, managed servers and a real driver, and rule out
 *   lockbench's own failover and the client network faults (see check_sentinels).
 */
#ifndef LB_SCENARIO_H
#define LB_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "servers.h"   /* lb_persistence */

#define LB_SCENARIO_MAX_SERVERS 9
#define LB_SCENARIO_MAX_CLIENTS 50000   /* over all groups, for the real drivers */
#define LB_SIM_MAX_CLIENTS 1000000      /* over all groups, with driver sim */

typedef enum { LB_ALG_TOKEN, LB_ALG_LEGACY, LB_ALG_REDLOCK } lb_algorithm;
typedef enum { LB_WAIT_POLL, LB_WAIT_NOTIFY, LB_WAIT_FIFO } lb_wait;
typedef enum {
    LB_BACKOFF_NONE, LB_BACKOFF_CONSTANT, LB_BACKOFF_LINEAR, LB_BACKOFF_EXPONENTIAL,
    LB_BACKOFF_FULL_JITTER, LB_BACKOFF_EQUAL_JITTER, LB_BACKOFF_DECORRELATED_JITTER,
    LB_BACKOFF_SERVICESTACK
} lb_backoff_policy;
typedef enum { LB_CS_COUNTER, LB_CS_INCR, LB_CS_NONE } lb_critical_section;
/* How the clients run: "auto" picks the loop when it can run the scenario, threads otherwise. */
typedef enum { LB_DRIVER_AUTO, LB_DRIVER_THREADS, LB_DRIVER_LOOP, LB_DRIVER_SIM } lb_driver;
typedef enum { LB_DIST_FIXED, LB_DIST_UNIFORM, LB_DIST_EXPONENTIAL } lb_dist_kind;
typedef enum {
    LB_EV_CRASH, LB_EV_PAUSE, LB_EV_DELAY, LB_EV_PARTITION, LB_EV_RESET,
    LB_EV_KILL_SERVER, LB_EV_PAUSE_SERVER, LB_EV_CLOCK_SKEW,
    LB_EV_CRASH_HOST,          /* the simulator's only: the server's machine dies */
    LB_EV_FAILOVER,            /* a replica of the server is promoted (redis.replicas > 0) */
    LB_EV_DELAY_REPLICATION,   /* latency on the server's replication links */
    LB_EV_PARTITION_REPLICATION  /* the server's replication links cut (bytes held) */
} lb_event_action;
/* failover's "old": what happens to the primary it replaces. */
typedef enum { LB_OLD_KILL, LB_OLD_DEMOTE } lb_failover_old;

/* hold_ms / think_ms: a number (fixed: a), {"uniform": [a, b]} (a <= b), {"exponential": mean}. */
typedef struct {
    lb_dist_kind kind;
    int64_t a, b;        /* fixed: a (b == a); uniform: [a, b] */
    int64_t mean;        /* exponential */
} lb_dist;

typedef struct {
    lb_backoff_policy policy;
    int64_t base_ms, cap_ms;
} lb_backoff;

/* Maps 1:1 onto dlock_options (the runner adds the seed and the clock hook). */
typedef struct {
    lb_algorithm algorithm;
    const char  *key;                 /* "testlock" */
    int64_t      keys;                /* 1; > 1: keys key:0 … key:K-1, client i uses i mod K */
    int64_t      ttl_ms;              /* 30000; JSON null → 0 = never expires */
    int64_t      wait_timeout_ms;     /* JSON null (default) → -1 = forever; 0 = try once */
    lb_wait      wait;                /* poll */
    lb_backoff   backoff;             /* exponential, 1, 100 */
    bool         renew;               /* false */
    bool         fencing;             /* false */
    double       drift_factor;        /* 0.01 */
    int64_t      command_timeout_ms;  /* 1000 */
    int64_t      min_replicas;        /* 0 = off; > 0: WAIT for that many behind every grant */
    int64_t      replica_timeout_ms;  /* 100; WAIT's timeout, >= 1 */
} lb_lock;

typedef enum { LB_ARRIVAL_POISSON, LB_ARRIVAL_UNIFORM } lb_arrival_process;

/* workload.arrival: open-loop load. Acquisitions start on a schedule of rate_per_s for the
 * group, whether earlier ones have finished or not; absent or null = a closed loop. */
typedef struct {
    bool               on;               /* false: closed loop (JSON null, the default) */
    double             rate_per_s;       /* the group's arrivals per second, > 0 */
    lb_arrival_process process;          /* poisson */
    int64_t            max_outstanding;  /* arrivals queued at most before one is dropped */
} lb_arrival;

typedef struct {
    int64_t iterations;      /* acquisitions per client; 0 = no limit (JSON null) */
    int64_t duration_ms;     /* -1 = no deadline (JSON null, default) */
    lb_dist hold_ms, think_ms;
    lb_critical_section critical_section;   /* counter */
    bool    release;         /* true */
    lb_arrival arrival;      /* off */
    bool    inside_check;    /* false: the store's count of clients inside (INCR on entry, DECR
                                on exit on <counter key>:inside), store_overlaps */
} lb_workload;

typedef struct {
    int64_t latency_ms, jitter_ms;   /* one-way, each direction; 0 = connect directly */
} lb_network;

/* The simulator's model (driver sim); `lockbench calibrate` measures one. */
typedef struct {
    int64_t rtt_us;                  /* a round trip on an idle link, no server time */
    int64_t server_us_per_command;   /* a modelled server's CPU per command */
    int64_t script_us_per_call;      /* and more per redis.call a script makes */
    int64_t client_us_per_command;   /* the clients' CPU per command sent */
    int64_t client_cores;            /* the clients' threads: how many cores they use at once */
    int64_t cores;                   /* the machine's cores, which the clients' threads and the
                                        servers share; 0: each server has a core of its own */
    int64_t server_hz;               /* the servers' cron frequency */
} lb_sim;

#define LB_SCENARIO_MAX_REPLICAS 4

typedef struct {
    int            servers;          /* 1..9 */
    lb_persistence persistence;      /* none */
    int            replicas;         /* 0..4 per server, managed only; not on the simulator */
    int64_t        sentinels;        /* 0, 3 or 5 watching every server; needs replicas >= 1;
                                        managed only; not on the simulator */
} lb_redis;

/* A client group with its effective settings (base section merged with the group's override). */
typedef struct {
    const char  *name;
    int64_t      count;              /* >= 1 */
    int64_t      start_ms;           /* delay before the first acquire */
    size_t       first_client;       /* clients are numbered from 0 in file order */
    lb_lock      lock;
    lb_workload  workload;
    lb_network   network;
} lb_client_group;

typedef struct {
    int64_t         at_ms;
    lb_event_action action;
    bool            all_clients;      /* "clients": "all" (clients[] then lists every client) */
    size_t          nclients;         /* 0 for the server actions */
    int            *clients;          /* client numbers, file order */
    bool            when_holding;     /* crash, pause: "when": "holding" */
    int64_t         restart_after_ms; /* crash, kill-server; -1 = no restart */
    int64_t         duration_ms;      /* pause, delay, partition, pause-server; else 0 */
    int64_t         latency_ms;       /* delay */
    int64_t         jitter_ms;        /* delay (default 0) */
    int             server;           /* kill-server, pause-server, failover, *-replication;
                                         else -1 */
    lb_failover_old old;              /* failover (default kill) */
    int64_t         offset_ms;        /* clock-skew (may be negative) */
} lb_event;

/* An expectation on a summary path (one fields.h marks `expect`): value == min == max when
 * `equal`, else min <= value <= max (an absent bound is -INFINITY / +INFINITY). */
typedef struct {
    const char *path;                 /* e.g. "acquire_ms.p99" */
    bool        equal;
    double      min, max;
} lb_expect;

typedef struct {
    const char *path;                 /* dotted, as written */
    char       *value;                /* compact JSON text */
} lb_variant_set;

typedef struct lb_scenario lb_scenario;

typedef struct {
    const char     *name;
    size_t          nsets;
    lb_variant_set *sets;
    lb_scenario    *scenario;         /* the resolved scenario of this variant */
} lb_variant;

struct lb_scenario {
    const char      *file;            /* as given to the loader */
    const char      *name;
    const char      *description;      /* "" when absent */
    const char      *variant;          /* "default" for a file without variants, the variant's
                                          name for a resolved variant, NULL for the base of a
                                          file with variants */
    uint64_t         seed;             /* 1 */
    lb_driver        driver;           /* auto */
    lb_sim           sim;
    lb_redis         redis;
    lb_lock          lock;             /* the base sections (defaults filled) */
    lb_workload      workload;
    lb_network       network;
    size_t           ngroups;
    lb_client_group *groups;
    size_t           nclients;         /* sum of the groups' counts */
    size_t           nevents;
    lb_event        *events;           /* file order (not sorted by at_ms) */
    size_t           nexpect;
    lb_expect       *expect;           /* for a variant: the common ones plus its own */
    size_t           nvariants;        /* only on the base; 0 inside a resolved variant */
    lb_variant      *variants;
    struct lb__scenario_priv *priv;
};

/* One `--set PATH=VALUE`. VALUE is JSON; text that does not parse as JSON is taken as a string,
 * so `--set lock.backoff.policy=full-jitter` needs no shell quoting. */
typedef struct {
    const char *path;
    const char *value;
} lb_override;

typedef struct {
    const lb_override *overrides;     /* applied in order, before validation */
    size_t             noverrides;
    bool               external_servers;  /* --redis given: kill-server / pause-server are errors */
    const lb_sim      *calibration;       /* --calibration: the sim keys a file does not set */
} lb_load_options;

/* Splits "PATH=VALUE" in place (the '=' becomes NUL). False when there is no '=' or no PATH. */
bool lb_override_from_arg(char *arg, lb_override *out);

/* Loads, overrides, validates and resolves a scenario file. opt may be NULL. On success returns 0
 * and *out; on failure returns -1, *out = NULL and the message in err. */
int lb_scenario_load(const char *path, const lb_load_options *opt, lb_scenario **out,
                     char *err, size_t errlen);
/* The same from a buffer (need not be NUL-terminated); name is used in messages. */
int lb_scenario_load_buffer(const char *name, const char *data, size_t len,
                            const lb_load_options *opt, lb_scenario **out,
                            char *err, size_t errlen);
void lb_scenario_free(lb_scenario *s);   /* accepts NULL */

/* The variants to run: at least one. A file without variants has one, "default", which is the
 * scenario itself. */
size_t             lb_scenario_variant_count(const lb_scenario *s);
const char        *lb_scenario_variant_name(const lb_scenario *s, size_t i);
const lb_scenario *lb_scenario_variant(const lb_scenario *s, size_t i);

/* The resolved JSON (overrides applied, defaults filled, indented, keys in SPEC order, ending in
 * a newline) for scenario.json. It loads back to the same base and variants. For a resolved
 * variant: that variant alone (its sets applied, "variants": [], its expectations folded in).
 * Malloc'd; NULL on allocation failure. */
char *lb_scenario_dump(const lb_scenario *s);

const char *lb_algorithm_name(lb_algorithm a);
const char *lb_wait_name(lb_wait w);
const char *lb_backoff_policy_name(lb_backoff_policy p);
const char *lb_critical_section_name(lb_critical_section c);
const char *lb_arrival_process_name(lb_arrival_process p);
const char *lb_driver_name(lb_driver d);

/* The driver a resolved scenario runs on: its own choice, "auto" resolved. */
lb_driver lb_scenario_driver(const lb_scenario *s);
const char *lb_persistence_name(lb_persistence p);
const char *lb_event_action_name(lb_event_action a);
const char *lb_failover_old_name(lb_failover_old o);

#endif
