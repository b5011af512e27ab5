/* metrics.c -- the measure stage: a run's raw record (runner.h) → the figures of summary.json.
 *
 * Everything here is computed after the client threads have joined, from their per-client
 * histograms and acquisition logs (one per driver thread) and per-client counters; nothing runs on the hot path. The definitions are
 * SPEC section 6 (repeated in metrics.h); the choices the SPEC leaves open are documented next
 * to the code that makes them: the handoff rule (lb__handoff) and the timeline's bins
 * (lb__timeline). Which figures there are, and how repeats combine each, is fields.c's table. */
#include "metrics.h"
#include "fields.h"
#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LB__BIN_US INT64_C(100000)   /* timeline.csv: one row per 100 ms */

static double lb__ms(int64_t us)
{
    return (double)us / 1000.0;
}

/* ---- latency from the merged histograms ----------------------------------------------------- */

/* Merges one histogram per meter (the one pick names) into a fresh one; NULL when out of memory
 * or no meter has one. A saturated counter only makes far percentiles approximate, so it is not
 * an error. */
typedef enum { LB__ACQUIRE, LB__TIMEOUT, LB__SERVICE, LB__LAG } lb__which;

static const lb_hist *lb__pick(const lb_meter *m, lb__which which)
{
    switch (which) {
    case LB__ACQUIRE: return m->acquire_hist;
    case LB__TIMEOUT: return m->timeout_hist;
    case LB__SERVICE: return m->service_hist;
    case LB__LAG:     return m->lag_hist;
    }
    return NULL;
}

static lb_hist *lb__merge(const lb_run_result *run, lb__which which)
{
    lb_hist *h = lb_hist_new();
    for (size_t i = 0; h && i < run->nmeters; i++) {
        const lb_hist *src = lb__pick(&run->meters[i], which);
        if (src)
            (void)lb_hist_merge(h, src);
    }
    return h;
}

lb_hist *lb_metrics_merge_acquire(const lb_run_result *run)
{
    return lb__merge(run, LB__ACQUIRE);
}

static void lb__latency_of(const lb_hist *h, lb_latency *l)
{
    *l = (lb_latency){.count = lb_hist_count(h)};
    if (l->count == 0)
        return;
    l->mean = lb_hist_mean(h) / 1000.0;
    l->p50 = lb__ms(lb_hist_value_at_percentile(h, 50.0));
    l->p90 = lb__ms(lb_hist_value_at_percentile(h, 90.0));
    l->p99 = lb__ms(lb_hist_value_at_percentile(h, 99.0));
    l->p999 = lb__ms(lb_hist_value_at_percentile(h, 99.9));
    l->max = lb__ms(lb_hist_max(h));
}

/* In a closed loop an acquire is called when it is meant to start: service_ms is acquire_ms and
 * there is no schedule to lag behind. In an open loop acquire_ms runs from the intended start,
 * service_ms from the call, and schedule_lag_ms is the call's lateness. */
static int lb__latencies(const lb_run_result *run, lb_summary *s)
{
    lb__which svc = run->open_loop ? LB__SERVICE : LB__ACQUIRE;
    lb_hist *acq = lb__merge(run, LB__ACQUIRE), *to = lb__merge(run, LB__TIMEOUT),
            *sv = lb__merge(run, svc), *lag = lb__merge(run, LB__LAG);
    int rc = acq && to && sv && lag ? 0 : -1;
    if (rc == 0) {
        lb__latency_of(acq, &s->acquire_ms);
        lb__latency_of(to, &s->timeout_ms);
        lb__latency_of(sv, &s->service_ms);
        lb__latency_of(lag, &s->schedule_lag_ms);
    }
    lb_hist_free(acq);
    lb_hist_free(to);
    lb_hist_free(sv);
    lb_hist_free(lag);
    return rc;
}

/* ---- totals --------------------------------------------------------------------------------- */

static void lb__totals(const lb_run_result *run, lb_summary *s)
{
    for (size_t i = 0; i < run->nclients; i++) {
        const lb_client_result *c = &run->clients[i];
        s->acquisitions += c->acquisitions;
        s->timeouts += c->timeouts;
        s->errors += c->errors;
        s->dropped += c->dropped;
        s->crashed_clients += c->crashed;
        s->counter.attempted += c->cs_attempted;
        s->counter.acked += c->cs_acked;
        s->counter.stale_writes_rejected += c->stale_rejected;
        s->store_overlaps += c->store_overlaps;
        s->redis.commands += (int64_t)c->commands;
    }
    s->counter.actual = run->counter_actual;
    s->counter.lost_updates = s->counter.acked > s->counter.actual
                                  ? s->counter.acked - s->counter.actual : 0;
    s->overlaps = run->overlaps;
    s->faults_applied = run->faults_applied;
    s->elapsed_ms = lb__ms(run->elapsed_us);
    s->throughput_per_s = run->elapsed_us > 0
                              ? (double)s->acquisitions / ((double)run->elapsed_us / 1e6) : 0;
    s->redis.commands_per_acquisition = s->acquisitions > 0
                              ? (double)s->redis.commands / (double)s->acquisitions : 0;
}

/* ---- fairness ------------------------------------------------------------------------------- */

static const char *lb__group_name(const lb_scenario *v, size_t group)
{
    return group < v->ngroups && v->groups[group].name ? v->groups[group].name : "";
}

static lb_client_summary lb__client_summary(const lb_scenario *v, const lb_client_result *c)
{
    return (lb_client_summary){
        .client = c->client, .group = lb__group_name(v, c->group),
        .acquisitions = c->acquisitions, .timeouts = c->timeouts, .errors = c->errors,
        .mean_wait_ms = c->acquisitions > 0 ? lb__ms(c->wait_sum_us) / (double)c->acquisitions
                                            : 0,
        .max_wait_ms = lb__ms(c->wait_max_us)};
}

/* max_wait_ms, overall and per client, is over every acquire call that returned ok or timed
 * out; mean_wait_ms and jain_wait are over successful acquires only. */
static int lb__fairness(const lb_scenario *v, const lb_run_result *run, lb_summary *s)
{
    size_t n = run->nclients, nwait = 0;
    double *acq = malloc((n + 1) * sizeof *acq), *wait = malloc((n + 1) * sizeof *wait);
    lb_client_summary *pc = calloc(n + 1, sizeof *pc);
    if (!acq || !wait || !pc) {
        free(acq);
        free(wait);
        free(pc);
        return -1;
    }
    s->fairness.min_acquisitions = n ? INT64_MAX : 0;
    for (size_t i = 0; i < n; i++) {
        pc[i] = lb__client_summary(v, &run->clients[i]);
        acq[i] = (double)pc[i].acquisitions;
        if (pc[i].acquisitions > 0)
            wait[nwait++] = pc[i].mean_wait_ms;
        if (pc[i].acquisitions < s->fairness.min_acquisitions)
            s->fairness.min_acquisitions = pc[i].acquisitions;
        if (pc[i].acquisitions > s->fairness.max_acquisitions)
            s->fairness.max_acquisitions = pc[i].acquisitions;
        if (pc[i].max_wait_ms > s->fairness.max_wait_ms)
            s->fairness.max_wait_ms = pc[i].max_wait_ms;
    }
    s->fairness.jain = lb_jain_index(acq, n);
    s->fairness.jain_wait = lb_jain_index(wait, nwait);
    s->fairness.nclients = n;
    s->fairness.per_client = pc;
    free(acq);
    free(wait);
    return 0;
}

/* ---- handoff -------------------------------------------------------------------------------- */

/* A tenure ended when the holder released (or found the lock already lost) or crashed while
 * holding; a kept hold (release: false) is handed over only by its TTL, which the harness does
 * not observe, so it gives no sample. */
static bool lb__tenure_ended(const lb_acquisition *a)
{
    return a->released_us >= 0 &&
           (a->end == LB_END_RELEASED || a->end == LB_END_NOTOWNER || a->end == LB_END_CRASHED);
}

/* The previous successful hold on a key, while walking the holds in order. */
typedef struct {
    bool seen;
    bool ended;        /* its tenure ended (lb__tenure_ended) */
    int64_t released;  /* then, when */
} lb__last_hold;

/* Handoff rule: per key, the successful holds in order of their acquire returning (end_us).
 * For every hold whose tenure ended (lb__tenure_ended) at R = released_us, its successor is the
 * next hold in that order, by any client, the same one included; the sample is
 * max(0, successor.end_us - R). A hold that is last on its key gives no sample.
 *
 * The successor is not "the first acquire at or after R": with notify or fifo waiting the
 * release script hands the lock over (or wakes the waiter) before dlock_release returns to its
 * caller, so the next holder's acquire often returns before R. Looking forward from R would skip
 * that real successor and pair R with some later acquire; taking the next hold instead gives the
 * true successor, and the clamp at 0 records such a server-side hand-off as immediate. Holds
 * that overlap (an unsafe lock) are not special: each hold's successor is still the next one in
 * the order. The holds are walked merged from the meters' logs by end, and the samples go into a
 * histogram, so neither grows with the run; percentiles are the histogram's (exact below
 * 2 048 µs, 3 significant digits above), as for acquire_ms. */
static int lb__handoff(const lb_run_result *run, lb_summary *s)
{
    size_t nkeys = run->nkeys > 0 ? (size_t)run->nkeys : 1;
    lb__last_hold *last = calloc(nkeys, sizeof *last);
    lb_hist *h = lb_hist_new();
    lb_acq_merge *m = lb_acq_merge_new(run->meters, run->nmeters, LB_ACQ_BY_END);
    int rc = last && h && m ? 0 : -1;
    for (const lb_acquisition *a; rc == 0 && (a = lb_acq_merge_next(m));) {
        if (a->result != LB_RES_OK || a->key < 0 || (size_t)a->key >= nkeys)
            continue;
        lb__last_hold *k = &last[a->key];
        if (k->seen && k->ended) {
            int64_t d = a->end_us - k->released;
            lb_hist_record(h, d > 0 ? d : 0);
        }
        *k = (lb__last_hold){.seen = true, .ended = lb__tenure_ended(a),
                             .released = a->released_us};
    }
    if (rc == 0)
        lb__latency_of(h, &s->handoff_ms);
    lb_acq_merge_free(m);
    lb_hist_free(h);
    free(last);
    return rc;
}

/* ---- timeline ------------------------------------------------------------------------------- */

/* +1 when a hold starts, -1 when it ends; ends come before starts at the same instant, so a
 * hold ending at t and one starting at t are never counted as inside together. */
typedef struct {
    int64_t t;
    int     delta;
} lb__edge;

static size_t lb__bin(const lb_summary *s, int64_t t_us)
{
    if (t_us <= 0)
        return 0;
    size_t b = (size_t)(t_us / LB__BIN_US);
    return b < s->nbins ? b : s->nbins - 1;
}

static void lb__timeline_counts(const lb_run_result *run, lb_summary *s)
{
    for (size_t i = 0; i < run->nmeters; i++) {
        lb_acq_cursor cur;
        lb_acq_cursor_init(&cur, &run->meters[i].log);
        for (const lb_acquisition *a; (a = lb_acq_cursor_next(&cur));) {
            lb_timeline_bin *b = &s->timeline[lb__bin(s, a->end_us)];
            b->acquisitions += a->result == LB_RES_OK;
            b->timeouts += a->result == LB_RES_TIMEOUT;
            b->errors += a->result == LB_RES_ERROR;
        }
    }
}

/* The time inside the critical section as a half-open interval [end_us, left_us): from acquire
 * returning to leaving the critical section (before the release call, or the crash; a kept
 * hold's left_us is set too), at least 1 µs long so a zero-length hold still counts. The release
 * call is not inside: with notify or fifo waiting the next holder is often inside before the
 * previous one's release returns, and [end_us, released_us) would count both at once. An ok row
 * without left_us falls back to released_us, and one without either (a hold the runner left
 * open, e.g. an interrupted run) lasts to the end of the run.
 *
 * The holds come merged by call; a hold's edges are at or after its call, so an edge pending in
 * a heap can be counted once the next hold to come was called at or after it -- the heap holds
 * at most the holds in progress at that moment, two edges each, and the run's edges are never
 * all in memory. */
typedef struct {
    lb_acq_merge *m;
    lb_acquisition ahead;   /* the next hold by call */
    bool has_ahead;
    int64_t *heap;          /* pending edges as t * 2 + (start ? 1 : 0): ends first at a tie */
    size_t n, cap;
    int64_t elapsed_us;
} lb__edges;

static void lb__edges_read(lb__edges *e)
{
    const lb_acquisition *a;
    while ((a = lb_acq_merge_next(e->m)) && a->result != LB_RES_OK)
        ;
    e->has_ahead = a != NULL;
    if (a)
        e->ahead = *a;
}

static int lb__edges_push(lb__edges *e, int64_t key)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        int64_t *h = realloc(e->heap, cap * sizeof *h);
        if (!h)
            return -1;
        e->heap = h;
        e->cap = cap;
    }
    size_t i = e->n++;
    e->heap[i] = key;
    for (; i > 0 && e->heap[i] < e->heap[(i - 1) / 2]; i = (i - 1) / 2) {
        int64_t t = e->heap[i];
        e->heap[i] = e->heap[(i - 1) / 2];
        e->heap[(i - 1) / 2] = t;
    }
    return 0;
}

static int64_t lb__edges_pop(lb__edges *e)
{
    int64_t top = e->heap[0];
    e->heap[0] = e->heap[--e->n];
    for (size_t i = 0;;) {
        size_t k = 2 * i + 1, best = i;
        if (k < e->n && e->heap[k] < e->heap[best])
            best = k;
        if (k + 1 < e->n && e->heap[k + 1] < e->heap[best])
            best = k + 1;
        if (best == i)
            break;
        int64_t t = e->heap[i];
        e->heap[i] = e->heap[best];
        e->heap[best] = t;
        i = best;
    }
    return top;
}

/* The next edge in time order: false at the end (or out of memory: *oom). */
static bool lb__edges_next(lb__edges *e, lb__edge *out, bool *oom)
{
    /* Holds to come start no earlier than the next one's call, and end after it. */
    while (e->has_ahead && (e->n == 0 || e->heap[0] > e->ahead.call_us * 2 + 1)) {
        const lb_acquisition *a = &e->ahead;
        int64_t end = a->left_us >= 0 ? a->left_us
                    : a->released_us >= 0 ? a->released_us : e->elapsed_us;
        int64_t end_t = end > a->end_us ? end : a->end_us + 1;
        if (lb__edges_push(e, a->end_us * 2 + 1) < 0 || lb__edges_push(e, end_t * 2) < 0) {
            *oom = true;
            return false;
        }
        lb__edges_read(e);
    }
    if (e->n == 0)
        return false;
    int64_t key = lb__edges_pop(e);
    *out = (lb__edge){.t = key >> 1, .delta = (key & 1) ? +1 : -1};
    return true;
}

/* The most holds inside at once during each bin: the count carried into the bin (after the ends
 * at its first instant) and the count after every edge inside it. */
static int lb__timeline_holders(const lb_run_result *run, lb_summary *s)
{
    lb__edges e = {.m = lb_acq_merge_new(run->meters, run->nmeters, LB_ACQ_BY_CALL),
                   .elapsed_us = run->elapsed_us};
    if (!e.m)
        return -1;
    lb__edges_read(&e);
    bool oom = false;
    lb__edge edge;
    bool has = lb__edges_next(&e, &edge, &oom);
    int64_t cur = 0;
    for (size_t b = 0; b < s->nbins; b++) {
        int64_t start = (int64_t)b * LB__BIN_US;
        bool last = b + 1 == s->nbins;
        int64_t most = -1;
        while (has) {
            bool carried = edge.t < start || (edge.t == start && edge.delta < 0);
            if (!carried && most < 0)
                most = cur;  /* what the bin starts with */
            if (!carried && !last && edge.t >= start + LB__BIN_US)
                break;
            cur += edge.delta;
            if (!carried && cur > most)
                most = cur;
            has = lb__edges_next(&e, &edge, &oom);
        }
        s->timeline[b].holders = most < 0 ? cur : most;
    }
    lb_acq_merge_free(e.m);
    free(e.heap);
    return oom ? -1 : 0;
}

/* A fault is in effect over [start_us, end_us); one without an end (end_us -1: an instant such
 * as crash or reset) counts in the bin of its start only. */
static void lb__timeline_faults(const lb_run_result *run, lb_summary *s)
{
    for (size_t i = 0; i < run->nfaults; i++) {
        const lb_fault_record *f = &run->faults[i];
        if (!f->applied || f->start_us < 0)
            continue;
        int64_t last_us = f->end_us > f->start_us ? f->end_us - 1 : f->start_us;
        for (size_t b = lb__bin(s, f->start_us); b <= lb__bin(s, last_us); b++)
            s->timeline[b].active_faults++;
    }
}

/* Bins of 100 ms from 0 to elapsed (at least one); whatever lies past elapsed (a fault still
 * in effect at the end) is counted in the last bin. */
static int lb__timeline(const lb_run_result *run, lb_summary *s)
{
    int64_t el = run->elapsed_us > 0 ? run->elapsed_us : 0;
    s->nbins = (size_t)((el + LB__BIN_US - 1) / LB__BIN_US);
    if (s->nbins == 0)
        s->nbins = 1;
    s->timeline = calloc(s->nbins, sizeof *s->timeline);
    if (!s->timeline)
        return -1;
    for (size_t b = 0; b < s->nbins; b++)
        s->timeline[b].t_ms = (int64_t)b * (LB__BIN_US / 1000);
    lb__timeline_counts(run, s);
    lb__timeline_faults(run, s);
    return lb__timeline_holders(run, s);
}

/* ---- compute -------------------------------------------------------------------------------- */

int lb_metrics_compute(const lb_scenario *variant, const lb_run_result *run, lb_summary *out)
{
    *out = (lb_summary){
        .name = variant->variant ? variant->variant : variant->name,
        .algorithm = lb_algorithm_name(variant->lock.algorithm),
        .wait = lb_wait_name(variant->lock.wait),
        .driver = lb_driver_name(run->driver),
        .simulated = run->driver == LB_DRIVER_SIM,
        .sim_model = variant->sim,
        .sim_virtual_ms = lb__ms(run->sim.virtual_us),
        .sim_wall_ms = lb__ms(run->sim.wall_us),
        .sim_events = (int64_t)run->sim.events,
        .backoff = lb_backoff_policy_name(variant->lock.backoff.policy),
        .clients = (int64_t)variant->nclients,
        .complete = run->complete,
        .expect.passed = true};
    lb__totals(run, out);
    int rc = lb__latencies(run, out);
    if (!rc)
        rc = lb__fairness(variant, run, out);
    if (!rc)
        rc = lb__handoff(run, out);
    if (!rc)
        rc = lb__timeline(run, out);
    if (rc)
        lb_summary_free(out);
    return rc;
}

/* ---- paths ---------------------------------------------------------------------------------- */

/* Any figure of the table (fields.h), those an expectation may name among them. */
bool lb_metrics_value(const lb_summary *s, const char *path, double *value)
{
    const lb_field *f = lb_field_find(path);
    if (f)
        *value = lb_field_get(f, s);
    return f != NULL;
}

const double *lb_metrics_repeats(const lb_summary *s, const char *path)
{
    const lb_field *f = lb_field_find(path);
    if (!f || s->repeats.n == 0)
        return NULL;
    return s->repeats.values + lb_field_index(f) * s->repeats.n;
}

/* ---- expectations --------------------------------------------------------------------------- */

static bool lb__equal(double v, double want)
{
    return v == want || fabs(v - want) <= 1e-9 * fmax(fabs(v), fabs(want));
}

/* "5", "[2000, 2500]", or ">= 5" / "<= 2500" when one side is open. */
static void lb__bound_text(const lb_expect *e, char *buf, size_t len)
{
    if (e->equal)
        snprintf(buf, len, "%g", e->min);
    else if (isinf(e->min) && e->min < 0)
        snprintf(buf, len, "<= %g", e->max);
    else if (isinf(e->max) && e->max > 0)
        snprintf(buf, len, ">= %g", e->min);
    else
        snprintf(buf, len, "[%g, %g]", e->min, e->max);
}

static bool lb__holds_expect(const lb_expect *e, double v)
{
    return e->equal ? lb__equal(v, e->min) : (v >= e->min && v <= e->max);
}

/* An unknown path (the loader rejects them, so only a hand-built scenario has one) fails with
 * value NaN rather than passing silently. */
void lb_metrics_check(const lb_scenario *variant, lb_summary *s)
{
    free(s->expect.failures);
    s->expect.failures = calloc(variant->nexpect + 1, sizeof *s->expect.failures);
    s->expect.nfailures = 0;
    s->expect.passed = s->expect.failures != NULL;
    for (size_t i = 0; s->expect.failures && i < variant->nexpect; i++) {
        const lb_expect *e = &variant->expect[i];
        double v = NAN;
        bool known = lb_metrics_value(s, e->path, &v);
        if (known && lb__holds_expect(e, v))
            continue;
        lb_expect_failure *f = &s->expect.failures[s->expect.nfailures++];
        snprintf(f->path, sizeof f->path, "%s", e->path);
        f->value = v;
        if (known)
            lb__bound_text(e, f->bound, sizeof f->bound);
        else
            snprintf(f->bound, sizeof f->bound, "a known summary path");
        s->expect.passed = false;
    }
    if (!s->complete)
        lb_metrics_incomplete(s);
}

/* Figures of part of a run may meet every bound and still say nothing of the whole run (a
 * counter checked before the last client wrote it), so an incomplete summary fails its
 * expectations, with no failure listed that the figures did not show. */
void lb_metrics_incomplete(lb_summary *s)
{
    s->complete = false;
    s->expect.passed = false;
}

/* ---- combining repeats ---------------------------------------------------------------------- */

/* Every figure by its rule in the table (fields.h): the summed, the medianed and the settings
 * alike. A sampled figure (a latency) combines the repeats that have samples only; with none,
 * it is 0 (no samples, so the JSON says null). */
static void lb__combine_figures(const lb_summary *r, size_t n, double *x, lb_summary *out)
{
    size_t nf;
    const lb_field *f = lb_fields(&nf);
    for (size_t k = 0; k < nf; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (lb_field_has_value(&f[k], &r[i]))
                x[m++] = lb_field_get(&f[k], &r[i]);
        lb_field_set(&f[k], out, m ? lb_field_combine(&f[k], x, m) : 0);
    }
}

/* The per-repeat values of every figure; NAN where a repeat has none (a latency without samples,
 * written as null), which is not 0, matching the combined figures. */
static int lb__combine_repeats(const lb_summary *r, size_t n, lb_repeats *rep)
{
    size_t nf;
    const lb_field *f = lb_fields(&nf);
    rep->values = malloc(nf * n * sizeof *rep->values);
    if (!rep->values)
        return -1;
    rep->n = n;
    for (size_t k = 0; k < nf; k++)
        for (size_t i = 0; i < n; i++)
            rep->values[k * n + i] = lb_field_has_value(&f[k], &r[i])
                                         ? lb_field_get(&f[k], &r[i]) : NAN;
    return 0;
}

/* Every repeat's failures, the bound prefixed with the repeat's number (1-based) when there
 * is more than one repeat. */
static int lb__combine_expect(const lb_summary *r, size_t n, lb_summary *out)
{
    size_t total = 0;
    out->expect.passed = true;
    for (size_t i = 0; i < n; i++) {
        total += r[i].expect.nfailures;
        out->expect.passed &= r[i].expect.passed;
    }
    out->expect.failures = calloc(total + 1, sizeof *out->expect.failures);
    if (!out->expect.failures)
        return -1;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < r[i].expect.nfailures; k++) {
            lb_expect_failure *f = &out->expect.failures[out->expect.nfailures++];
            *f = r[i].expect.failures[k];
            if (n > 1)
                snprintf(f->bound, sizeof f->bound, "repeat %u: %.40s", (unsigned)(i + 1),
                         r[i].expect.failures[k].bound);
        }
    return 0;
}

/* per_client and timeline describe one run, and a median of tables is no run at all: the
 * combined summary carries copies of the first repeat's. */
static int lb__combine_tables(const lb_summary *first, lb_summary *out)
{
    size_t nc = first->fairness.nclients, nb = first->nbins;
    out->fairness.per_client = malloc((nc + 1) * sizeof *out->fairness.per_client);
    out->timeline = malloc((nb + 1) * sizeof *out->timeline);
    if (!out->fairness.per_client || !out->timeline)
        return -1;
    if (nc)
        memcpy(out->fairness.per_client, first->fairness.per_client, nc * sizeof(lb_client_summary));
    if (nb)
        memcpy(out->timeline, first->timeline, nb * sizeof(lb_timeline_bin));
    out->fairness.nclients = nc;
    out->nbins = nb;
    return 0;
}

/* Expectations are checked on every repeat (lb_metrics_check on each) before combining; the
 * combined summary's expect is their union and should not be checked again. n must be >= 1;
 * n == 1 (no --repeat) gives a copy of that summary, without per-repeat lists (SPEC: repeats is
 * present only with --repeat) and with the failures' bounds unprefixed. */
int lb_metrics_combine(const lb_summary *r, size_t n, lb_summary *out)
{
    *out = (lb_summary){0};
    if (n == 0)
        return -1;
    double *x = malloc(n * sizeof *x);
    if (!x)
        return -1;
    out->name = r[0].name;
    out->algorithm = r[0].algorithm;
    out->wait = r[0].wait;
    out->backoff = r[0].backoff;
    out->driver = r[0].driver;
    out->simulated = r[0].simulated;
    out->sim_model = r[0].sim_model;
    for (size_t i = 0; i < n; i++) {  /* the simulation's cost adds up over the repeats */
        out->sim_virtual_ms += r[i].sim_virtual_ms;
        out->sim_wall_ms += r[i].sim_wall_ms;
        out->sim_events += r[i].sim_events;
    }
    out->complete = true;
    for (size_t i = 0; i < n; i++)
        out->complete &= r[i].complete;
    lb__combine_figures(r, n, x, out);
    free(x);
    int rc = n > 1 ? lb__combine_repeats(r, n, &out->repeats) : 0;
    if (!rc)
        rc = lb__combine_expect(r, n, out);
    if (!rc)
        rc = lb__combine_tables(&r[0], out);
    if (rc)
        lb_summary_free(out);
    return rc;
}

void lb_summary_free(lb_summary *s)
{
    if (!s)
        return;
    free(s->fairness.per_client);
    free(s->timeline);
    free(s->repeats.values);
    free(s->expect.failures);
    s->fairness.per_client = NULL;
    s->fairness.nclients = 0;
    s->timeline = NULL;
    s->nbins = 0;
    s->repeats = (lb_repeats){0};
    s->expect.failures = NULL;
    s->expect.nfailures = 0;
}
