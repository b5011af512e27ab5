/* metrics.h -- the measure stage: a run's raw record (runner.h) turned into the figures of
 * summary.json (SPEC section 6), and the figures of several repeats combined.
 *
 * Definitions: elapsed from the start barrier to the last client's end; throughput =
 * acquisitions / elapsed; acquire_ms over successful acquires (call → success), timeout_ms over
 * timed-out ones; handoff_ms from the end of one holder's tenure on a key (release returned, or
 * the crash) to the acquire of the next holder of that key in acquire order, clamped at 0 (a
 * server-side hand-off can grant it before the release call returns); jain over per-client acquisitions,
 * jain_wait over per-client mean waits of clients that acquired at least once; lost_updates =
 * max(0, acked - actual). Latencies are in milliseconds. */
#ifndef LB_METRICS_H
#define LB_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runner.h"
#include "scenario.h"

typedef struct lb_latency {
    int64_t count;
    double  mean, p50, p90, p99, p999, max;   /* ms; 0 when count is 0 */
} lb_latency;

typedef struct lb_client_summary {
    int         client;
    const char *group;
    int64_t     acquisitions, timeouts, errors;
    double      mean_wait_ms, max_wait_ms;
} lb_client_summary;

/* One 100 ms bin of timeline.csv. */
typedef struct lb_timeline_bin {
    int64_t t_ms;           /* bin start */
    int64_t acquisitions, timeouts, errors;
    int64_t holders;        /* most clients inside a critical section at once during the bin */
    int64_t active_faults;  /* faults in effect at any time during the bin */
} lb_timeline_bin;

typedef struct lb_expect_failure {
    char   path[64];
    double value;
    char   bound[64];       /* "5" or "[2000, 2500]" */
} lb_expect_failure;

/* Per-repeat values of every figure of fields.h's table (with --repeat N): values[k * n + i] is
 * figure k in repeat i, NAN where that repeat has none (a latency without samples). Read them
 * with lb_metrics_repeats; results.c writes the lists of the rows marked `listed`. */
typedef struct lb_repeats {
    size_t  n;
    double *values;
} lb_repeats;

typedef struct lb_summary {
    const char *name, *algorithm, *wait, *backoff;   /* the variant's settings, borrowed */
    bool        complete;        /* false: interrupted, or fewer repeats than asked for ran */
    const char *driver;          /* "threads", "loop" or "sim": as the runner recorded */
    bool        simulated;       /* driver sim: the model and the simulation's figures */
    lb_sim      sim_model;
    double      sim_virtual_ms, sim_wall_ms;
    int64_t     sim_events;
    int64_t     clients;
    double      elapsed_ms;
    int64_t     acquisitions, timeouts, errors, crashed_clients;
    double      throughput_per_s;
    lb_latency  acquire_ms;      /* count mean p50 p90 p99 p999 max (open loop: from the
                                    intended start) */
    lb_latency  service_ms;      /* the same from the call (closed loop: acquire_ms) */
    lb_latency  schedule_lag_ms; /* open loop: call - intended start; count mean p99 max used */
    int64_t     dropped;         /* open loop: arrivals beyond max_outstanding; when above 0
                                    the latency percentiles are lower bounds */
    lb_latency  timeout_ms;      /* count mean p50 max used */
    lb_latency  handoff_ms;      /* count mean p50 p99 max used */
    struct {
        double  jain, jain_wait;
        int64_t min_acquisitions, max_acquisitions;
        double  max_wait_ms;
        size_t  nclients;
        lb_client_summary *per_client;
    } fairness;
    struct {
        int64_t acked, attempted, actual, lost_updates, stale_writes_rejected;
    } counter;
    int64_t     overlaps;
    int64_t     store_overlaps;  /* workload.inside_check: entries the store saw overlap */
    struct {
        int64_t commands;
        double  commands_per_acquisition;
    } redis;
    int64_t     faults_applied;
    size_t      nbins;
    lb_timeline_bin *timeline;
    lb_repeats  repeats;         /* n = 0 without --repeat */
    struct {
        bool   passed;
        size_t nfailures;
        lb_expect_failure *failures;
    } expect;
} lb_summary;

/* Computes a variant's summary from its run. 0, or -1 when out of memory. */
int  lb_metrics_compute(const lb_scenario *variant, const lb_run_result *run, lb_summary *out);
/* Combines the summaries of N repeats of one variant, each figure by its rule in fields.h's
 * table (medians for performance figures, sums for overlaps, lost updates, errors, timeouts,
 * crashed clients and the other counts), and with n > 1 keeps the per-repeat values. */
int  lb_metrics_combine(const lb_summary *repeats, size_t n, lb_summary *out);
/* Looks up a dotted summary path ("acquire_ms.p99", "counter.actual"); false when unknown. */
bool lb_metrics_value(const lb_summary *s, const char *path, double *value);
/* The per-repeat values (s->repeats.n of them) of a figure; NULL without repeats or for a path
 * not in the table. */
const double *lb_metrics_repeats(const lb_summary *s, const char *path);
/* Checks the variant's expectations; fills s->expect. An incomplete summary never passes. */
void lb_metrics_check(const lb_scenario *variant, lb_summary *s);
/* Marks s as covering less than was asked for: not complete, expectations not passed. */
void lb_metrics_incomplete(lb_summary *s);
void lb_summary_free(lb_summary *s);

/* The clients' acquire histograms merged into a fresh one (latency.hgrm); the caller frees it
 * with lb_hist_free. NULL when out of memory. */
lb_hist *lb_metrics_merge_acquire(const lb_run_result *run);

#endif
