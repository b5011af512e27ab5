/* explore.h -- the explore command (explore.c) and its shrinker (shrink.c).
 *
 * explore searches a scenario's seeds in the simulator for one that fails the scenario's
 * expectations, replays the first failure into a results folder, writes it with every draw
 * resolved (failure-<seed>.json) and shrinks it (minimized.json). The shrinker works on that
 * resolved file, one variant: it drops events and clients, shortens durations and cuts
 * iterations and the run's length, keeping a step only when the same expectation still misses
 * on the same side, until no single event or client can go (1-minimal). */
#ifndef LB_EXPLORE_H
#define LB_EXPLORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "metrics.h"
#include "scenario.h"

/* lockbench explore ARGS (argv[0] is "explore"); returns the exit code. */
int lb_explore_main(int argc, char **argv);

/* Runs a resolved variant (its driver sim) in the simulator and fills sum, expectations
 * checked; nothing is written. 0, or -1 with err (out of memory, a model that cannot start). */
int lb_explore_simulate(const lb_scenario *variant, lb_summary *sum, char *err, size_t errlen);

/* What a failure is: an expectation's path and the side of its bound the value fell on. */
typedef struct lb_shrink_target {
    char   path[64];
    double min, max;      /* the bound (equal: min == max) */
    bool   above;         /* the value was above max; else below min */
} lb_shrink_target;

typedef struct lb_shrink_result {
    json_t  *doc;         /* the smallest failing scenario found; its expect is the target's */
    json_t  *steps;       /* one line per step kept, in order */
    int64_t  events_before, events_after;
    int64_t  clients_before, clients_after;
    int64_t  iterations_before, iterations_after;   /* workload.iterations; 0 = no limit */
    int      trials;      /* simulations run */
    bool     one_minimal; /* false when the budget ran out first */
} lb_shrink_result;

/* Shrinks doc, a one-variant scenario (lb_scenario_dump of a resolved variant) that fails t.
 * 0 with out filled (the caller decrefs out->doc and out->steps), or -1 with err. */
int lb_shrink(json_t *doc, const lb_shrink_target *t, lb_shrink_result *out, char *err,
              size_t errlen);

#endif
