/* run.h -- the `run` command: the pipeline a scenario passes through.
 *
 *   load and validate every file (scenario.c)       nothing starts before all are valid
 *   for each repeat, for each variant (interleaved):
 *     start servers, check that each answers (health.c), the proxy if needed (servers.c, proxy.c)
 *     run the clients (runner.c), the servers watched meanwhile (health.c)
 *     measure (metrics.c), check expectations, write the run's files (results.c)
 *     stop servers, or delete our keys from servers we did not start
 *   combine repeats, write the scenario's summary and comparison, plot (plot.c) */
#ifndef LB_RUN_H
#define LB_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

/* Exit codes of lockbench (SPEC section 5). */
enum { LB_EXIT_OK = 0, LB_EXIT_FAILED = 1, LB_EXIT_USAGE = 2, LB_EXIT_ENV = 3,
       LB_EXIT_INTERRUPTED = 130 /* Ctrl-C: what ran is written, "complete": false; SIGTERM
                                    and SIGHUP stop a run alike and exit 128 + their number */ };

typedef struct lb_run_options {
    const char  *out;            /* --out DIR, or NULL for results/<name>/<timestamp>/ */
    bool         force;          /* --force: a non-empty --out DIR is cleared of earlier results */
    const char **redis;          /* --redis URL... (NULL: managed servers) */
    size_t       nredis;
    const char  *resource;       /* --resource URL */
    int          repeat;         /* --repeat N, >= 1 */
    lb_override *sets;           /* --set PATH=VALUE... (and --seed as seed=N) */
    size_t       nsets;
    bool         no_plot;
    bool         quiet;
    bool         silent;         /* not even the failed expectations on stderr: a run that
                                    another command (explore) makes and reports itself */
    const char  *plot_format;    /* "png" or "svg" */
    const lb_sim *calibration;   /* --calibration FILE, read: the simulator's model */
} lb_run_options;

/* Runs every scenario file; returns the exit code. */
int lb_run_scenarios(char *const *files, size_t nfiles, const lb_run_options *o);

/* Loads and validates, printing each file's verdict; returns the exit code. */
int lb_validate_scenarios(char *const *files, size_t nfiles, const lb_run_options *o);

#endif
