/* fields.c -- the table of a variant summary's figures (fields.h) and the few operations on a
 * row: read or store the figure in an lb_summary, and combine repeats by the row's rule.
 *
 * The rules, and why:
 *
 * Repeats (SPEC section 5). Sums: the correctness counts the SPEC names (overlaps, lost updates,
 * errors, timeouts, crashed clients), and with them the other counts of things that happened
 * (the counter's figures, faults applied), so that acked - actual still reads as lost updates
 * over the whole set; lost_updates is the sum of each repeat's own, not recomputed from sums.
 * Medians: the performance figures and the sizes of one run (elapsed, acquisitions, fairness,
 * commands), robust against one slow repeat. A latency figure's median is over the repeats that
 * have samples (a repeat with none reports 0, which is no latency); its count's is over all.
 *
 * Expect (SPEC section 5: "dotted summary paths (section 6)"): every figure SPEC section 6
 * lists. faults_applied is written to the summary but is not one of them.
 *
 * Gate (SPEC section 8). Correctness: overlaps, lost updates and errors, a hard gate
 * (store_overlaps is not: it counts only with workload.inside_check on). Performance,
 * with default thresholds chosen from how noisy each figure is between repeats on one machine:
 *   throughput_per_s                 10 %  (bigger is better)
 *   acquire_ms.p50                   15 %
 *   acquire_ms.p99                   25 %  (tails move most under scheduling noise)
 *   redis.commands_per_acquisition    5 %  (nearly deterministic: a rise means more polling)
 * These four are also the headline metrics whose per-repeat values go under "repeats": the gate
 * tests a change against those lists. */
#include "fields.h"
#include "metrics.h"
#include "stats.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LB__AT(m) offsetof(lb_summary, m)

/* A figure of one run: integer (I) or not (D), its repeat rule, whether expect may name it. */
#define LB__I(p, u, m, rule) {.path = p, .unit = u, .offset = LB__AT(m), .is_int = true,          \
                              .expect = true, .repeat = rule}
#define LB__D(p, u, m, rule) {.path = p, .unit = u, .offset = LB__AT(m), .expect = true,          \
                              .repeat = rule}
/* A latency block's figure: none when the block has no samples. */
#define LB__LAT(p, m, k)     {.path = p "." #k, .unit = "ms", .offset = LB__AT(m.k),              \
                              .sampled = true, .count_offset = LB__AT(m.count), .expect = true,   \
                              .repeat = LB_REPEAT_MEDIAN}
/* A gated performance figure: listed under "repeats", compared with its threshold. */
#define LB__PERF(p, u, m, check, pct)                                                          \
    {.path = p, .unit = u, .offset = LB__AT(m), .expect = true, .repeat = LB_REPEAT_MEDIAN,    \
     .listed = true, .gate = check, .threshold_pct = pct}
#define LB__PERF_LAT(p, m, k, pct)                                                             \
    {.path = p "." #k, .unit = "ms", .offset = LB__AT(m.k), .sampled = true,                   \
     .count_offset = LB__AT(m.count), .expect = true, .repeat = LB_REPEAT_MEDIAN,              \
     .listed = true, .gate = LB_CHECK_LOWER, .threshold_pct = pct}
/* A correctness count: summed over repeats, and 0 → above 0 fails the gate. */
#define LB__ZERO(p, u, m)    {.path = p, .unit = u, .offset = LB__AT(m), .is_int = true,          \
                              .expect = true, .repeat = LB_REPEAT_SUM, .gate = LB_CHECK_ZERO}

/* In summary.json's order (SPEC section 6), which results.c writes by walking this table. Not
 * const: test_fields changes a rule for a moment to show that metrics and the gate follow it. */
static lb_field lb__table[] = {
    LB__I("clients", "clients", clients, LB_REPEAT_SAME),
    LB__D("elapsed_ms", "ms", elapsed_ms, LB_REPEAT_MEDIAN),
    LB__I("acquisitions", "acquisitions", acquisitions, LB_REPEAT_MEDIAN),
    LB__I("timeouts", "timeouts", timeouts, LB_REPEAT_SUM),
    LB__ZERO("errors", "errors", errors),
    LB__I("crashed_clients", "clients", crashed_clients, LB_REPEAT_SUM),
    LB__PERF("throughput_per_s", "acquisitions/s", throughput_per_s, LB_CHECK_HIGHER, 10.0),

    LB__I("acquire_ms.count", "acquisitions", acquire_ms.count, LB_REPEAT_MEDIAN),
    LB__LAT("acquire_ms", acquire_ms, mean),
    LB__PERF_LAT("acquire_ms", acquire_ms, p50, 15.0),
    LB__LAT("acquire_ms", acquire_ms, p90),
    LB__PERF_LAT("acquire_ms", acquire_ms, p99, 25.0),
    LB__LAT("acquire_ms", acquire_ms, p999),
    LB__LAT("acquire_ms", acquire_ms, max),

    LB__I("service_ms.count", "acquisitions", service_ms.count, LB_REPEAT_MEDIAN),
    LB__LAT("service_ms", service_ms, mean),
    LB__LAT("service_ms", service_ms, p50),
    LB__LAT("service_ms", service_ms, p90),
    LB__LAT("service_ms", service_ms, p99),
    LB__LAT("service_ms", service_ms, p999),
    LB__LAT("service_ms", service_ms, max),

    LB__I("schedule_lag_ms.count", "acquire calls", schedule_lag_ms.count, LB_REPEAT_MEDIAN),
    LB__LAT("schedule_lag_ms", schedule_lag_ms, mean),
    LB__LAT("schedule_lag_ms", schedule_lag_ms, p99),
    LB__LAT("schedule_lag_ms", schedule_lag_ms, max),
    LB__I("dropped", "arrivals", dropped, LB_REPEAT_SUM),

    LB__I("timeout_ms.count", "timeouts", timeout_ms.count, LB_REPEAT_MEDIAN),
    LB__LAT("timeout_ms", timeout_ms, mean),
    LB__LAT("timeout_ms", timeout_ms, p50),
    LB__LAT("timeout_ms", timeout_ms, max),

    LB__I("handoff_ms.count", "handoffs", handoff_ms.count, LB_REPEAT_MEDIAN),
    LB__LAT("handoff_ms", handoff_ms, mean),
    LB__LAT("handoff_ms", handoff_ms, p50),
    LB__LAT("handoff_ms", handoff_ms, p99),
    LB__LAT("handoff_ms", handoff_ms, max),

    LB__D("fairness.jain", "index", fairness.jain, LB_REPEAT_MEDIAN),
    LB__D("fairness.jain_wait", "index", fairness.jain_wait, LB_REPEAT_MEDIAN),
    LB__I("fairness.min_acquisitions", "acquisitions", fairness.min_acquisitions,
          LB_REPEAT_MEDIAN),
    LB__I("fairness.max_acquisitions", "acquisitions", fairness.max_acquisitions,
          LB_REPEAT_MEDIAN),
    LB__D("fairness.max_wait_ms", "ms", fairness.max_wait_ms, LB_REPEAT_MEDIAN),

    LB__I("counter.acked", "writes", counter.acked, LB_REPEAT_SUM),
    LB__I("counter.attempted", "critical sections", counter.attempted, LB_REPEAT_SUM),
    LB__I("counter.actual", "writes", counter.actual, LB_REPEAT_SUM),
    LB__ZERO("counter.lost_updates", "writes", counter.lost_updates),
    /* critical sections the store refused for an older token, at the read or the write (the
     * name is the SPEC's, from when only the write was fenced) */
    LB__I("counter.stale_writes_rejected", "critical sections", counter.stale_writes_rejected,
          LB_REPEAT_SUM),

    LB__ZERO("overlaps", "entries", overlaps),
    /* the clock-free check kept on the store (workload.inside_check; 0 when off): summed like
     * overlaps, but not gated -- off in most runs, and absent from older baselines */
    LB__I("store_overlaps", "entries", store_overlaps, LB_REPEAT_SUM),

    LB__I("redis.commands", "commands", redis.commands, LB_REPEAT_MEDIAN),
    LB__PERF("redis.commands_per_acquisition", "commands", redis.commands_per_acquisition,
             LB_CHECK_LOWER, 5.0),

    {.path = "faults_applied", .unit = "faults", .offset = LB__AT(faults_applied),
     .is_int = true, .repeat = LB_REPEAT_SUM},
};
#define LB__N (sizeof lb__table / sizeof lb__table[0])

_Static_assert(LB__N <= LB_FIELDS_MAX, "raise LB_FIELDS_MAX");

const lb_field *lb_fields(size_t *n)
{
    *n = LB__N;
    return lb__table;
}

const lb_field *lb_field_find(const char *path)
{
    for (size_t i = 0; i < LB__N; i++)
        if (strcmp(lb__table[i].path, path) == 0)
            return &lb__table[i];
    return NULL;
}

size_t lb_field_index(const lb_field *f)
{
    return (size_t)(f - lb__table);
}

double lb_field_get(const lb_field *f, const lb_summary *s)
{
    const char *p = (const char *)s + f->offset;
    return f->is_int ? (double)*(const int64_t *)p : *(const double *)p;
}

bool lb_field_has_value(const lb_field *f, const lb_summary *s)
{
    return !f->sampled || *(const int64_t *)((const char *)s + f->count_offset) > 0;
}

void lb_field_set(const lb_field *f, lb_summary *s, double v)
{
    char *p = (char *)s + f->offset;
    if (f->is_int)
        *(int64_t *)p = isnan(v) ? 0 : (int64_t)llround(v);
    else
        *(double *)p = v;
}

double lb_field_combine(const lb_field *f, const double *x, size_t n)
{
    if (n == 0)
        return NAN;
    switch (f->repeat) {
    case LB_REPEAT_SUM: {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        return sum;
    }
    case LB_REPEAT_MEDIAN:
        return lb_median(x, n);
    case LB_REPEAT_SAME:
        break;
    }
    return x[0];
}
