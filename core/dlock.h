/* dlock.h -- distributed locks on Redis.
 *
 * libdlock takes a named lock on one Redis server (token, legacy) or on N independent servers
 * (redlock). A client is used by one thread at a time; create one per thread.
 *
 *     const char *url = "redis://127.0.0.1:6379";
 *     char err[256];
 *     dlock_client *c = dlock_client_new(&url, 1, err, sizeof err);
 *     dlock_options o;
 *     dlock_options_init(&o);
 *     o.ttl_ms = 10000;
 *     o.wait_timeout_ms = 2000;
 *     dlock *l;
 *     int rc = dlock_acquire(c, "orders:42", &o, &l);
 *     if (rc == DLOCK_OK) {
 *         ... critical section ...
 *         dlock_release(l);
 *     } else {
 *         fprintf(stderr, "%s: %s\n", dlock_strerror(rc), dlock_client_errstr(c));
 *     }
 *     dlock_client_free(c);
 */
#ifndef DLOCK_H
#define DLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DLOCK_VERSION_MAJOR 0
#define DLOCK_VERSION_MINOR 1
#define DLOCK_VERSION_PATCH 0
#define DLOCK_VERSION "0.1.0"

#if defined(__GNUC__)
#define DLOCK_API __attribute__((visibility("default")))
#else
#define DLOCK_API
#endif

/* Return codes: 0 or negative. */
#define DLOCK_OK          0
#define DLOCK_ETIMEDOUT  -1  /* waited wait_timeout_ms and did not get the lock */
#define DLOCK_EBUSY      -2  /* try-once (wait_timeout_ms 0) and the lock is held */
#define DLOCK_ENOTOWNER  -3  /* release/extend of a lock that expired or was taken by another */
#define DLOCK_EIO        -4  /* Redis unreachable, timed out, or answered with an error */
#define DLOCK_EINVAL     -5  /* bad argument or option combination */
#define DLOCK_ECANCELED  -6  /* dlock_client_interrupt, or the hook asked to cancel */
#define DLOCK_ENOMEM     -7
#define DLOCK_ESTALE     -8  /* fenced write or read: an older fencing token, or another holder's */

typedef struct dlock_client dlock_client;  /* connections to the lock servers; one thread at a time */
typedef struct dlock dlock;                /* a held lock */

typedef enum {
    DLOCK_TOKEN,    /* SET NX PX with a random token; owner-only release and extend (default) */
    DLOCK_LEGACY,   /* the classic SETNX-with-expiry-value lock, flaws included (baseline) */
    DLOCK_REDLOCK   /* the token lock on N independent servers with a quorum */
} dlock_algorithm;

typedef enum {
    DLOCK_WAIT_POLL,    /* retry after the back-off delay (default) */
    DLOCK_WAIT_NOTIFY,  /* woken by the releasing client; back-off as the fallback */
    DLOCK_WAIT_FIFO     /* served in arrival order */
} dlock_wait;

typedef enum {
    DLOCK_BACKOFF_NONE,                 /* 0 */
    DLOCK_BACKOFF_CONSTANT,             /* base */
    DLOCK_BACKOFF_LINEAR,               /* min(cap, base*n) */
    DLOCK_BACKOFF_EXPONENTIAL,          /* min(cap, base*2^n) (default) */
    DLOCK_BACKOFF_FULL_JITTER,          /* uniform(0, min(cap, base*2^n)) */
    DLOCK_BACKOFF_EQUAL_JITTER,         /* v/2 + uniform(0, v/2), v = min(cap, base*2^n) */
    DLOCK_BACKOFF_DECORRELATED_JITTER,  /* min(cap, uniform(base, 3*prev)), prev starts at base */
    DLOCK_BACKOFF_SERVICESTACK          /* uniform(0, min(100 ms * 2^n, 20 s)); ignores base, cap */
} dlock_backoff_policy;

typedef struct dlock_backoff {
    dlock_backoff_policy policy;
    int64_t base_ms;  /* 1 */
    int64_t cap_ms;   /* 100 */
} dlock_backoff;

/* Unix time in milliseconds. Only the legacy algorithm reads the wall clock. */
typedef int64_t (*dlock_wallclock_fn)(void *ud);

/* Called before every command the client (or its watchdog) sends, with the command's name.
 * It may block (the client is paused meanwhile); non-zero cancels the operation in progress,
 * which then returns DLOCK_ECANCELED. */
typedef int (*dlock_hook)(void *ud, const char *command);

/* Called from the watchdog thread when a renewed lock could not be extended (it expired, was
 * taken, or its servers stayed unreachable until the lease ran out). Keep it short (set a flag):
 * a dlock_release or dlock_abandon of that lock on the owner's thread waits for it to return,
 * and key is valid until then. */
typedef void (*dlock_lost_fn)(void *ud, const char *key);

/* The longest duration an option or dlock_extend takes, in ms (about 31 years). Durations are
 * turned into microseconds and added to clock readings; a larger one could overflow, so it is
 * refused with DLOCK_EINVAL and the option named in dlock_client_errstr. */
#define DLOCK_MAX_DURATION_MS 1000000000000LL

typedef struct dlock_options {
    dlock_algorithm algorithm;   /* DLOCK_TOKEN */
    int64_t ttl_ms;              /* 30000; 0 = never expires */
    int64_t wait_timeout_ms;     /* -1 = wait forever (default); 0 = try once */
    dlock_wait wait;             /* DLOCK_WAIT_POLL */
    dlock_backoff backoff;       /* exponential, base 1 ms, cap 100 ms */
    bool renew;                  /* false; true: a watchdog thread extends the lease every ttl/3 */
    bool fencing;                /* false; token algorithm only */
    double drift_factor;         /* 0.01 (redlock) */
    int64_t command_timeout_ms;  /* 1000 */
    uint64_t seed;               /* 0 = random; seeds the back-off jitter only */
    dlock_wallclock_fn wallclock;  /* NULL = CLOCK_REALTIME */
    void *wallclock_ud;
    dlock_lost_fn on_lost;       /* NULL; with renew, told when the lock is lost */
    void *on_lost_ud;
    /* Replicas: with min_replicas > 0, every command that grants or extends the lock (each
     * try, a wait mode's try or hand-off claim, redlock's SET on each server, extend and so
     * renew) is followed in the same batch by WAIT min_replicas replica_timeout_ms. A grant
     * that fewer replicas acknowledged is deleted again (only while it still holds our token)
     * and counts as a failed try, the reason ("WAIT: 0 of 1 replicas acknowledged") in
     * dlock_client_errstr: the acquire waits on, and ends DLOCK_ETIMEDOUT, or DLOCK_EBUSY when
     * it tries once. On redlock a server whose WAIT falls short has not granted. An extend
     * that falls short returns DLOCK_EIO and keeps the lease it had (a watchdog retries it).
     * WAIT blocks, so a batch with one may take replica_timeout_ms (plus Redis's timer slack,
     * 100 ms) on top of command_timeout_ms before its replies are given up on; the lease still
     * counts from the send. WAIT narrows the window in which a failover loses the lock; it is
     * not consensus: an acknowledged grant is lost all the same if the replica that had it is
     * not the one promoted. */
    int min_replicas;            /* 0 = off (no WAIT) */
    int64_t replica_timeout_ms;  /* 100; 1 or more when min_replicas > 0 (WAIT n 0 blocks forever) */
} dlock_options;

/* Statistics of one client: totals since creation, and the last acquire call alone. */
typedef struct dlock_stats {
    uint64_t acquires;   /* acquire calls */
    uint64_t attempts;   /* tries to take the lock (first try included) */
    uint64_t commands;   /* Redis commands sent by the lock core (acquire, wait, release, renew) */
    int64_t  waited_us;  /* time inside acquire calls, monotonic */
} dlock_stats;

DLOCK_API void          dlock_options_init(dlock_options *o);
DLOCK_API const char   *dlock_strerror(int code);

/* urls: n of "redis://[user:password@]host:port[/db]", "unix:///path" or
 * "sentinel://[user:password@]host:port[,host:port...]/master-name[/db]" (the primary the
 * sentinels name, checked with ROLE and looked up again after a failover; the credentials and db
 * are the primary's, the sentinels are asked without AUTH). Connects to each and sends AUTH and
 * SELECT as needed; NULL on failure with the reason (never the password) in err. */
DLOCK_API dlock_client *dlock_client_new(const char *const *urls, int n, char *err, size_t errlen);
DLOCK_API void          dlock_client_free(dlock_client *c);  /* accepts NULL; does not release */
DLOCK_API const char   *dlock_client_errstr(const dlock_client *c);  /* detail of the last error */
/* Thread-safe: cancels the acquire in progress on c, or the next one if none is (the request is
 * kept until an acquire consumes it); that acquire returns DLOCK_ECANCELED. A back-off sleep
 * wakes at once; a wait blocked in Redis returns within its slice (notify: 100 ms, fifo:
 * 500 ms, its heartbeat; Redis may time a blocked command out up to 100 ms late) and a command
 * in flight within command_timeout_ms. */
DLOCK_API void          dlock_client_interrupt(dlock_client *c);
/* The hook is called from the client's thread and, with renew, from its watchdog thread. */
DLOCK_API void          dlock_client_set_hook(dlock_client *c, dlock_hook fn, void *ud);
DLOCK_API void          dlock_client_stats(const dlock_client *c, dlock_stats *total,
                                           dlock_stats *last_acquire);

/* Takes the lock named key. o NULL = defaults. On DLOCK_OK *out is the held lock.
 * A held lock and an unreachable server are waited out (until wait_timeout_ms); a server that
 * refuses us (NOAUTH, WRONGPASS, NOPERM, a command it does not know) is not, since every retry
 * would be refused alike: the call returns DLOCK_EIO at once, the server's answer in
 * dlock_client_errstr (redlock: when so many refuse that no quorum is possible).
 * Wait modes: poll with any algorithm; notify and fifo with token (fencing allowed).
 * Auxiliary keys are the key plus a suffix: :fence, :signal, :signal:<token>, :queue,
 * :queue:beat, :queue:seq. */
DLOCK_API int           dlock_acquire(dlock_client *c, const char *key, const dlock_options *o,
                                      dlock **out);
/* Releases and frees l (also on error). token/redlock delete only their own lock; legacy
 * deletes whatever holds the key, as the classic algorithm does. Accepts NULL. */
DLOCK_API int           dlock_release(dlock *l);
/* Frees l without releasing: the lock stays until its lease runs out (or forever). */
DLOCK_API void          dlock_abandon(dlock *l);
/* Sets the lease to ttl_ms from now (0 = never expires) if l still owns the lock. */
DLOCK_API int           dlock_extend(dlock *l, int64_t ttl_ms);
DLOCK_API uint64_t      dlock_fencing_token(const dlock *l);  /* 0 when fencing is off */
DLOCK_API const char   *dlock_key(const dlock *l);
/* With renew: true once the watchdog failed to extend the lock; extend and release then return
 * DLOCK_ENOTOWNER. */
DLOCK_API bool          dlock_is_lost(const dlock *l);
/* Milliseconds of the lease left as this client knows it (redlock: the validity after drift);
 * -1 when the lock never expires. */
DLOCK_API int64_t       dlock_validity_ms(const dlock *l);

/* The protected resource's side of fencing: on the server of c (one URL, the resource's store,
 * not the lock's), writes value to key if l's fencing token is newer than any a write or a
 * fenced read there carried before, or the same and the earlier one was made under l too: l
 * names the writer (its token is kept beside the fence, in <key>:fence:owner). So when a
 * failover lost the INCR behind a fencing token and a second holder was given the same one,
 * only the first of the two to reach the resource gets through. The check and the write are
 * one script, so a stale writer cannot slip in between. DLOCK_ESTALE when refused;
 * DLOCK_EINVAL when l has no fencing token. l may be held (or have been) by another client and
 * thread: only its token and fence are read. */
DLOCK_API int           dlock_fenced_write(dlock_client *c, const char *key, const dlock *l,
                                           const char *value);
/* The same without a lock to name the writer: the write needs a strictly newer token than any
 * before (an equal one is refused, since it may be a second holder's), so a holder writes once
 * per fencing token. */
DLOCK_API int           dlock_fenced_set(dlock_client *c, const char *key, uint64_t fence,
                                         const char *value);
/* The fenced read, for a read-modify-write: a fenced resource must see the token on every
 * operation, reads included. Were the read plain, an older holder waking from a pause between
 * a newer holder's read and its write would still write (its token being the highest the store
 * had seen), and the newer holder's write of the value it read would then lose that update.
 * Reads key on c's server, refused on the same terms as dlock_fenced_write (DLOCK_ESTALE: an
 * older token than any a read or write there carried, or the same one under another lock);
 * otherwise l's token and l are recorded as the highest seen, so that from then on an older
 * token's write or read is refused, and the value is returned. Check, record and read are one
 * script. On DLOCK_OK *value_out is a copy of the value, NUL-terminated, for the caller to
 * free(), or NULL when the key has none; on any other result it is NULL. DLOCK_EINVAL when l
 * has no fencing token. */
DLOCK_API int           dlock_fenced_read(dlock_client *c, const char *key, const dlock *l,
                                          char **value_out);

/* ---- many clients on one thread --------------------------------------------------------
 *
 * A loop runs any number of clients on the one thread that calls dlock_loop_run: their
 * connections are non-blocking, their back-off sleeps are timers, and an operation reports its
 * result to a callback. The locks and the algorithms are the same as with the blocking calls.
 *
 *     dlock_loop *lp = dlock_loop_new(err, sizeof err);
 *     dlock_client *c = dlock_client_new(&url, 1, err, sizeof err);
 *     dlock_client_attach(c, lp);
 *     dlock_acquire_async(c, "orders:42", &o, on_acquired, state);  // on_acquired(state, rc, l)
 *     while (running)
 *         dlock_loop_run(lp, 100);
 *
 * An attached client takes only the _async calls (the blocking ones return DLOCK_EINVAL and
 * leave their arguments alone: dlock_release does not free the lock; dlock_abandon works while
 * no operation on that lock is in flight) and one operation at a time. Callbacks run inside dlock_loop_run, never inside the call that started
 * the operation, and may start the next one. On a loop:
 *  - renew is refused (DLOCK_EINVAL): the watchdog is a thread of its own;
 *  - the hook must not block (it runs on the loop's thread); non-zero still cancels;
 *  - connecting (a client's first command after an error) blocks for up to the command
 *    timeout, as dlock_client_new does;
 *  - timers fire up to 1 ms late (epoll_wait's resolution);
 *  - callbacks run with SIGPIPE blocked: a write to a closed socket fails with EPIPE, and the
 *    signal is not delivered (a SIGPIPE the caller's own write raised may be delivered when
 *    dlock_loop_run returns, or consumed with the library's own).
 * Free every client attached to a loop, and every timer and watch of it, before the loop; a
 * client freed with an operation in flight drops it without calling its callback (a lock being
 * acquired may be left to its TTL). */
typedef struct dlock_loop dlock_loop;
typedef struct dlock_timer dlock_timer;
typedef struct dlock_watch dlock_watch;

typedef void (*dlock_acquired_fn)(void *ud, int rc, dlock *l);  /* l: the lock when rc == 0 */
typedef void (*dlock_done_fn)(void *ud, int rc);
/* value: the value read when rc == 0 (NULL when the key has none, and when rc != 0), valid
 * only during the call: copy what you keep. */
typedef void (*dlock_value_fn)(void *ud, int rc, const char *value);
typedef void (*dlock_timer_fn)(void *ud);
typedef void (*dlock_io_fn)(void *ud, bool readable, bool writable);

DLOCK_API dlock_loop  *dlock_loop_new(char *err, size_t errlen);
DLOCK_API void         dlock_loop_free(dlock_loop *lp);
/* Waits up to timeout_ms (-1 = until something happens; 0 = not at all) for I/O, timers and
 * wake-ups, and runs what is due. Returns the number of callbacks run, or -1 (errno set;
 * EDEADLK when called from one of this loop's own callbacks). */
DLOCK_API int          dlock_loop_run(dlock_loop *lp, int64_t timeout_ms);
/* Thread-safe: makes a dlock_loop_run in progress return. */
DLOCK_API void         dlock_loop_wake(dlock_loop *lp);

/* The caller's own timers and file descriptors on the same loop. A timer fires once per start;
 * starting a running timer moves it. A watch reports readability always, writability when
 * asked. */
DLOCK_API dlock_timer *dlock_timer_new(dlock_loop *lp, dlock_timer_fn fn, void *ud);
DLOCK_API void         dlock_timer_start(dlock_timer *t, int64_t after_us);
DLOCK_API void         dlock_timer_stop(dlock_timer *t);
DLOCK_API void         dlock_timer_free(dlock_timer *t);  /* accepts NULL */
DLOCK_API dlock_watch *dlock_watch_new(dlock_loop *lp, int fd, dlock_io_fn fn, void *ud);
DLOCK_API void         dlock_watch_want_write(dlock_watch *w, bool on);
DLOCK_API void         dlock_watch_free(dlock_watch *w);  /* accepts NULL; does not close fd */

/* Moves c onto lp for good: DLOCK_OK, or DLOCK_EINVAL when it already is on a loop or has ever
 * renewed a lock (its watchdog thread outlives the lock). */
DLOCK_API int          dlock_client_attach(dlock_client *c, dlock_loop *lp);
/* Start an operation; DLOCK_OK means fn will be called once with the result. Otherwise the
 * error is returned at once and fn is never called (DLOCK_EINVAL: bad arguments, not on a
 * loop, renew asked for, or an operation already in flight on this client). */
DLOCK_API int          dlock_acquire_async(dlock_client *c, const char *key, const dlock_options *o,
                                           dlock_acquired_fn fn, void *ud);
DLOCK_API int          dlock_release_async(dlock *l, dlock_done_fn fn, void *ud);  /* frees l */
DLOCK_API int          dlock_extend_async(dlock *l, int64_t ttl_ms, dlock_done_fn fn, void *ud);
/* dlock_fenced_set and dlock_fenced_write on a loop: fn gets DLOCK_OK, DLOCK_ESTALE or an
 * error. l is read when the call is made, not after. */
DLOCK_API int          dlock_fenced_set_async(dlock_client *c, const char *key, uint64_t fence,
                                              const char *value, dlock_done_fn fn, void *ud);
DLOCK_API int          dlock_fenced_write_async(dlock_client *c, const char *key, const dlock *l,
                                                const char *value, dlock_done_fn fn, void *ud);
/* dlock_fenced_read on a loop: fn gets DLOCK_OK and the value, DLOCK_ESTALE or an error. l is
 * read when the call is made, not after. */
DLOCK_API int          dlock_fenced_read_async(dlock_client *c, const char *key, const dlock *l,
                                               dlock_value_fn fn, void *ud);
/* Freezes an attached client as a stopped process would be (a GC or VM pause): its operation
 * takes no further step -- nothing is sent, a wait that ends and replies that come are held --
 * until it is thawed, when it goes on from where it was (its deadlines may have passed). On
 * the loop's thread only. */
DLOCK_API void         dlock_client_freeze(dlock_client *c, bool frozen);

#ifdef __cplusplus
}
#endif

#endif /* DLOCK_H */
