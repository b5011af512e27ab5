/* dlock_machine.h -- libdlock's lock operations as machines, for a driver of your own.
 *
 * dlock.h's calls (blocking, or on libdlock's own loop) are drivers of the machines declared
 * here. A machine is one operation -- an acquire with its tries, waits and undos, a release, an
 * extend -- that does no I/O, reads no clock, never sleeps and draws no randomness: each call
 * is given the time, the interrupt state and what became of the last batch of commands, and
 * answers with what to do next. That is what lets the same lock run under your own event loop
 * (libuv, libevent), a blocking loop, or a simulator in virtual time, and be tested with
 * scripted replies.
 *
 * The replies are the machine's own type, not hiredis's: a driver converts what its Redis
 * client parsed (see core/examples/poll_driver.c for a whole driver on poll(2) and hiredis). */
#ifndef DLOCK_MACHINE_H
#define DLOCK_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A RESP2 reply. The numbers are RESP2's order as hiredis numbers them, for convenience only. */
typedef enum dlock_reply_type {
    DLOCK_REPLY_STRING = 1,   /* bulk string: str, len */
    DLOCK_REPLY_ARRAY = 2,    /* element[0 .. elements-1] */
    DLOCK_REPLY_INTEGER = 3,  /* integer */
    DLOCK_REPLY_NIL = 4,      /* nil bulk string or nil array */
    DLOCK_REPLY_STATUS = 5,   /* +OK: str, len */
    DLOCK_REPLY_ERROR = 6     /* -ERR ...: str, len */
} dlock_reply_type;

typedef struct dlock_reply {
    dlock_reply_type type;
    long long integer;
    const char *str;                   /* NUL-terminated (the NUL is not counted in len) */
    size_t len;
    size_t elements;
    const struct dlock_reply *element;
} dlock_reply;

/* One command for one server (an index into the servers the lock was made for). */
typedef struct dlock_command {
    int server;
    int argc;
    const char *const *argv;  /* NUL-terminated strings, valid until the next dlock_machine_next */
} dlock_command;

typedef enum dlock_do {
    DLOCK_DO_SEND = 1,  /* send the batch; call again with its replies */
    DLOCK_DO_WAIT,      /* call again at until_us, or sooner once interrupted */
    DLOCK_DO_DONE       /* the operation is over: rc */
} dlock_do;

typedef struct dlock_action {
    dlock_do what;
    /* DLOCK_DO_SEND: write every command to its server (on one connection per server, in
     * order, all before reading any reply), then read one reply per command for at most
     * timeout_us after the writes. A connection that times out or fails mid-batch is out of
     * step: close it (its replies stay NULL) and open a new one for the next batch. With
     * reconnect, close the batch's servers' connections and open new ones before writing. */
    const dlock_command *commands;
    int ncommands;
    int64_t timeout_us;
    bool reconnect;
    /* DLOCK_DO_WAIT */
    int64_t until_us;
    /* DLOCK_DO_DONE: DLOCK_OK or a DLOCK_E* code; dlock_machine_error says why */
    int rc;
    /* The machine acted on the interrupt it was given: the driver clears its request now (an
     * interrupt cancels one acquire). */
    bool interrupt_taken;
} dlock_action;

typedef struct dlock_input {
    int64_t now_us;      /* a monotonic clock, in microseconds */
    int64_t wall_ms;     /* Unix ms, read only by a machine that dlock_machine_reads_wall_clock */
    bool interrupted;    /* the caller asked the acquire to stop (dlock_client_interrupt) */
    /* After DLOCK_DO_SEND: one reply per command, NULL where none came (not sent, timed out,
     * connection lost). A server that refused a new connection's AUTH or SELECT may be given
     * as that error reply for each of its commands (libdlock's drivers do): an acquire then
     * ends as on any refusal, instead of waiting for a server that will never let it in.
     * canceled: nothing was sent (the driver's hook refused the batch). */
    const dlock_reply *const *replies;
    bool canceled;
} dlock_input;

typedef struct dlock_machine dlock_machine;

/* An acquire of key on nservers servers (o NULL = the defaults). token: 16 random bytes from a
 * source fit for secrets (getrandom), the lock's identity on the server; jitter_seed seeds the
 * back-off jitter when o->seed is 0 (a driver that replays a run passes the same one). NULL on
 * bad options (the reason in err) or no memory. */
DLOCK_API dlock_machine *dlock_machine_acquire(const char *key, const dlock_options *o,
                                               int nservers, const unsigned char token[16],
                                               uint64_t jitter_seed, char *err, size_t errlen);
/* A release of l, or an extend to ttl_ms; l must stay alive until the machine is freed, and a
 * release does not free it (dlock_abandon does, once the machine is done). */
DLOCK_API dlock_machine *dlock_machine_release(dlock *l);
DLOCK_API dlock_machine *dlock_machine_extend(dlock *l, int64_t ttl_ms);
/* The protected resource's fenced write (dlock_fenced_set): value under key on server 0,
 * unless a write with a newer fencing token came first. Ends DLOCK_OK, or DLOCK_ESTALE when
 * refused as stale. NULL when fence is 0 or out of memory. */
DLOCK_API dlock_machine *dlock_machine_fenced_set(const char *key, uint64_t fence,
                                                  const char *value);
/* dlock_fenced_write as a machine: l (read when the machine is made, not after) gives the
 * fencing token and names the writer. NULL when l is NULL, its fencing token 0, or out of
 * memory. */
DLOCK_API dlock_machine *dlock_machine_fenced_write(const char *key, const dlock *l,
                                                    const char *value);
/* dlock_fenced_read as a machine: key's value on server 0, l's fencing token recorded there as
 * the highest seen (l read when the machine is made, not after). Ends DLOCK_OK, the value in
 * dlock_machine_value, or DLOCK_ESTALE when refused. NULL when l is NULL, its fencing token 0,
 * or out of memory. */
DLOCK_API dlock_machine *dlock_machine_fenced_read(const char *key, const dlock *l);
/* The first call has in->replies NULL; each later call follows the previous action. */
DLOCK_API dlock_action   dlock_machine_next(dlock_machine *m, const dlock_input *in);
DLOCK_API bool           dlock_machine_reads_wall_clock(const dlock_machine *m);
/* After an acquire ended DLOCK_OK: the lock, now the caller's (free it with dlock_abandon,
 * after a release machine has run on it). NULL otherwise, or when taken already. */
DLOCK_API dlock         *dlock_machine_take_lock(dlock_machine *m);
/* After a fenced read ended DLOCK_OK: the value read, NUL-terminated, valid until the machine
 * is freed; NULL when the key had none (and for any other machine or outcome). */
DLOCK_API const char    *dlock_machine_value(const dlock_machine *m);
DLOCK_API const char    *dlock_machine_error(const dlock_machine *m);
/* Tries an acquire has made so far, the first included. */
DLOCK_API uint64_t       dlock_machine_tries(const dlock_machine *m);
DLOCK_API void           dlock_machine_free(dlock_machine *m);  /* accepts NULL */

#ifdef __cplusplus
}
#endif

#endif /* DLOCK_MACHINE_H */
