/* gate.h -- `lockbench gate`: compare a run against a baseline and fail CI on a regression.
 *
 * Correctness is a hard gate (a new overlap, lost update or error, a newly failed expectation, a
 * missing variant); speed is a soft one: a metric regresses only when its change is worse than
 * its threshold and, with at least LB_GATE_MIN_REPEATS repeats on both sides, a two-sided
 * Mann-Whitney U test says the change is not noise: its p, adjusted by Holm-Bonferroni over all
 * the metrics tested in the run, is < LB_GATE_ALPHA. With --paired (both sides folders of
 * rounds, a round of one name on each side run one after the other), the test is Wilcoxon's
 * signed-rank on the differences within those pairs instead. Which figures are which, their
 * directions and default thresholds are fields.h's table. */
#ifndef LB_GATE_H
#define LB_GATE_H

#include <stdbool.h>
#include <stddef.h>

#define LB_GATE_ALPHA        0.05   /* family-wise significance level over a run's tests */
#define LB_GATE_MIN_REPEATS  5      /* fewer on either side: the threshold alone decides (weak) */

/* Exit codes of lb_gate_main, as SPEC section 5 fixes them. */
enum {
    LB_GATE_PASS       = 0,
    LB_GATE_REGRESSION = 1,
    LB_GATE_BAD_INPUT  = 2
};

/* `lockbench gate BASELINE CURRENT [--threshold METRIC=PCT]... [--normalize] [--paired]
 *  [--markdown FILE]
 *  [--json FILE] [--benchmark-json FILE] [--benchmark-json-bigger FILE]`; argv[0] is "gate".
 * BASELINE and CURRENT are result directories holding summary.json, or summary.json files.
 * Prints the table on stdout and errors on stderr; returns LB_GATE_PASS, LB_GATE_REGRESSION or
 * LB_GATE_BAD_INPUT (usage, unreadable or malformed input, mismatched scenarios, an incomplete
 * run, an output file that cannot be written). */
int lb_gate_main(int argc, char **argv);

#endif
