/* workload.h -- one client's workload as a machine: what the client does next, decided once
 * for every driver (client threads, the event loop, and later the simulator).
 *
 * The machine is handed the time (µs since the start barrier) and the outcome of what it asked
 * for last, and answers the next thing to do: acquire the lock, read, write or increment the
 * protected counter, stop at the holding point (where "when": "holding" faults act), hold,
 * release or keep the lock, think until a time, or stop. It records every acquire call in its
 * driver thread's meter (log and histograms) and the client's own counts, tells the overlap oracle when the client enters and leaves its
 * critical section, and owns the rules a driver must not decide: when a client's start, its
 * iterations and its group's deadline end it, how long it pauses after an error, what a crash
 * does to the hold it was in. A driver does I/O, time and faults; it asks no question of its
 * own about the workload. */
#ifndef LB_WORKLOAD_H
#define LB_WORKLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "oracle.h"
#include "runner.h"
#include "scenario.h"

typedef enum {
    LB_WL_ACQUIRE = 1,  /* call acquire on the client's key; feed rc, attempts, commands, fence */
    LB_WL_READ,         /* read the counter (fence > 0: the fenced read, else GET); feed ok (a
                           value or nil came) and value, and for a fenced read rc: DLOCK_OK,
                           DLOCK_ESTALE (refused: the store saw a newer token) or an error */
    LB_WL_WRITE,        /* write value to the counter (fence > 0: the fenced write); feed rc:
                           DLOCK_OK, DLOCK_ESTALE (a fenced write refused) or another error */
    LB_WL_INCR,         /* INCR the counter; feed ok */
    LB_WL_ENTER,        /* inside_check: INCR <counter>:inside on the resource connection, the
                           first step in the critical section; feed ok and value (the reply) */
    LB_WL_EXIT,         /* inside_check: DECR <counter>:inside, the last step in it (before
                           the release), or for a client that crashed counted in, before
                           LB_WL_CRASHED (its connections still up); feed ok */
    LB_WL_HOLDING,      /* the holding point: apply the client's armed "when": "holding" faults */
    LB_WL_HOLD,         /* stay in the critical section until until_us (the deadline does not
                           cut it; a crash does) */
    LB_WL_RELEASE,      /* release the lock; feed rc */
    LB_WL_KEEP,         /* leave the lock held (free the handle without releasing) */
    LB_WL_THINK,        /* wait until until_us; a stop ends the wait early */
    LB_WL_CRASHED,      /* the client is down: drop the lock handle unreleased and its
                           connections; lb_wl_restart when it comes back */
    LB_WL_DONE          /* the client has finished */
} lb_wl_do;

typedef struct lb_wl_step {
    lb_wl_do what;
    int64_t until_us;   /* HOLD, THINK: since the start barrier */
    long long value;    /* WRITE */
    uint64_t fence;     /* READ, WRITE: the fencing token, 0 = a plain GET or SET */
} lb_wl_step;

/* What became of the last step. */
typedef struct lb_wl_input {
    int64_t now_us;      /* since the start barrier (monotonic, or virtual) */
    bool stop;           /* the run was asked to stop (Ctrl-C) */
    bool crashed;        /* a crash fault stopped the client during the step */
    int rc;              /* ACQUIRE, WRITE, RELEASE, a fenced READ */
    bool ok;             /* READ, INCR, ENTER, EXIT */
    long long value;     /* READ, ENTER */
    uint32_t attempts;   /* ACQUIRE: tries inside the call */
    uint32_t commands;   /* ACQUIRE: commands the lock core sent for it */
    uint64_t fence;      /* ACQUIRE: the lock's fencing token */
} lb_wl_input;

/* What a client has done so far, read by the progress line from another thread. */
typedef struct lb_wl_tally {
    atomic_llong acquired, timeouts, errors;
} lb_wl_tally;

typedef struct lb_wl {
    const lb_workload *w;
    lb_client_result *out;
    lb_meter *meter;              /* its driver thread's */
    lb_oracle *oracle;
    lb_wl_tally *tally;           /* for the progress line; NULL: read from out instead */
    uint64_t *rng;                /* the client's hold and think draws */
    int key;
    int state;
    int64_t start_us, deadline_us;  /* the group's start and deadline (INT64_MAX: none) */
    int64_t error_pause_us;
    int64_t done;                 /* iterations begun */
    bool error;                   /* the iteration in progress ended in an error */
    bool inside;                  /* in the critical section (the oracle knows) */
    bool counter_read;
    bool store_inside;            /* inside_check: counted in <counter>:inside, not yet out */
    lb_acquisition *a;            /* the iteration's record (&rec), NULL when none */
    lb_acquisition rec;           /* the call in progress, put back in the log at each step */
    size_t seq;                   /* its number in the meter's log */
    uint64_t fence;
    long long counter;
    int member, members;          /* its place in its group, the group's count */
    /* open loop (w->arrival.on) only, else NULL: its schedule and queue (workload.c) -- a
     * simulated run of closed-loop clients keeps a million machines */
    struct lb_wl_arrivals *open;
} lb_wl;

/* The machine for one client: member (0-based) of group g, with its key index, its result, its
 * driver thread's meter and the run's oracle. 0, or -1 when out of memory. */
typedef struct lb_wl_setup {
    const lb_client_group *g;
    int member;
    int key;
    lb_client_result *out;
    lb_meter *meter;
    lb_oracle *oracle;
    uint64_t *rng;                /* its hold and think draws */
    lb_wl_tally *tally;           /* NULL when no other thread reads the counts (the sim) */
    int64_t deadline_us;          /* its group's (INT64_MAX: none) */
} lb_wl_setup;

int  lb_wl_init(lb_wl *m, const lb_wl_setup *setup);
void lb_wl_free(lb_wl *m);
lb_wl_step lb_wl_next(lb_wl *m, const lb_wl_input *in);
/* The client came back after a crash: its next iteration begins (at its start, if not yet). */
lb_wl_step lb_wl_restart(lb_wl *m, const lb_wl_input *in);

/* How an acquire's return code counts. */
lb_result lb_wl_classify(int rc, bool crashed);

#endif
