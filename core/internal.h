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
#include "dlock_machine.h"
#include "monotonic.h"

#define DLOCK__SEND 1        /* step result: send the batch, call again with the replies */
#define DLOCK__WAITED 2      /* wait step result: the whole slice passed with no signal */
#define DLOCK__TRIED 3       /* wait step result: a try sent with the slice found the lock held */
#define DLOCK__UNREPLICATED 4 /* acquire or wait step result: the lock was granted, but fewer
                                 replicas than min_replicas acknowledged it (the reason in
                                 l->err): op.c undoes the grant and counts a failed try */

/* A wait blocked in Redis is cut into slices this long, so an interrupt is seen between them. */
#define DLOCK__WAIT_SLICE_US 100000

/* A blocking command's reply may come this much after its timeout: Redis times blocked clients
 * out on its own timer, which runs hz times a second (10 by default). */
#define DLOCK__BLOCK_SLACK_MS 100

/* dlock_client_new connects before any options are known: this long for each server. */
#define DLOCK__CONNECT_TIMEOUT_MS 1000

#define DLOCK__MAX_SERVERS 9
#define DLOCK__MAX_ARGV 12
#define DLOCK__MAX_BATCH DLOCK__BATCH_CAP(DLOCK__MAX_SERVERS)

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
extern const dlock__script dlock__script_fenced_get;
extern const dlock__script dlock__script_notify_release;
extern const dlock__script dlock__script_fifo_acquire;
extern const dlock__script dlock__script_fifo_release;

/* How long a FIFO waiter may go without a heartbeat before it counts as gone, and how often a
 * waiter sends one (at most this long blocked between tries). */
#define DLOCK__FIFO_WAITER_BOUND_MS 2000
#define DLOCK__FIFO_HEARTBEAT_MS 500

/* One command for one server, as sent: a script command is EVALSHA sha nkeys keys... args...
 * (EVAL text ... after a NOSCRIPT); dlock__cmd_args gives what the step put after that.
 * argv is in its batch's args, one command's after the other's. Strings must outlive the
 * exchange. */
typedef struct dlock__cmd {
    int server;
    int nkeys;
    int argc;
    const dlock__script *script;
    const char **argv;
} dlock__cmd;

#define DLOCK__CMD_MAX_ARGC (3 + DLOCK__MAX_ARGV)

/* A batch: n commands, room for cap, and room for acap arguments among them. An operation's
 * batch starts with room for the lock's usual step (dlock__op_init) and grows, as a step adds
 * more, up to max commands: three per server and one more (legacy's MULTI, SET, EXEC and WAIT is
 * the most one step sends to one server; redlock sends at most two to each). A batch with max 0
 * has fixed room (the tests' batches on the stack). op.c keeps the action's view of the commands
 * and the NOSCRIPT resend's indices in the same allocation, between the commands and the
 * arguments (dlock__batch_bytes). */
typedef struct dlock__batch {
    int n, cap, max, acap;
    bool oom;          /* a command could not be added for want of memory */
    bool waits_replicas;  /* a WAIT is in it (counted in block_ms once: servers run theirs at
                             the same time, and a step sends at most one to each) */
    int64_t block_ms;  /* how long the server may legitimately hold the reply (BLPOP, WAIT) */
    dlock__cmd *cmd;
    const char **args;
} dlock__batch;

#define DLOCK__BATCH_CAP(nservers) (3 * (nservers) + 1)
#define DLOCK__BATCH_ARGS(nservers) (6 * (nservers))

/* Where the arguments start in a batch's allocation with room for cap commands, and its size
 * with room for acap arguments too. */
static inline size_t dlock__batch_args_at(int cap)
{
    size_t at = (size_t)cap * (sizeof(dlock__cmd) + sizeof(dlock_command) + sizeof(int));
    return (at + sizeof(char *) - 1) / sizeof(char *) * sizeof(char *);
}

static inline size_t dlock__batch_bytes(int cap, int acap)
{
    return dlock__batch_args_at(cap) + (size_t)acap * sizeof(char *);
}

/* The time a step is given. */
typedef struct dlock__now {
    int64_t mono_us;  /* monotonic clock */
    int64_t wall_ms;  /* the lock's wall clock, Unix ms; read only for an algorithm that
                         says it needs it (legacy), else 0 */
} dlock__now;

typedef struct dlock__algo dlock__algo;
typedef struct dlock_machine dlock__op;  /* op.c */

/* A lock: taken (while acquiring) or held. The step functions keep their progress in it. What
 * only some locks need -- the wait modes' keys, the fence key, an error -- is made only for
 * them: a simulator holds a million. */
struct dlock {
    dlock_client *client;         /* NULL in step-function tests */
    const dlock__algo *algo;
    dlock_options opt;
    char *key;                    /* in the lock's own allocation, after it */
    char *fence_key;              /* <key>:fence; fencing, fifo and the fenced write only */
    char token[33];               /* 128 random bits, hex */
    char ttl_arg[24];             /* ttl in ms, as sent */
    char value[24];               /* legacy: the expiry value we wrote; fenced write or read: the
                                     fencing token */
    char *payload;                /* fenced write: the value to write (a copy); fenced read: the
                                     value read (NULL: the key has none) */
    char *owner_key;              /* fenced write or read: <key>:fence:owner; its token is the
                                     writer's or reader's (the lock's token; empty when not
                                     named) */
    char *signal_key;             /* notify: <key>:signal; fifo: <key>:signal:<token> */
    char *queue_key;              /* fifo: <key>:queue, <key>:queue:beat, <key>:queue:seq */
    char *beat_key;
    char *seq_key;
    char *signal_prefix;          /* fifo: <key>:signal: */
    char *member;                 /* fifo: token:ttl:fencing, our entry in the queue */
    char wait_arg[24];            /* BLPOP timeout in seconds */
    char replicas_arg[12];        /* WAIT's arguments: min_replicas, replica_timeout_ms */
    char replica_timeout_arg[24];
    int64_t wait_us;              /* the back-off delay before the next try */
    int64_t wait_left_us;         /* time left until the wait deadline (INT64_MAX = none) */
    uint64_t fence;               /* fencing token, 0 = none */
    uint32_t wait_tries;          /* tries a wait step sent (counted with the acquire's tries) */
    int phase;                    /* step progress within one operation */
    int64_t started_us;           /* when the current operation began (monotonic) */
    _Atomic int64_t valid_until_us; /* end of the lease as we know it (monotonic); INT64_MAX = none */
    atomic_bool lost;             /* the watchdog failed to extend it */
    bool refused;                 /* the last step's DLOCK_EIO is the server refusing us (NOAUTH,
                                     NOPERM, ...: dlock__error_is_refusal), not Redis out of
                                     reach */
    bool unreplicated;            /* the last step's DLOCK_EIO is an extend WAIT did not confirm */
    int nservers;
    struct dlock__renewal *renewal; /* non-NULL while the watchdog renews it */
    struct dlock__loop_renewal *loop_renewal;  /* non-NULL while its loop renews it */
    void (*unrenew)(dlock *l);    /* stops whichever renews it (before a release or a free) */
    char *err;                    /* why the last step failed, at most DLOCK__LOCK_ERR_LEN bytes
                                     (NULL: none yet; dlock__set_text); dlock__lock_err reads it.
                                     A copy of the lock (a renewer's) starts with none of its own */
};

#define DLOCK__LOCK_ERR_LEN 192

static inline const char *dlock__lock_err(const dlock *l)
{
    return l->err ? l->err : "";
}

typedef int (*dlock__step_fn)(dlock *l, const dlock__now *now, const dlock_reply *const *replies,
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
    dlock__step_fn unreplicated;  /* deletes a grant WAIT did not confirm, only if it still
                                     holds our value; NULL = the release step */
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
int dlock__token_acquire(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                         dlock__batch *out);
int dlock__token_extend(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                        dlock__batch *out);
int dlock__owner_reply(dlock *l, const dlock_reply *r, const char *what);
/* An extend (what) that WAIT did not confirm (the reason in l->err): DLOCK_EIO, the lease as it
 * was, l->unreplicated set. */
int dlock__unreplicated_extend(dlock *l, const char *what);
/* The protected resource's fenced write: value (payload) under key unless a newer token wrote. */
int dlock__fenced_set_step(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                           dlock__batch *out);
/* Its fenced read: the key's value into payload unless a newer token came, the token recorded
 * as the highest seen. */
int dlock__fenced_get_step(dlock *l, const dlock__now *now, const dlock_reply *const *r, int nr,
                           dlock__batch *out);
void dlock__add_blpop(dlock *l, dlock__batch *out, const char *key);
/* With min_replicas: WAIT min_replicas replica_timeout_ms to server, after the command that
 * grants or extends the lock there; nothing otherwise. */
void dlock__add_replica_wait(dlock *l, dlock__batch *out, int server);
/* How many replies the WAIT adds after a granting command: 1 with min_replicas, else 0. */
int  dlock__replica_waits(const dlock *l);
/* Whether WAIT's reply, replies[at] of nr, confirms the grant before it (always, without
 * min_replicas, when nothing is read); if not, why, in l->err ("WAIT: 0 of 1 replicas
 * acknowledged"), l->refused for a refusal. */
bool dlock__replicated(dlock *l, const dlock_reply *const *replies, int nr, int at);

/* steps.c: building batches and reading replies */
dlock__cmd *dlock__add(dlock__batch *b, int server, const char *arg0, ...);
dlock__cmd *dlock__add_script(dlock__batch *b, int server, const dlock__script *s, int nkeys, ...);
const char *dlock__cmd_name(const dlock__cmd *c);
const char *const *dlock__cmd_args(const dlock__cmd *c);  /* a script's keys, or argv */
bool dlock__reply_is_noscript(const dlock_reply *r);
bool dlock__reply_is_status(const dlock_reply *r, const char *status);
bool dlock__reply_is_nil(const dlock_reply *r);
bool dlock__reply_int(const dlock_reply *r, long long *v);
bool dlock__reply_is_refusal(const dlock_reply *r);  /* an error reply that retrying cannot mend */
int  dlock__fail(dlock *l, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Formats into *buf, made again to the text's size (at most max bytes with the NUL, cut as
 * snprintf cuts); out of memory leaves *buf as it was, emptied. No argument may point into
 * *buf. Error texts are kept this way: a simulator holds a million of them. */
void dlock__set_text(char **buf, size_t max, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* DLOCK_EIO for a reply that is neither of the expected ones, saying what came; l->refused
 * when it was a refusal. */
int  dlock__reply_error(dlock *l, const dlock_reply *r, const char *what);

/* lock.c: a lock's lifetime apart from I/O */
/* The lock a fenced write or read runs on (it takes no lock): its token is writer's, the token
 * of the lock the write or read is made under (NULL: not named); value is what to write, NULL
 * for a read. NULL when out of memory. */
dlock *dlock__fenced_write_new(dlock_client *c, const char *key, uint64_t fence,
                               const dlock *writer, const char *value);
/* token: 16 random bytes, the lock's identity on its servers. */
dlock *dlock__lock_new(dlock_client *c, const char *key, const dlock_options *o, int nservers,
                       const unsigned char token[16]);
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
/* entropy.c: random bytes from getrandom(2), for tokens and jitter seeds (drivers only). */
int    dlock__random_bytes(void *out, size_t n);

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

/* reply.c: an exchange's replies, as hiredis parsed them and as the machines read them */
#define DLOCK__ANSWER_NODES 32  /* a batch's replies and their elements: legacy's EXEC is the most */
typedef struct dlock__answers {
    int n, used;
    redisReply *raw[DLOCK__MAX_BATCH];
    /* where raw is NULL: the server's refusal of the connection's AUTH or SELECT, if that was
     * why (the connection's own text, valid until its next connect), viewed as an error reply */
    const char *refusal[DLOCK__MAX_BATCH];
    const dlock_reply *reply[DLOCK__MAX_BATCH];  /* NULL where raw and refusal are */
    dlock_reply node[DLOCK__ANSWER_NODES];
} dlock__answers;
void dlock__answers_view(dlock__answers *ans);   /* fills reply from raw */
void dlock__answers_clear(dlock__answers *ans);  /* frees raw */

/* client.c: connections. An exchange carries out a machine's DLOCK_DO_SEND: the hook, then
 * the batch, then its replies into ans (viewed). DLOCK_OK, or DLOCK_ECANCELED when the hook
 * refused (nothing was sent). */
int  dlock__exchange(dlock_client *c, const dlock_action *a, dlock__answers *ans);
int  dlock__client_nservers(const dlock_client *c);
void dlock__client_set_err(dlock_client *c, const char *msg);
bool dlock__client_sleep(dlock_client *c, int64_t us);  /* false = interrupted */
bool dlock__client_interrupt_pending(const dlock_client *c);
void dlock__client_clear_interrupt(dlock_client *c);
void dlock__client_begin_acquire(dlock_client *c);
void dlock__client_end_acquire(dlock_client *c, uint64_t attempts, int64_t waited_us);
dlock__rng *dlock__client_rng(dlock_client *c, uint64_t seed);
/* The input a driver gives op now: the clocks and c's interrupt state. */
dlock_input dlock__client_input(dlock_client *c, const dlock__op *op);

/* client.c reaches an event loop only through these hooks, given by the layer that attaches
 * it (async.c), as hiredis's async contexts reach theirs through adapters: it never names the
 * loop. Handles are the layer's own. */
typedef struct dlock__io {
    void *(*watch)(void *loop, int fd, dlock_io_fn fn, void *ud);
    void  (*want_write)(void *watch, bool on);
    void  (*unwatch)(void *watch);
    void *(*timer)(void *loop, dlock_timer_fn fn, void *ud);
    void  (*timer_start)(void *timer, int64_t after_us);
    void  (*timer_stop)(void *timer);
    void  (*timer_free)(void *timer);
    void  (*wake)(void *loop);            /* from any thread: an interrupt came */
    void  (*exchanged)(dlock_client *c);  /* the exchange in flight is over */
    void  (*detach)(dlock_client *c);     /* the client is being freed */
} dlock__io;

/* Makes c's connections non-blocking and watched through io on loop; data is the layer's, read
 * back with dlock__client_io_data. OK or ENOMEM. */
int   dlock__client_attach_io(dlock_client *c, const dlock__io *io, void *loop, void *data);
void *dlock__client_io_data(const dlock_client *c);
/* Bytes of core state: a client's own (client.c), a loop's part of one (async.c), a timer. */
size_t dlock__client_footprint(const dlock_client *c);
size_t dlock__async_footprint(void);
size_t dlock__timer_size(void);
bool  dlock__client_on_loop(dlock_client *c);  /* true (with the reason in its err) on a loop */
/* The exchange on a loop: writes the batch and returns; *pending says whether replies are still
 * to come, in which case io->exchanged follows. */
int   dlock__exchange_start(dlock_client *c, const dlock_action *a, dlock__answers *ans,
                            bool *pending);

/* What another layer hangs on a client (renew.c: its watchdog), freed with it by cleanup. */
void *dlock__client_ext(const dlock_client *c);
void  dlock__client_set_ext(dlock_client *c, void *ext, void (*cleanup)(void *ext));

/* loop.c: what the layer above hangs on a loop (async.c: its attached clients), told of every
 * wake-up and freed with the loop. */
void  dlock__loop_set_ext(dlock_loop *lp, void *ext, void (*wake)(void *ext),
                          void (*cleanup)(void *ext));
void *dlock__loop_ext(const dlock_loop *lp);

/* the watchdog (renew.c) */
int  dlock__renew_start(dlock *l);
void dlock__renew_stop(dlock *l);
/* The owner's own extend of a renewed lock, kept in step with the watchdog's. */
int  dlock__renew_extend(dlock *l, int64_t ttl_ms);
/* A client on the same servers with the same hook, whose commands count in c's totals. */
dlock_client *dlock__client_clone(dlock_client *c, char *err, size_t errlen);

/* op.c: an operation as a machine (dlock_machine.h): every driver -- the blocking one
 * (driver.c), the loop (loop.c), a caller's own, the simulator -- feeds it the time, the
 * interrupt state and the replies, and does what it answers. */
typedef enum {
    DLOCK__OP_ACQUIRE,      /* tries and waits until taken, timed out, cancelled or failed */
    DLOCK__OP_RELEASE,      /* the release step, once more on a fresh connection after an I/O error */
    DLOCK__OP_EXTEND,       /* likewise the extend step */
    DLOCK__OP_RUN           /* one step function, once */
} dlock__op_kind;

struct dlock_machine {                /* pointers, then numbers, then flags: no holes */
    dlock *l;
    dlock__step_fn step;              /* DLOCK__OP_RUN: the step */
    dlock__step_fn running;           /* the step being run */
    const dlock_input *in;            /* the input of the call in progress */
    dlock__batch batch;               /* the step's batch, then the action's view of it and
                                         where each resent command's reply goes */
    dlock_reply *kept;                /* the first round's replies while the resend is out */
    int64_t sleep_until_us;           /* at a wait */
    int64_t extend_ttl_ms;            /* DLOCK__OP_EXTEND: the new lease */
    /* Errors take memory only once there is one: a simulator runs a million operations. */
    char *saved_err;                  /* the lock's error while an undo runs (NULL: none) */
    char *err;                        /* why the operation failed, at most DLOCK__OP_ERR_LEN
                                         bytes (NULL: no reason given; dlock__set_text) */
    /* acquire */
    dlock__rng *rng;
    dlock__rng own_rng;               /* when the machine was made without a driver's rng */
    int64_t start_us, deadline, prev_us, left_us, wait_end_us;
    uint64_t tries;
    uint32_t wait_tries_before;       /* l->wait_tries when the slice was sent */
    int failures;
    int cur;                          /* acquire: the result so far */
    /* every kind */
    dlock__op_kind kind;
    int state;
    int resume, undo_resume, granted_resume;  /* where a sub-sequence goes on */
    int step_rc;                      /* the last step's decision */
    int rc;                           /* the result, once done */
    int nresend;                      /* commands answered NOSCRIPT, sent again as EVAL */
    char old_ttl_arg[sizeof ((dlock *)0)->ttl_arg];
    bool step_refused;                /* step_rc is a DLOCK_EIO that is the server refusing us */
    bool refused;                     /* cur is a DLOCK_EIO that is the server refusing us */
    bool fresh;                       /* the next send is on fresh connections */
    bool interrupt_taken;
    bool unconfirmed;                 /* acquire: a try failed without an answer: it may hold
                                         the lock */
    bool undo_ours;
    bool owns_lock;                   /* dlock_machine_free frees l */
};

#define DLOCK__OP_ERR_LEN 256

/* Makes op ready to run kind on l (its batch sized to l's servers); rng is the back-off's
 * generator, kept by the driver across acquires (NULL for other kinds). ENOMEM or OK. */
int  dlock__op_init(dlock__op *op, dlock *l, dlock__op_kind kind, dlock__step_fn step,
                    dlock__rng *rng);
/* The next action, given in (see dlock_machine_next). */
dlock_action dlock__op_next(dlock__op *op, const dlock_input *in);
void dlock__op_clear(dlock__op *op);  /* frees what the op holds (not l) */
const char *dlock__op_error(const dlock__op *op);  /* why it failed, "" when no reason */
bool dlock__op_reads_wall_clock(const dlock__op *op);
/* An acquire's tries so far (wait steps' tries included) and when it began. */
uint64_t dlock__op_tries(const dlock__op *op);

/* driver.c: the blocking driver */
int dlock__run(dlock *l, dlock__step_fn step);
int dlock__extend_now(dlock *l, int64_t ttl_ms);  /* the extend itself, watchdog aside */
int dlock__run_on(dlock *l, dlock_client *c, dlock__step_fn step);

#endif /* DLOCK_INTERNAL_H */
