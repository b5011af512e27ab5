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
#include "monotonic.h"

#define DLOCK__SEND 1        /* step result: send the batch, call again with the replies */
#define DLOCK__WAITED 2      /* wait step result: the whole slice passed with no signal */
#define DLOCK__TRIED 3       /* wait step result: a try sent with the slice found the lock held */

/* A wait blocked in Redis is cut into slices this long, so an interrupt is seen between them. */
#define DLOCK__WAIT_SLICE_US 100000

/* A blocking command's reply may come this much after its timeout: Redis times blocked clients
 * out on its own timer, which runs hz times a second (10 by default). */
#define DLOCK__BLOCK_SLACK_MS 100

/* dlock_client_new connects before any options are known: this long for each server. */
#define DLOCK__CONNECT_TIMEOUT_MS 1000

#define DLOCK__MAX_SERVERS 9
#define DLOCK__MAX_ARGV 12
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
extern const dlock__script dlock__script_notify_release;
extern const dlock__script dlock__script_fifo_acquire;
extern const dlock__script dlock__script_fifo_release;

/* How long a FIFO waiter may go without a heartbeat before it counts as gone, and how often a
 * waiter sends one (at most this long blocked between tries). */
#define DLOCK__FIFO_WAITER_BOUND_MS 2000
#define DLOCK__FIFO_HEARTBEAT_MS 500

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
    int64_t block_ms;  /* how long the server may legitimately hold the reply (BLPOP) */
    dlock__cmd cmd[DLOCK__MAX_BATCH];
} dlock__batch;

/* The time a step is given. */
typedef struct dlock__now {
    int64_t mono_us;  /* monotonic clock */
    int64_t wall_ms;  /* the lock's wall clock, Unix ms; read only for an algorithm that
                         says it needs it (legacy), else 0 */
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
    char *signal_key;             /* notify: <key>:signal; fifo: <key>:signal:<token> */
    char *queue_key;              /* fifo: <key>:queue, <key>:queue:beat, <key>:queue:seq */
    char *beat_key;
    char *seq_key;
    char *signal_prefix;          /* fifo: <key>:signal: */
    char member[64];              /* fifo: token:ttl:fencing, our entry in the queue */
    char wait_arg[24];            /* BLPOP timeout in seconds */
    int64_t wait_us;              /* the back-off delay before the next try */
    int64_t wait_left_us;         /* time left until the wait deadline (INT64_MAX = none) */
    uint64_t fence;               /* fencing token, 0 = none */
    uint32_t wait_tries;          /* tries a wait step sent (counted with the acquire's tries) */
    int phase;                    /* step progress within one operation */
    int64_t started_us;           /* when the current operation began (monotonic) */
    _Atomic int64_t valid_until_us; /* end of the lease as we know it (monotonic); INT64_MAX = none */
    atomic_bool lost;             /* the watchdog failed to extend it */
    struct dlock__renewal *renewal; /* non-NULL while the watchdog renews it */
    char err[192];                /* why the last operation failed */
};

typedef int (*dlock__step_fn)(dlock *l, const dlock__now *now, redisReply *const *replies,
                              int nreplies, dlock__batch *out);

struct dlock__algo {
    const char *name;
    dlock__step_fn acquire;  /* one try: OK, EBUSY (held elsewhere) or EIO */
    dlock__step_fn release;  /* OK, ENOTOWNER or EIO */
    dlock__step_fn extend;   /* OK, ENOTOWNER or EIO; the new ttl is in ttl_arg */
    dlock__step_fn wait;     /* between tries, up to wait_us: OK = the lock was handed to us,
                                EBUSY = try again now, DLOCK__WAITED = nothing happened (the
                                driver may wait on), DLOCK__TRIED = a try sent with the wait
                                found the lock held (it counts as the next try); NULL = sleep
                                the back-off delay */
    dlock__step_fn leave;    /* after giving up (timeout, cancel, error); NULL = nothing to undo */
    bool wall_clock;         /* its steps read now->wall_ms */
    bool keeps_lost_tries;   /* a try whose reply was lost is not released (op.c, undo) */
    bool takes_late_grants;  /* a grant with no lease left counts (op.c, check_granted) */
};

extern const dlock__algo dlock__token;
extern const dlock__algo dlock__token_notify;
extern const dlock__algo dlock__token_fifo;
extern const dlock__algo dlock__legacy;
extern const dlock__algo dlock__redlock;

/* token.c: the pieces the wait modes share */
int dlock__token_acquire(dlock *l, const dlock__now *now, redisReply *const *r, int nr,
                         dlock__batch *out);
int dlock__token_extend(dlock *l, const dlock__now *now, redisReply *const *r, int nr,
                        dlock__batch *out);
int dlock__owner_reply(dlock *l, const redisReply *r, const char *what);
void dlock__add_blpop(dlock *l, dlock__batch *out, const char *key);

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
/* Checks o (NULL = the defaults) against c's servers and makes the lock an acquire will take;
 * NULL with *rc set (EINVAL with the reason in c's error, or ENOMEM). */
dlock *dlock__lock_prepare(dlock_client *c, const char *key, const dlock_options *o, int *rc);
void   dlock__lock_free(dlock *l);
int    dlock__check_options(const dlock_options *o, int nservers, char *err, size_t errlen);
/* A new lease for dlock_extend: DLOCK_OK, or DLOCK_EINVAL with the reason in c's error. */
int    dlock__check_ttl(dlock_client *c, int64_t ttl_ms);
const dlock__algo *dlock__algo_of(const dlock_options *o);
int64_t dlock__drift_us(const dlock_options *o);
void   dlock__set_ttl_arg(dlock *l, int64_t ttl_ms);
/* The lease as we may count on it: ttl_ms from start_us (a time no later than the moment the
 * server set it), forever when ttl_ms is 0. */
void   dlock__lease_from(dlock *l, int64_t start_us, int64_t ttl_ms);
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

/* time.c (and monotonic.h) */
int64_t dlock__wall_ms(void);

/* client.c: connections */
int  dlock__exchange(dlock_client *c, const dlock__batch *b, redisReply **replies,
                     int64_t timeout_ms);
int  dlock__client_nservers(const dlock_client *c);
void dlock__client_set_err(dlock_client *c, const char *msg);
bool dlock__client_sleep(dlock_client *c, int64_t us);  /* false = interrupted */
bool dlock__client_interrupted(const dlock_client *c);  /* reads and clears the request */
bool dlock__client_interrupt_pending(const dlock_client *c);
void dlock__client_begin_acquire(dlock_client *c);
void dlock__client_end_acquire(dlock_client *c, uint64_t attempts, int64_t waited_us);
dlock__rng *dlock__client_rng(dlock_client *c, uint64_t seed);

/* client.c: on a loop (loop.c). The exchange writes the batch and returns; *pending says
 * whether replies are still to come, in which case dlock__loop_exchanged(c) follows. */
typedef struct dlock__async dlock__async;
dlock__async **dlock__client_async(dlock_client *c);
int  dlock__client_go_nonblocking(dlock_client *c);
bool dlock__client_on_loop(dlock_client *c);  /* true (with the reason in its err) on a loop */
int  dlock__exchange_start(dlock_client *c, const dlock__batch *b, redisReply **replies,
                           int64_t timeout_ms, bool *pending);

/* loop.c */
void        dlock__loop_exchanged(dlock_client *c);
dlock_loop *dlock__async_loop(const dlock__async *a);
void        dlock__async_free(dlock_client *c, dlock__async *a);

/* the watchdog (renew.c) */
typedef struct dlock__watchdog dlock__watchdog;
int  dlock__renew_start(dlock *l);
void dlock__renew_stop(dlock *l);
/* The owner's own extend of a renewed lock, kept in step with the watchdog's. */
int  dlock__renew_extend(dlock *l, int64_t ttl_ms);
void dlock__watchdog_free(dlock__watchdog *w);
uint64_t dlock__watchdog_commands(const dlock__watchdog *w);
dlock__watchdog **dlock__client_watchdog(dlock_client *c);
dlock_client *dlock__watchdog_conn(dlock__watchdog *w);
dlock_client *dlock__client_clone(const dlock_client *c, char *err, size_t errlen);
void dlock__client_copy_hook(dlock_client *dst, const dlock_client *src);

/* op.c: an operation as a state machine both drivers run. dlock__op_next advances it until it
 * needs something: NEED_EXCHANGE -- exchange op->batch with Redis, put the replies in
 * op->replies and the exchange's result in op->xrc; NEED_SLEEP -- wait until sleep_until_us (or
 * an interrupt); NEED_NOTHING -- op->rc is the result. */
typedef enum {
    DLOCK__NEED_STEP,       /* internal: keep going */
    DLOCK__NEED_EXCHANGE,
    DLOCK__NEED_SLEEP,
    DLOCK__NEED_NOTHING
} dlock__need;

typedef enum {
    DLOCK__OP_ACQUIRE,      /* tries and waits until taken, timed out, cancelled or failed */
    DLOCK__OP_RELEASE,      /* the release step, once more after an I/O error */
    DLOCK__OP_EXTEND,       /* likewise the extend step */
    DLOCK__OP_RUN           /* one step function, once */
} dlock__op_kind;

typedef struct dlock__op {
    dlock *l;
    dlock_client *c;                  /* whose connections it uses */
    dlock__op_kind kind;
    dlock__step_fn step;              /* DLOCK__OP_RUN: the step */
    int state;
    dlock__step_fn running;           /* the step being run */
    int resume, undo_resume, granted_resume;  /* where a sub-sequence goes on */
    int step_rc;                      /* the last step's decision */
    int cur;                          /* acquire: the result so far */
    int rc;                           /* the result, at NEED_NOTHING */
    int xrc;                          /* set by the driver after an exchange */
    dlock__batch batch;
    redisReply *replies[DLOCK__MAX_BATCH];
    int nreplies;
    int64_t sleep_until_us;           /* at NEED_SLEEP */
    /* acquire */
    dlock__rng *rng;
    int64_t start_us, deadline, prev_us, left_us, wait_end_us;
    uint64_t tries;
    uint32_t wait_tries_before;       /* l->wait_tries when the slice was sent */
    int failures;
    bool unconfirmed;                 /* a try failed without an answer: it may hold the lock */
    bool undo_ours;
    char saved_err[sizeof ((dlock *)0)->err];
} dlock__op;

void        dlock__op_init(dlock__op *op, dlock *l, dlock_client *c, dlock__op_kind kind,
                           dlock__step_fn step);
dlock__need dlock__op_next(dlock__op *op);
void        dlock__op_clear(dlock__op *op);  /* frees what an unfinished op holds */

/* driver.c: the blocking driver */
int dlock__run(dlock *l, dlock__step_fn step);
int dlock__extend_now(dlock *l, int64_t ttl_ms);  /* the extend itself, watchdog aside */
int dlock__run_on(dlock *l, dlock_client *c, dlock__step_fn step);

#endif /* DLOCK_INTERNAL_H */
