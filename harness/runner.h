/* runner.h -- the run stage: client threads, the start barrier, the workload, the fault schedule.
 *
 * lb_runner_run runs one resolved variant against servers that are already up and returns what
 * happened, raw: per driver thread ("meter") the latency histograms and a log of every acquire
 * call its clients made, per client its counts, sums and maxima, the faults as applied, the
 * oracle's overlap count and the counter's figures. metrics.c turns that into the
 * summary; results.c writes it. Times are microseconds since the start barrier (monotonic). */
#ifndef LB_RUNNER_H
#define LB_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "scenario.h"

typedef enum {
    LB_RES_OK,         /* acquired */
    LB_RES_TIMEOUT,    /* waited wait_timeout_ms (or tried once and found it held) */
    LB_RES_ERROR,      /* Redis unreachable, timed out, protocol error */
    LB_RES_CANCELED,   /* the client crashed while waiting */
    LB_RES_ABANDONED   /* the run's deadline came while waiting: neither acquisition nor timeout */
} lb_result;

typedef enum {
    LB_END_NONE,       /* not acquired */
    LB_END_RELEASED,   /* released */
    LB_END_NOTOWNER,   /* release found the lock expired or taken */
    LB_END_KEPT,       /* workload.release false: left held */
    LB_END_CRASHED,    /* crashed while holding */
    LB_END_FAILED      /* release failed (Redis unreachable): the lock stays until its TTL */
} lb_hold_end;

/* One acquire call. */
typedef struct lb_acquisition {
    int64_t  intended_us;  /* open loop: when the arrival was due (acquire_ms runs from it);
                              -1 in a closed loop */
    int64_t  call_us;      /* acquire called */
    int64_t  end_us;       /* acquire returned */
    int64_t  left_us;      /* left the critical section (before the release call, or the
                              crash); -1 when not acquired */
    int64_t  released_us;  /* the hold ended (release returned, crash, end of hold when kept);
                              -1 when not acquired */
    uint64_t fence;        /* fencing token, 0 when off */
    uint32_t attempts;     /* tries inside the call */
    uint32_t commands;     /* commands the lock core sent for the call */
    int32_t  key;          /* key index, 0 … keys-1 */
    int32_t  client;       /* the client that called, 0-based */
    uint8_t  result;       /* lb_result */
    uint8_t  end;          /* lb_hold_end */
    bool     overlap;      /* entered the critical section while another live client was in it */
} lb_acquisition;

/* An append-only log of acquisitions whose memory does not grow with the run. Each driver
 * thread keeps one for all its clients, in the order the calls began (its clock is monotonic).
 * The newest records stay in memory (at most max_buf of them), older ones go to an unlinked
 * temporary file, half a buffer at a time, and readers walk it with a cursor. A client keeps the
 * record of its call in progress itself and puts it back by its number (lb_acq_log_put) as the
 * call and the hold go on, wherever the record is by then. A zeroed lb_acq_log is an empty log
 * that keeps LB_ACQ_LOG_BUF records in memory. */
#define LB_ACQ_LOG_BUF 256

typedef struct lb_acq_log {
    lb_acquisition *buf;     /* the records not written out, oldest first */
    size_t nbuf, cap;
    size_t max_buf;          /* the buffer's bound (0: LB_ACQ_LOG_BUF) */
    size_t count;            /* every record */
    size_t spilled;          /* records in the file, before those in buf */
    int fd;                  /* the file, when has_file */
    bool has_file;
    bool failed;             /* a record could not be put back: the log is incomplete */
} lb_acq_log;

/* A log that keeps up to max_buf records in memory before it writes to its file: enough for
 * every client sharing it to have a call in progress without making the file's records stale. */
void            lb_acq_log_init(lb_acq_log *log, size_t max_buf);
/* A record at the end of the log, left_us and released_us -1, the rest zero; its number is
 * count - 1. Its address is valid until the next append. NULL when out of memory. */
lb_acquisition *lb_acq_log_append(lb_acq_log *log);
/* Writes a over record number seq (in memory or in the file). */
void            lb_acq_log_put(lb_acq_log *log, size_t seq, const lb_acquisition *a);
void            lb_acq_log_free(lb_acq_log *log);

/* Reads one log in order. The record returned is valid until the next call. */
typedef struct lb_acq_cursor {
    const lb_acq_log *log;
    size_t next;             /* index of the next record */
    size_t blk_first, blk_n; /* records blk holds: [blk_first, blk_first + blk_n) */
    lb_acquisition blk[32];
} lb_acq_cursor;

void                  lb_acq_cursor_init(lb_acq_cursor *c, const lb_acq_log *log);
const lb_acquisition *lb_acq_cursor_next(lb_acq_cursor *c);  /* NULL at the end */

/* What one driver thread measured for its clients: the latency histograms and the acquisition
 * log. A thread records into its own, with no lock and no allocation per sample; metrics.c
 * merges them after the run. */
typedef struct lb_meter {
    lb_hist    *acquire_hist;   /* waits of successful acquires, µs (open loop: from the
                                   intended start) */
    lb_hist    *timeout_hist;   /* waits of acquires that timed out, µs (likewise) */
    lb_hist    *service_hist;   /* open loop: successful acquires from the call; else NULL */
    lb_hist    *lag_hist;       /* open loop: call - intended start of every acquire; else NULL */
    lb_acq_log  log;
} lb_meter;

/* A meter for nclients clients (open_loop: with service and lag histograms). 0, or -1 when
 * out of memory. */
int  lb_meter_init(lb_meter *m, size_t nclients, bool open_loop);
void lb_meter_free(lb_meter *m);

/* Reads every meter's log as one, in the order asked: by call (call_us, then the client) or by
 * end (end_us, then the client). Each log is in call order; the order by end is made from it
 * with a heap of the calls that began but had not ended by then -- at most one per client --
 * so nothing here grows with the run. */
typedef enum { LB_ACQ_BY_CALL, LB_ACQ_BY_END } lb_acq_order;
typedef struct lb_acq_merge lb_acq_merge;
lb_acq_merge         *lb_acq_merge_new(const lb_meter *meters, size_t n, lb_acq_order order);
/* The next record in the merged order; NULL at the end. Valid until the next call. */
const lb_acquisition *lb_acq_merge_next(lb_acq_merge *m);
void                  lb_acq_merge_free(lb_acq_merge *m);

typedef struct lb_client_result {
    int          client;         /* 0-based, file order of groups */
    size_t       group;          /* index into the scenario's groups */
    int64_t      acquisitions, timeouts, errors;
    int64_t      dropped;        /* open loop: arrivals beyond its share of max_outstanding */
    int64_t      wait_sum_us;    /* over successful acquires */
    int64_t      wait_max_us;    /* over acquire calls that ended ok or timed out */
    uint64_t     commands;       /* sent by this client's lock core (all its incarnations) */
    int64_t      cs_attempted;   /* critical sections entered */
    int64_t      cs_acked;       /* counter writes Redis acknowledged */
    int64_t      stale_rejected; /* critical sections the store refused for an older token,
                                    at the read or the write */
    int64_t      store_overlaps; /* inside_check: entries the store counted a second client
                                    inside at (an INCR of <counter>:inside that answered > 1) */
    bool         crashed;        /* crashed and not restarted */
    int          crashes;        /* times it crashed */
    int64_t      end_us;         /* when it finished */
} lb_client_result;

/* A fault as scheduled and as applied. */
typedef struct lb_fault_record {
    int64_t          at_ms;      /* as scheduled */
    int64_t          start_us;   /* applied; -1 when skipped */
    int64_t          end_us;     /* ended (pause, delay, partition, restart); -1 = instant or open */
    lb_event_action  action;
    char             target[64]; /* "clients=0,1", "server=2", "clients=all" */
    char             detail[96]; /* "duration_ms=500", "latency_ms=20 jitter_ms=5", ... */
    bool             applied;
    int              node;       /* kill-server, failover with kill: the node it killed, which
                                    its restart brings back; -1 otherwise */
} lb_fault_record;

typedef struct lb_run_result {
    bool              complete;     /* false when interrupted */
    int64_t           elapsed_us;   /* start barrier → the last client's end */
    int64_t           nkeys;
    size_t            nclients;
    lb_client_result *clients;
    size_t            nmeters;
    lb_meter         *meters;       /* one per driver thread */
    size_t            nfaults;
    lb_fault_record  *faults;
    int64_t           overlaps;     /* the oracle's count */
    int64_t           counter_actual;  /* the counters' final values, summed (counter, incr) */
    int64_t           faults_applied;
    lb_driver         driver;       /* the driver that ran it: threads or loop, never auto */
    bool              open_loop;    /* some group ran on an arrival schedule */
    struct {                        /* driver sim: the simulation's own figures */
        int64_t       virtual_us, wall_us;
        uint64_t      events;
    } sim;
} lb_run_result;

/* Where a run goes. */
typedef struct lb_run_target {
    const char *const *lock_urls;   /* one per lock server */
    int                nservers;
    const char        *resource_url;  /* the protected counter's store */
    const char        *prefix;        /* every key starts with it: lockbench:<run-id>:<variant>:<repeat>: */
    struct lb_group  **groups;        /* managed lock servers with their replicas (server
                                         events), NULL with --redis */
    struct lb_sentinels *sentinels;   /* watching the groups (redis.sentinels), else NULL:
                                         server faults first ask them for the primary */
    struct lb_proxy   *proxy;         /* the fault proxy, NULL when no client needs it */
    struct lb_health  *health;        /* watches the servers while the clients run (NULL: no
                                         watch); a server it finds dead fails the run */
    bool               progress;      /* show a progress line (a terminal, not --quiet) */
    const char        *label;         /* what the progress line calls the run: "variant" */
} lb_run_target;

/* The file descriptors a run of the variant on nservers lock servers opens at most. */
int64_t lb_runner_fds_needed(const lb_scenario *variant, int nservers);

/* Whether the variant needs the fault proxy (network latency, or delay/partition/reset events). */
bool lb_runner_needs_proxy(const lb_scenario *variant);

/* Runs the variant. 0, or -1 with err filled (an environment failure: exit 3, such as a
 * server that stopped answering) and nothing left in out to free. */
int  lb_runner_run(const lb_scenario *variant, const lb_run_target *target, lb_run_result *out,
                   char *err, size_t errlen);
void lb_run_result_free(lb_run_result *r);

/* Asks a run in progress to stop (Ctrl-C): clients finish their critical section and stop. It
 * stays asked (lb_runner_stopped) so the caller starts no further run. Async-signal-safe. */
void lb_runner_stop(void);
bool lb_runner_stopped(void);

#endif
