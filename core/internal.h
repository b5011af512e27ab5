/* internal.h -- what the algorithms, the driver and the tests share. Not installed.
 *
 * An algorithm is a set of step functions. A step is called with the replies to the commands it
 * asked for last time (none on the first call) and the current time, and either fills a batch of
 * commands to send (returning DLOCK__SEND) or decides (returning a DLOCK_* code). Steps do no
 * I/O, never sleep and read no clock, so tests drive them with scripted replies and a simulator
 * could drive them in virtual time. driver.c runs them over blocking hiredis connections. */
#ifndef DLOCK_INTERNAL_H
#define DLOCK_INTERNAL_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

#include "dlock.h"

#define DLOCK__SEND 1        /* step result: send the batch, call again with the replies */

#define DLOCK__MAX_SERVERS 9
#define DLOCK__MAX_ARGV 8
#define DLOCK__MAX_BATCH (3 * DLOCK__MAX_SERVERS)

/* A Lua script from core/scripts/, embedded at build time with its SHA1. */
typedef struct dlock__script {
    const char *name;
    const char *sha;
    const char *text;
} dlock__script;

extern const dlock__script dlock__script_acquire_fenced;
extern const dlock__script dlock__script_release;
extern const dlock__script dlock__script_extend;
extern const dlock__script dlock__script_fenced_set;

/* One command for one server. A script command's argv holds its keys, then its arguments; the
 * driver sends it as EVALSHA (EVAL after a NOSCRIPT). Strings must outlive the exchange. */
typedef struct dlock__cmd {
    int server;
    const dlock__script *script;
    int nkeys;
    int argc;
    const char *argv[DLOCK__MAX_ARGV];
} dlock__cmd;

typedef struct dlock__batch {
    int n;
    dlock__cmd cmd[DLOCK__MAX_BATCH];
} dlock__batch;

/* The time a step is given. */
typedef struct dlock__now {
    int64_t mono_us;  /* monotonic clock */
    int64_t wall_ms;  /* the lock's wall clock, Unix ms (legacy only) */
} dlock__now;

typedef struct dlock__algo dlock__algo;

/* A lock: taken (while acquiring) or held. The step functions keep their progress in it. */
struct dlock {
    dlock_client *client;         /* NULL in step-function tests */
    const dlock__algo *algo;
    dlock_options opt;
    int nservers;
    char *key;
    char *fence_key;              /* <key>:fence */
    char token[33];               /* 128 random bits, hex */
    char ttl_arg[24];             /* ttl in ms, as sent */
    char value[24];               /* legacy: the expiry value we wrote */
    uint64_t fence;               /* fencing token, 0 = none */
    int phase;                    /* step progress within one operation */
    int64_t started_us;           /* when the current operation began (monotonic) */
    int64_t valid_until_us;       /* redlock: end of the validity window */
    char err[192];                /* why the last operation failed */
};

typedef int (*dlock__step_fn)(dlock *l, const dlock__now *now, redisReply *const *replies,
                              int nreplies, dlock__batch *out);

struct dlock__algo {
    const char *name;
    dlock__step_fn acquire;  /* one try: OK, EBUSY (held elsewhere) or EIO */
    dlock__step_fn release;  /* OK, ENOTOWNER or EIO */
    dlock__step_fn extend;   /* OK, ENOTOWNER or EIO; the new ttl is in ttl_arg */
};

extern const dlock__algo dlock__token;
extern const dlock__algo dlock__legacy;

/* steps.c: building batches and reading replies */
dlock__cmd *dlock__add(dlock__batch *b, int server, const char *arg0, ...);
dlock__cmd *dlock__add_script(dlock__batch *b, int server, const dlock__script *s, int nkeys, ...);
const char *dlock__cmd_name(const dlock__cmd *c);
bool dlock__reply_is_status(const redisReply *r, const char *status);
bool dlock__reply_is_nil(const redisReply *r);
bool dlock__reply_int(const redisReply *r, long long *v);
int  dlock__fail(dlock *l, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int  dlock__reply_error(dlock *l, const redisReply *r, const char *what);

/* lock.c: a lock's lifetime apart from I/O */
dlock *dlock__lock_new(dlock_client *c, const char *key, const dlock_options *o, int nservers);
void   dlock__lock_free(dlock *l);
int    dlock__check_options(const dlock_options *o, int nservers, char *err, size_t errlen);
void   dlock__set_ttl_arg(dlock *l, int64_t ttl_ms);
int    dlock__random_token(char out[33]);

/* backoff.c: the delay before try n+1 after n failures, in microseconds. prev_us carries the
 * decorrelated policy's state (start it at 0). */
typedef struct dlock__rng {
    uint64_t s[4];
} dlock__rng;
void     dlock__rng_seed(dlock__rng *r, uint64_t seed);
uint64_t dlock__rng_next(dlock__rng *r);
double   dlock__rng_uniform(dlock__rng *r);  /* [0, 1) */
int64_t  dlock__backoff_us(const dlock_backoff *b, int n, int64_t *prev_us, dlock__rng *r);

/* time.c */
int64_t dlock__mono_us(void);
int64_t dlock__wall_ms(void);

/* client.c: connections */
int  dlock__exchange(dlock_client *c, const dlock__batch *b, redisReply **replies,
                     int64_t timeout_ms);
int  dlock__client_nservers(const dlock_client *c);
void dlock__client_set_err(dlock_client *c, const char *msg);
bool dlock__client_sleep(dlock_client *c, int64_t us);  /* false = interrupted */
bool dlock__client_interrupted(const dlock_client *c);
void dlock__client_begin_acquire(dlock_client *c);
void dlock__client_end_acquire(dlock_client *c, uint64_t attempts, int64_t waited_us);
dlock__rng *dlock__client_rng(dlock_client *c, uint64_t seed);

/* driver.c */
int dlock__run(dlock *l, dlock__step_fn step);

#endif /* DLOCK_INTERNAL_H */
