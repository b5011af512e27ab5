/* results.h -- the write stage: summary.json, the CSVs, latency.hgrm, the comparison, and the
 * terminal tables (SPEC section 6; the columns are documented in README.md). Every file is
 * written through atomic.h (a temporary name in its folder, renamed), so a killed run never
 * leaves a half file that looks complete. */
#ifndef LB_RESULTS_H
#define LB_RESULTS_H

#include <stdbool.h>
#include <stdio.h>

#include "metrics.h"
#include "runner.h"
#include "scenario.h"

typedef struct lb_calibration {
    double ping_rtt_us;     /* median PING round trip to the first lock server */
    double raw_ops_per_s;   /* a short burst of pipelined PINGs: the machine's raw speed */
} lb_calibration;

/* mkdir -p: 0 when dir exists as a folder afterwards, -1 with errno set. */
int lb_mkdirs(const char *dir);

/* One run's files in dir (created if needed): summary.json (of s), acquisitions.csv,
 * latency.hgrm (the clients' histograms merged), timeline.csv, events.csv. */
int lb_results_write_run(const char *dir, const lb_summary *s, const lb_run_result *run,
                         char *err, size_t errlen);

/* A variant's summary.json alone (the combined one, with --repeat). */
int lb_results_write_summary(const char *dir, const lb_summary *s, char *err, size_t errlen);

/* The scenario folder: scenario.json (resolved), summary.json (top level: scenario, complete,
 * passed, started_at, lockbench_version, calibration, variants), and with more than one variant
 * comparison.md, comparison.json and comparison.csv. */
int lb_results_write_top(const char *dir, const lb_scenario *s, const lb_summary *variants,
                         size_t n, const lb_calibration *cal, const char *started_at,
                         bool complete, char *err, size_t errlen);

/* The scenario folder's summary.json at the start of a run: complete and passed false, no
 * variants. Written before anything else, so a run killed at any point leaves a summary that
 * says it did not finish rather than an older run's, or none that looks finished. */
int lb_results_write_begun(const char *dir, const lb_scenario *s, const char *started_at,
                           char *err, size_t errlen);

/* Empties a scenario folder of what runs write there (--force), and of nothing else: at its top
 * summary.json, scenario.json, comparison.*, index.html and the comparison charts; in each
 * subfolder, and its repeat-<k> folders, a variant's summary.json, CSVs, latency.hgrm and
 * charts; the temporaries of all these; then every such subfolder that this left empty. Other
 * files and folders stay. 0, or -1 with err naming the file that could not be removed. */
int lb_results_clear(const char *dir, char *err, size_t errlen);

/* The terminal: one variant's headline figures, and the comparison table of several. */
void lb_results_print_variant(FILE *f, const lb_summary *s);
void lb_results_print_comparison(FILE *f, const lb_summary *variants, size_t n);
/* Failed expectations, one line each: "EXPECT FAILED variant: path = value, expected bound". */
void lb_results_print_failures(FILE *f, const lb_summary *s);

#endif
