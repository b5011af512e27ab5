/* runner_priv.h -- what the run stage's two drivers share: the run, its clients and their
 * control blocks, and the pieces of the workload that do not depend on how a client runs.
 * runner.c runs each client on a thread of its own and applies the fault schedule; runloop.c
 * runs many clients on each of a few event-loop threads. Internal to the run stage. */
#ifndef LB_RUNNER_PRIV_H
#define LB_RUNNER_PRIV_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

#include "ranks.h"
#include "dlock.h"
#include "oracle.h"
#include "runner.h"
#include "workload.h"

/* ---- per-client control: what faults do to a client ---------------------- */

typedef struct ctl {
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* monotonic */
    int paused;                  /* pauses in effect: they may overlap */
    bool crashed;                /* crash requested: the hook cancels, the thread stops */
    bool stopping;               /* the run's deadline or Ctrl-C: no new iteration starts */
    int crash_when_holding;      /* the event (index + 1) that arms it, 0 = none */
    int pause_when_holding;      /* likewise */
    int64_t pause_when_holding_us;  /* how long that pause lasts */
    int64_t restart_after_us;       /* for a crash: -1 = stay down */
    unsigned crashes;               /* crash events received: a new one restarts the down time */
    atomic_llong skew_ms;        /* clock-skew offset */
} ctl;

typedef struct run run;
typedef struct rn_loop_client rn_loop_client;
typedef struct rn_loops rn_loops;

typedef struct client {
    run *run;
    int id;
    size_t group;
    const lb_client_group *g;
    int key;                     /* index into run->keys */
    ctl ctl;
    dlock_client *lock;
    redisContext *res;           /* the protected resource */
    dlock_client *fenced;        /* the resource again, for fenced reads and writes */
    int links[LB_SCENARIO_MAX_SERVERS];  /* proxy links, -1 = direct */
    int partitions;              /* partitions in effect (the scheduler's alone) */
    const lb_event **delays;     /* delay events in effect, oldest first (the scheduler's) */
    size_t ndelays;
    char *urls[LB_SCENARIO_MAX_SERVERS];
    uint64_t rng;
    lb_wl wl;                    /* its workload machine */
    lb_client_result *out;
    lb_wl_tally tally;           /* for the progress line */
    bool setup_failed;
    uint64_t commands_before;    /* of incarnations before a restart */
    pthread_t thread;
    rn_loop_client *lc;          /* the loop driver's state for it */
} client;

struct run {
    const lb_scenario *sc;
    const lb_run_target *t;
    size_t n;
    client *clients;
    size_t ready;                /* clients connected and waiting at the start barrier */
    bool go;                     /* the barrier opens (t0 is set) */
    int64_t t0;                  /* the start barrier, monotonic µs */
    int64_t *deadline;           /* per group: t0 + its duration, or INT64_MAX */
    bool *stopped;               /* per group: its deadline has been applied */
    bool abort;                  /* set before `go` when setup failed */
    atomic_bool failed;          /* a server stopped answering: every client stops (r->err) */
    size_t nkeys;
    char **keys;                 /* the lock keys in use: at most one per client */
    atomic_llong *fired_start;   /* per event: when a "when": "holding" event fired, -1 = not */
    atomic_llong *fired_end;
    lb_oracle *oracle;
    atomic_int running;          /* clients not yet finished */
    pthread_mutex_t done_mu;     /* guards ready, go, abort, err */
    pthread_cond_t done_cv;      /* the main thread waits here: a client is ready, or finished */
    pthread_cond_t go_cv;        /* the clients wait here for the barrier to open (so a client
                                    getting ready wakes the main thread, not every other client) */
    char err[320];
    lb_driver driver;            /* threads or loop, "auto" resolved */
    void (*notify)(client *c);   /* the scheduler changed c's control block (loop: wakes it) */
    rn_loops *loops;             /* the loop driver's threads */
    lb_ranks *ranks;             /* lockbench-mpi: the other ranks (NULL: one process) */
    lb_clock_sample *clock_a;    /* rank 0: each rank's clock when the clients start */
};

int64_t rn_since_t0(const client *c);
/* At the holding point: the client's armed "when": "holding" events, taken (disarmed). A crash
 * is recorded as fired and marks the client crashed; a pause is for the driver to carry out
 * (then rn_fired with its window). */
typedef struct rn_holding {
    bool crashed;
    int pause;            /* the pause event, index + 1; 0 = none */
    int64_t pause_us;
    int64_t now_us;
} rn_holding;
rn_holding rn_take_holding(client *c);
/* A "when": "holding" event fired on a client: its window, for events.csv. */
void    rn_fired(run *r, int event, int64_t start_us, int64_t end_us);
void    rn_options_of(client *c, dlock_options *o);
bool    rn_out_of_time(const client *c);
/* The client's lock client (with the fault hook when hooked) and its resource connections. */
bool    rn_client_connect(client *c, bool hooked, bool resource, char *err, size_t errlen);
void    rn_client_disconnect(client *c);
void    rn_setup_failed(client *c, const char *err);
void    rn_count_commands(client *c);   /* into c->out->commands, at the end */
void    rn_finish(client *c);
/* Every client connects first, then all start together: n clients arrive. false = aborted. */
bool    rn_start_barrier(run *r, size_t n);

/* The client numbered id when this process runs it, else NULL (lockbench-mpi deals the clients
 * over its ranks: ranks.h). */
client *rn_client_of(run *r, int id);

/* runranks.c: the ranks' steps at the start barrier (true when any rank's clients failed to
 * start: every rank aborts), when the clients have finished (true when a server stopped
 * answering on any rank: every rank fails the run), and the gather of every rank's record into
 * rank 0's out (0, or -1 with r->err filled on every rank). No-ops in one process. */
bool rn_ranks_start(run *r, bool abort);
bool rn_ranks_end(run *r, bool failed);
int  rn_ranks_gather(run *r, lb_run_result *out);

/* runner.c: a pause starts (+1) or ends (-1) in c. */
void rn_ctl_pause(ctl *c, int delta);

/* faults.c: the schedule, on the main thread until every client finished; a fault's record as
 * scheduled; the real windows of the faults once the run is over. */
void rn_schedule(run *r, lb_run_result *out);
void rn_fault_describe(const lb_event *e, lb_fault_record *f);
/* When a timed fault ends, from its start (µs); -1 when it has no end of its own. */
int64_t rn_event_end_us(const lb_event *e);
/* The scenario's faults as starts and ends in the order to apply them: by time, an end before a
 * start at the same time. acts has room for 2 * nevents; returns how many. */
typedef struct rn_action {
    int64_t at_us;       /* from the start barrier */
    size_t event;        /* index into the scenario's events */
    bool ending;         /* the end of a timed fault (or a restart) */
} rn_action;
size_t rn_fault_actions(const lb_scenario *sc, rn_action *acts);
void rn_fault_windows(run *r, lb_run_result *out);
/* The same from plain arrays of when each "when": "holding" event fired (-1: never). */
void rn_fault_windows_of(const lb_scenario *sc, const int64_t *fired_start,
                         const int64_t *fired_end, lb_run_result *out);
/* The run's planned length: its latest group deadline, or -1 when a group runs by count. */
int64_t rn_planned_us(const lb_scenario *sc);
/* A client's lock options from its group's lock section (no clock hook), its hold-and-think
 * random stream and its lock key: the same for every driver, so a seed means one thing. */
void     rn_lock_options(const lb_lock *lk, uint64_t seed, int id, dlock_options *o);
uint64_t rn_client_rng(uint64_t seed, size_t id);
void     rn_key_name(char *buf, size_t len, const char *prefix, const lb_lock *lk, int id);

/* runloop.c: the event-loop driver. Starts the loop threads, each with its share of the
 * clients; *started counts the clients whose thread started. 0, or -1 with r->err set. */
/* The loop threads for nclients clients; client i runs on thread i % that. */
size_t rn_loop_threads(size_t nclients);
int  rn_loops_start(run *r, size_t *started);
void rn_loops_join(run *r);   /* after every client finished; frees the loops */

#endif
