/* test_metrics.c -- the measure stage on hand-made runs whose answers are worked out by hand.
 *
 * No servers: each test builds an lb_run_result the way the runner would (histograms, counters,
 * acquisition logs, fault records) and checks the figures lb_metrics_compute derives from it.
 * The expected numbers are derived in the comment above each test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "close.h"
#include "fields.h"
#include "metrics.h"
#include "scenario.h"

/* Within the histogram's 0.1 %. */
#define assert_hist_close(a, b) assert_close(a, b, fabs((double)(b)) * 0.001)

#define MAXC 4

/* A run of up to MAXC clients and 4 faults, all owned by the struct. */
typedef struct {
    lb_run_result    run;
    lb_client_result cl[MAXC];
    lb_meter         m[MAXC];   /* one per client, as the thread driver has */
    lb_fault_record  f[4];
} fixture;

static void fixture_init(fixture *x, size_t nclients, int64_t elapsed_us)
{
    memset(x, 0, sizeof *x);
    x->run = (lb_run_result){.complete = true, .elapsed_us = elapsed_us, .nkeys = 1,
                             .nclients = nclients, .clients = x->cl, .faults = x->f,
                             .nmeters = nclients, .meters = x->m,
                             .driver = LB_DRIVER_THREADS};
    for (size_t i = 0; i < nclients; i++) {
        x->cl[i].client = (int)i;
        x->cl[i].group = i % 2;
        assert_int_equal(lb_meter_init(&x->m[i], 1, false), 0);
    }
}

static void fixture_free(fixture *x)
{
    for (size_t i = 0; i < x->run.nmeters; i++)
        lb_meter_free(&x->run.meters[i]);
}

/* Logs one acquire call of client c, with when it left the critical section (left, -1 when not
 * acquired), and counts it as the runner does. */
static void add_left(fixture *x, int c, int key, int64_t call, int64_t end, int64_t left,
                     int64_t released, lb_result r, lb_hold_end how)
{
    lb_client_result *cl = &x->cl[c];
    lb_meter *m = &x->run.meters[x->run.nmeters == x->run.nclients ? (size_t)c : 0];
    lb_acquisition *a = lb_acq_log_append(&m->log);
    assert_non_null(a);
    *a = (lb_acquisition){.call_us = call, .end_us = end, .left_us = left,
                          .released_us = released, .key = key, .client = c,
                          .result = (uint8_t)r, .end = (uint8_t)how, .attempts = 1,
                          .commands = 2};
    int64_t wait = end - call;
    if (r == LB_RES_OK || r == LB_RES_TIMEOUT)
        cl->wait_max_us = wait > cl->wait_max_us ? wait : cl->wait_max_us;
    if (r == LB_RES_OK) {
        cl->acquisitions++;
        cl->wait_sum_us += wait;
        lb_hist_record(m->acquire_hist, wait);
    } else if (r == LB_RES_TIMEOUT) {
        cl->timeouts++;
        lb_hist_record(m->timeout_hist, wait);
    } else if (r == LB_RES_ERROR) {
        cl->errors++;
    }
}

/* The same, leaving the critical section when the hold ended (a release that takes no time). */
static void add(fixture *x, int c, int key, int64_t call, int64_t end, int64_t released,
                lb_result r, lb_hold_end how)
{
    add_left(x, c, key, call, end, r == LB_RES_OK ? released : -1, released, r, how);
}

static lb_scenario *load(const char *json)
{
    lb_scenario *s = NULL;
    char err[512] = "";
    int rc = lb_scenario_load_buffer("t.json", json, strlen(json), NULL, &s, err, sizeof err);
    if (rc != 0)
        fail_msg("scenario: %s", err);
    return s;
}

static const char two_groups[] =
    "{\"name\": \"t\", \"clients\": [{\"name\": \"alpha\", \"count\": 1},"
    " {\"name\": \"beta\", \"count\": 1}, {\"name\": \"gamma\", \"count\": 2}]}";

/* ---- the acquisition log -------------------------------------------------------------------- */

/* Memory stays bounded however many records come: at most LB_ACQ_LOG_BUF stay in memory,
 * older ones go to the log's file, and a cursor reads them all back in order, two cursors at
 * once as well. A record put back after it went to the file is read back as put. */
static void test_acq_log(void **state)
{
    lb_acq_log log = {0};
    lb_acq_cursor c1, c2;
    lb_acq_cursor_init(&c1, &log);
    assert_null(lb_acq_cursor_next(&c1));
    lb_acquisition early = {0};
    for (int64_t i = 0; i < 10000; i++) {
        lb_acquisition *a = lb_acq_log_append(&log);
        assert_non_null(a);
        assert_int_equal(a->released_us, -1);
        a->call_us = i;
        a->end_us = 2 * i;  /* filled in after the append */
        if (i == 5)
            early = *a;
        assert_true(log.nbuf <= LB_ACQ_LOG_BUF);
    }
    assert_int_equal(log.count, 10000);
    assert_true(log.has_file);
    assert_int_equal(log.spilled + log.nbuf, 10000);
    early.released_us = 77;  /* a call still in progress when its record went to the file */
    lb_acq_log_put(&log, 5, &early);
    assert_false(log.failed);
    lb_acq_cursor_init(&c1, &log);
    lb_acq_cursor_init(&c2, &log);
    for (int64_t i = 0; i < 10000; i++) {
        const lb_acquisition *a = lb_acq_cursor_next(&c1);
        assert_non_null(a);
        assert_int_equal(a->call_us, i);
        assert_int_equal(a->end_us, 2 * i);
        assert_int_equal(a->released_us, i == 5 ? 77 : -1);
        if (i % 3 == 0)
            assert_int_equal(lb_acq_cursor_next(&c2)->call_us, i / 3);
    }
    assert_null(lb_acq_cursor_next(&c1));
    lb_acq_log_free(&log);
    assert_int_equal(log.count, 0);
    lb_acq_log_free(&log);   /* twice is harmless */
}

/* Many logs read as one by call (ties: client number), without sorting them in memory; logs
 * long enough to be in their files. */
static void test_acq_merge(void **state)
{
    lb_meter m[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(lb_meter_init(&m[i], 1, false), 0);
    for (int64_t i = 0; i < 3000; i++) {
        *lb_acq_log_append(&m[0].log) = (lb_acquisition){.call_us = 3 * i, .client = 0};
        *lb_acq_log_append(&m[1].log) = (lb_acquisition){.call_us = 3 * i + 1, .client = 1};
        if (i % 2 == 0)  /* ties with client 0 */
            *lb_acq_log_append(&m[2].log) = (lb_acquisition){.call_us = 3 * i, .client = 2};
    }
    lb_acq_merge *mg = lb_acq_merge_new(m, 3, LB_ACQ_BY_CALL);
    assert_non_null(mg);
    int64_t prev = -1;
    int prev_client = 0;
    size_t n = 0;
    for (const lb_acquisition *a; (a = lb_acq_merge_next(mg)); n++) {
        assert_true(a->call_us > prev || (a->call_us == prev && a->client > prev_client));
        prev = a->call_us;
        prev_client = a->client;
    }
    assert_int_equal(n, 3000 + 3000 + 1500);
    lb_acq_merge_free(mg);
    for (int i = 0; i < 3; i++)
        lb_meter_free(&m[i]);
}

/* One log shared by 50 clients, in call order, whose calls end out of that order (waits drawn
 * at random, up to 40 calls in progress at once): read by end, every record comes once, in
 * order of end_us (ties: client), across two meters and through the files. */
static void test_acq_merge_by_end(void **state)
{
    lb_meter m[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(lb_meter_init(&m[i], 50, false), 0);
    uint64_t rng = 88172645463325252ULL;
    int64_t sum_end = 0;
    const int N = 20000;
    for (int64_t i = 0; i < N; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int64_t call = i / 2, end = call + (int64_t)(rng % 40);
        *lb_acq_log_append(&m[i % 2].log) =
            (lb_acquisition){.call_us = call, .end_us = end, .client = (int32_t)(rng % 50)};
        sum_end += end;
    }
    assert_true(m[0].log.has_file && m[1].log.has_file);
    lb_acq_merge *mg = lb_acq_merge_new(m, 2, LB_ACQ_BY_END);
    assert_non_null(mg);
    int64_t prev = -1, seen_sum = 0;
    int prev_client = -1, n = 0;
    for (const lb_acquisition *a; (a = lb_acq_merge_next(mg)); n++) {
        assert_true(a->end_us > prev || (a->end_us == prev && a->client >= prev_client));
        prev = a->end_us;
        prev_client = a->client;
        seen_sum += a->end_us;
    }
    assert_int_equal(n, N);
    assert_int_equal(seen_sum, sum_end);
    lb_acq_merge_free(mg);
    for (int i = 0; i < 2; i++)
        lb_meter_free(&m[i]);
}

/* ---- latency, totals ------------------------------------------------------------------------ */

/* Waits 1..5 ms (client 0) and 6..10 ms (client 1): merged, nearest rank over 10 samples gives
 * p50 = 5 ms (rank 5), p90 = 9 ms (rank 9), p99 = p999 = max = 10 ms; mean 5.5 ms exactly.
 * One timeout of 2 s. 10 acquisitions in 2.5 s = 4/s; 30 commands / 10 = 3. */
static void test_latency_and_totals(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 2, 2500000);
    for (int i = 1; i <= 10; i++)
        add(&x, i <= 5 ? 0 : 1, 0, i * 100000, i * 100000 + i * 1000, i * 100000 + i * 1000 + 1,
            LB_RES_OK, LB_END_RELEASED);
    add(&x, 1, 0, 1100000, 3100000, -1, LB_RES_TIMEOUT, LB_END_NONE);
    x.cl[0].commands = 12;
    x.cl[1].commands = 18;
    x.cl[1].crashed = true;
    x.run.overlaps = 2;
    x.run.faults_applied = 3;

    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_string_equal(s.name, "default");
    assert_string_equal(s.algorithm, "token");
    assert_string_equal(s.wait, "poll");
    assert_string_equal(s.backoff, "exponential");
    assert_int_equal(s.clients, 4);
    assert_int_equal(s.acquire_ms.count, 10);
    assert_close(s.acquire_ms.mean, 5.5, 1e-12);
    assert_hist_close(s.acquire_ms.p50, 5.0);
    assert_hist_close(s.acquire_ms.p90, 9.0);
    assert_hist_close(s.acquire_ms.p99, 10.0);
    assert_hist_close(s.acquire_ms.p999, 10.0);
    assert_close(s.acquire_ms.max, 10.0, 0);
    assert_int_equal(s.timeout_ms.count, 1);
    assert_hist_close(s.timeout_ms.p50, 2000.0);
    assert_close(s.timeout_ms.max, 2000.0, 0);
    assert_int_equal(s.acquisitions, 10);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(s.crashed_clients, 1);
    assert_close(s.elapsed_ms, 2500.0, 0);
    assert_close(s.throughput_per_s, 4.0, 1e-12);
    assert_int_equal(s.redis.commands, 30);
    assert_close(s.redis.commands_per_acquisition, 3.0, 1e-12);
    assert_int_equal(s.overlaps, 2);
    assert_int_equal(s.faults_applied, 3);
    assert_true(s.expect.passed);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* The summary names the driver the runner recorded, not one worked out again from the
 * scenario: a scenario that asks for threads, run (say, by a later default) on the loop, says
 * loop. */
static void test_driver_as_recorded(void **state)
{
    lb_scenario *sc = load("{\"name\": \"t\", \"driver\": \"threads\","
                           " \"clients\": [{\"name\": \"w\", \"count\": 1}]}");
    fixture x;
    fixture_init(&x, 1, 1000);
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_string_equal(s.driver, "threads");
    lb_summary_free(&s);
    x.run.driver = LB_DRIVER_LOOP;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_string_equal(s.driver, "loop");
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* An empty run: every ratio is 0, not NaN, and there is still one timeline bin. */
static void test_empty_run(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 2, 0);
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_close(s.throughput_per_s, 0, 0);
    assert_close(s.redis.commands_per_acquisition, 0, 0);
    assert_int_equal(s.acquire_ms.count, 0);
    assert_close(s.acquire_ms.p99, 0, 0);
    assert_int_equal(s.handoff_ms.count, 0);
    assert_close(s.fairness.jain, 1.0, 0);
    assert_int_equal(s.nbins, 1);
    lb_summary_free(&s);
    lb_summary_free(&s);   /* freeing twice is harmless */
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* acked 10, actual 7: 3 lost; acked 5, actual 7 (a non-counter write path): 0, never negative.
 * Attempted and stale rejections are sums over clients. */
static void test_lost_updates(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 2, 1000);
    x.cl[0].cs_acked = 6;
    x.cl[1].cs_acked = 4;
    x.cl[0].cs_attempted = 7;
    x.cl[1].cs_attempted = 5;
    x.cl[1].stale_rejected = 2;
    x.run.counter_actual = 7;
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_int_equal(s.counter.acked, 10);
    assert_int_equal(s.counter.attempted, 12);
    assert_int_equal(s.counter.actual, 7);
    assert_int_equal(s.counter.lost_updates, 3);
    assert_int_equal(s.counter.stale_writes_rejected, 2);
    lb_summary_free(&s);

    x.cl[0].cs_acked = 1;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_int_equal(s.counter.lost_updates, 0);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* ---- fairness ------------------------------------------------------------------------------- */

/* Acquisitions [1,1,1,1] → jain 1; [1,0,0,0] → 1/4. Waits: client 0 waits 2 ms and 4 ms
 * (mean 3), the others 3 ms: jain_wait 1. In the second run only client 0 acquired: jain_wait is
 * over that one client, 1. max_wait_ms is over the calls that returned ok or timed out: client
 * 2's 7 ms timeout is the longest (not client 0's 4 ms acquire); client 3's 50 ms error and
 * 60 ms abandoned wait do not count (its max_wait_ms is 0). Groups by the fixture: client i is
 * in group i % 2. */
static void test_fairness(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 4, 1000000);
    for (int c = 0; c < 4; c++)
        add(&x, c, 0, 0, 3000, 3001, LB_RES_OK, LB_END_RELEASED);
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_close(s.fairness.jain, 1.0, 1e-12);
    assert_close(s.fairness.jain_wait, 1.0, 1e-12);
    assert_int_equal(s.fairness.min_acquisitions, 1);
    assert_int_equal(s.fairness.max_acquisitions, 1);
    lb_summary_free(&s);
    fixture_free(&x);

    fixture_init(&x, 4, 1000000);
    add(&x, 0, 0, 0, 2000, 2001, LB_RES_OK, LB_END_RELEASED);
    add(&x, 0, 0, 10000, 14000, 14001, LB_RES_OK, LB_END_RELEASED);
    add(&x, 2, 0, 0, 7000, -1, LB_RES_TIMEOUT, LB_END_NONE);
    add(&x, 3, 0, 0, 50000, -1, LB_RES_ERROR, LB_END_NONE);
    add(&x, 3, 0, 50000, 110000, -1, LB_RES_ABANDONED, LB_END_NONE);
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_close(s.fairness.jain, 0.25, 1e-12);
    assert_close(s.fairness.jain_wait, 1.0, 1e-12);
    assert_int_equal(s.fairness.min_acquisitions, 0);
    assert_int_equal(s.fairness.max_acquisitions, 2);
    assert_close(s.fairness.max_wait_ms, 7.0, 1e-12);
    assert_int_equal(s.fairness.nclients, 4);
    const lb_client_summary *pc = s.fairness.per_client;
    assert_int_equal(pc[0].client, 0);
    assert_string_equal(pc[0].group, "alpha");
    assert_string_equal(pc[1].group, "beta");
    assert_int_equal(pc[0].acquisitions, 2);
    assert_close(pc[0].mean_wait_ms, 3.0, 1e-12);
    assert_close(pc[0].max_wait_ms, 4.0, 1e-12);
    assert_int_equal(pc[2].timeouts, 1);
    assert_close(pc[2].mean_wait_ms, 0, 0);
    assert_close(pc[2].max_wait_ms, 7.0, 1e-12);
    assert_int_equal(pc[3].errors, 1);
    assert_close(pc[3].max_wait_ms, 0, 0);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* ---- handoff -------------------------------------------------------------------------------- */

/* Two clients on key 0 (times in µs); each hold's successor is the next hold on its key in
 * order of acquire returning:
 *   c0 holds 100 → 1000 (released)     next hold: c1 at 1200                     → 200
 *   c1 holds 1200 → 3000 (released)    next: c0 at 3500                          → 500
 *   c0 holds 3500 → 4000 (notowner)    next: c1 at 4100                          → 100
 *   c1 holds 4100 → 5000 (crashed)     next: c0 at 6000                          → 1000
 *   c0 holds 6000 → 7000 (released)    nothing follows: no sample
 *   c1 times out at 6500: not a hold.
 * Key 1: c1 holds 10 → 500 but kept (release: false): no sample (else 600); c0 holds
 * 1100 → 1150, which nothing follows. Were keys mixed up, c0's release at 1000 would be followed
 * by that 1100 (100) instead of c1's 1200.
 * Samples 100, 200, 500, 1000 µs: count 4, mean 0.45 ms, p50 (rank 2) 0.2, p99 (rank 4) 1.0. */
static void test_handoff(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 2, 10000);
    add(&x, 0, 0, 0, 100, 1000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 1, 0, 50, 1200, 3000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 0, 0, 1100, 3500, 4000, LB_RES_OK, LB_END_NOTOWNER);
    add(&x, 1, 0, 3100, 4100, 5000, LB_RES_OK, LB_END_CRASHED);
    add(&x, 0, 0, 4200, 6000, 7000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 1, 0, 5100, 6500, -1, LB_RES_TIMEOUT, LB_END_NONE);
    add(&x, 1, 1, 0, 10, 500, LB_RES_OK, LB_END_KEPT);
    add(&x, 0, 1, 1050, 1100, 1150, LB_RES_OK, LB_END_RELEASED);
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_int_equal(s.handoff_ms.count, 4);
    assert_close(s.handoff_ms.mean, 0.45, 1e-12);
    assert_close(s.handoff_ms.p50, 0.2, 1e-12);
    assert_close(s.handoff_ms.p99, 1.0, 1e-12);
    assert_close(s.handoff_ms.max, 1.0, 1e-12);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* A server-side hand-off (notify, fifo): the release script gives the lock to the waiter, whose
 * acquire returns before the releasing client's dlock_release does. Key 0 (µs):
 *   c0 acquired 100, left its critical section 900, release returned 1000
 *   c1 acquired 950 (before 1000), left 2000, release returned 2100
 *   c0 acquired 2500, left 2600, release returned 2700; nothing follows
 * Successors in order of acquire returning: c0@100 → c1@950: max(0, 950 - 1000) = 0 (not c0's
 * own 2500, which "the first acquire at or after 1000" would pick: 1500); c1 → c0@2500: 400.
 * Samples 0 and 400 µs: count 2, mean 0.2 ms, p50 (rank 1) 0, max 0.4.
 * Inside the critical section: [100, 900), [950, 2000), [2500, 2600): never two at once, so the
 * one bin has holders 1 (counting to the release's return would give 2). */
static void test_handoff_before_release_returns(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 2, 3000);
    add_left(&x, 0, 0, 0, 100, 900, 1000, LB_RES_OK, LB_END_RELEASED);
    add_left(&x, 1, 0, 50, 950, 2000, 2100, LB_RES_OK, LB_END_RELEASED);
    add_left(&x, 0, 0, 1000, 2500, 2600, 2700, LB_RES_OK, LB_END_RELEASED);
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_int_equal(s.handoff_ms.count, 2);
    assert_close(s.handoff_ms.p50, 0, 0);
    assert_close(s.handoff_ms.mean, 0.2, 1e-12);
    assert_close(s.handoff_ms.max, 0.4, 1e-12);
    assert_int_equal(s.nbins, 1);
    assert_int_equal(s.timeline[0].holders, 1);
    assert_int_equal(s.overlaps, 0);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* ---- timeline ------------------------------------------------------------------------------- */

/* elapsed 250 ms → bins 0, 100, 200. Holds (µs):
 *   c0 [50000, 150000)   c1 [120000, 130000)   c1 [150000, 210000)
 *   c0 [220000, 240000)  c1 [240000, 250000)   (ends and starts at the same instant do not
 *                                                overlap: 150000 and 240000)
 *   acquisitions by end_us: bin0 1, bin1 2, bin2 2; a timeout at 180000 (bin1), an error at
 *   245000 (bin2). holders: bin0 1, bin1 2 (c0 with c1's short hold), bin2 1.
 * Faults: [90000, 110000) → bins 0 and 1; an instant at 200000 → bin 2; [100000, 200000) →
 * bin 1 only (the end is exclusive); a skipped one → none. active_faults: 1, 2, 1. */
static void test_timeline(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 2, 250000);
    add(&x, 0, 0, 0, 50000, 150000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 1, 0, 100000, 120000, 130000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 1, 0, 130000, 150000, 210000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 0, 0, 160000, 180000, -1, LB_RES_TIMEOUT, LB_END_NONE);
    add(&x, 0, 0, 200000, 220000, 240000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 1, 0, 215000, 240000, 250000, LB_RES_OK, LB_END_KEPT);
    add(&x, 0, 0, 241000, 245000, -1, LB_RES_ERROR, LB_END_NONE);
    x.f[0] = (lb_fault_record){.at_ms = 90, .start_us = 90000, .end_us = 110000, .applied = true};
    x.f[1] = (lb_fault_record){.at_ms = 200, .start_us = 200000, .end_us = -1, .applied = true};
    x.f[2] = (lb_fault_record){.at_ms = 300, .start_us = -1, .end_us = -1, .applied = false};
    x.f[3] = (lb_fault_record){.at_ms = 100, .start_us = 100000, .end_us = 200000,
                               .applied = true};
    x.run.nfaults = 4;
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_int_equal(s.nbins, 3);
    static const int64_t t[] = {0, 100, 200}, acq[] = {1, 2, 2}, to[] = {0, 1, 0},
                         er[] = {0, 0, 1}, hold[] = {1, 2, 1}, faults[] = {1, 2, 1};
    for (size_t b = 0; b < 3; b++) {
        assert_int_equal(s.timeline[b].t_ms, t[b]);
        assert_int_equal(s.timeline[b].acquisitions, acq[b]);
        assert_int_equal(s.timeline[b].timeouts, to[b]);
        assert_int_equal(s.timeline[b].errors, er[b]);
        assert_int_equal(s.timeline[b].holders, hold[b]);
        assert_int_equal(s.timeline[b].active_faults, faults[b]);
    }
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* Two clients inside at once show as holders 2: what the timeline chart draws in red. */
static void test_timeline_overlap(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 2, 100001);
    add(&x, 0, 0, 0, 10, 90000, LB_RES_OK, LB_END_RELEASED);
    add(&x, 1, 0, 0, 20, 80000, LB_RES_OK, LB_END_RELEASED);
    x.run.overlaps = 1;
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_int_equal(s.nbins, 2);
    assert_int_equal(s.timeline[0].holders, 2);
    assert_int_equal(s.timeline[1].holders, 0);
    assert_int_equal(s.overlaps, 1);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* Holders come from [end_us, left_us); elapsed 300 ms → bins 0, 100, 200. Key 0 (µs):
 *   c0 kept (release: false): acquired 10000, left 50000 (released_us 50010)   bin 0
 *   c1 acquired 60000, left_us -1 (not recorded): falls back to released 150000  bins 0, 1
 *   c2 acquired 120000, left 130000, released 140000: inside beside c1            bin 1
 *   c3 acquired 250000, neither left nor released (an open hold): to the run's end  bin 2
 * holders: 1, 2, 1 (the kept hold ends when its client left, not at the end of the run).
 * Handoff: the kept hold gives no sample; c1 (released 150000) → c2@120000: max(0, -30000) = 0;
 * c2 (released 140000) → c3@250000: 110000; c3's hold has not ended: none. count 2, max 110 ms. */
static void test_holders_from_left(void **state)
{
    lb_scenario *sc = load(two_groups);
    fixture x;
    fixture_init(&x, 4, 300000);
    add_left(&x, 0, 0, 0, 10000, 50000, 50010, LB_RES_OK, LB_END_KEPT);
    add_left(&x, 1, 0, 5000, 60000, -1, 150000, LB_RES_OK, LB_END_RELEASED);
    add_left(&x, 2, 0, 6000, 120000, 130000, 140000, LB_RES_OK, LB_END_RELEASED);
    add_left(&x, 3, 0, 7000, 250000, -1, -1, LB_RES_OK, LB_END_NONE);
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    assert_int_equal(s.nbins, 3);
    assert_int_equal(s.timeline[0].holders, 1);
    assert_int_equal(s.timeline[1].holders, 2);
    assert_int_equal(s.timeline[2].holders, 1);
    assert_int_equal(s.handoff_ms.count, 2);
    assert_close(s.handoff_ms.p50, 0, 0);
    assert_close(s.handoff_ms.max, 110.0, 1e-12);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* ---- one meter for many clients (the loop driver) --------------------------------------------- */

typedef struct {
    int c, key;
    int64_t call, end, left, released;
    lb_result r;
    lb_hold_end how;
} row;

static int row_by_call(const void *a, const void *b)
{
    const row *x = a, *y = b;
    return x->call != y->call ? (x->call < y->call ? -1 : 1) : x->c - y->c;
}

/* The figures come out the same whether each client has a meter of its own (the thread driver)
 * or all share one (a loop), where the log is in call order across clients and the calls end
 * out of that order: handoff, timeline, fairness, latency. The rows are test_handoff's and
 * test_timeline's on keys 0 and 1, and a third client's. */
static void test_one_meter_for_all_clients(void **state)
{
    row rows[] = {
        {0, 0, 0, 100, 1000, 1000, LB_RES_OK, LB_END_RELEASED},
        {1, 0, 50, 1200, 3000, 3000, LB_RES_OK, LB_END_RELEASED},
        {0, 0, 1100, 3500, 4000, 4000, LB_RES_OK, LB_END_NOTOWNER},
        {1, 0, 3100, 4100, 5000, 5000, LB_RES_OK, LB_END_CRASHED},
        {0, 0, 4200, 6000, 7000, 7000, LB_RES_OK, LB_END_RELEASED},
        {1, 0, 5100, 6500, -1, -1, LB_RES_TIMEOUT, LB_END_NONE},
        {2, 1, 0, 10, 500, 500, LB_RES_OK, LB_END_KEPT},
        {2, 1, 1050, 1100, 1150, 1150, LB_RES_OK, LB_END_RELEASED},
        {2, 1, 1200, 150000, 210000, 210000, LB_RES_OK, LB_END_RELEASED},
        {1, 1, 1300, 120000, 140000, 140000, LB_RES_OK, LB_END_RELEASED},  /* ends first */
        {0, 1, 7100, 220000, 240000, 240000, LB_RES_OK, LB_END_RELEASED},
        {1, 1, 6600, 241000, 245000, -1, LB_RES_ERROR, LB_END_NONE},
    };
    size_t n = sizeof rows / sizeof rows[0];
    qsort(rows, n, sizeof rows[0], row_by_call);
    lb_scenario *sc = load(two_groups);
    fixture own, shared;
    fixture_init(&own, 3, 250000);
    fixture_init(&shared, 3, 250000);
    for (size_t i = 1; i < 3; i++)
        lb_meter_free(&shared.m[i]);
    shared.run.nmeters = 1;
    own.run.nkeys = shared.run.nkeys = 2;
    for (size_t i = 0; i < n; i++) {
        const row *w = &rows[i];
        add_left(&own, w->c, w->key, w->call, w->end, w->left, w->released, w->r, w->how);
        add_left(&shared, w->c, w->key, w->call, w->end, w->left, w->released, w->r, w->how);
    }
    lb_summary a, b;
    assert_int_equal(lb_metrics_compute(sc, &own.run, &a), 0);
    assert_int_equal(lb_metrics_compute(sc, &shared.run, &b), 0);
    /* 4 on key 0 (test_handoff's); on key 1 in order of acquire returning: 1150 → 120000,
     * 140000 → 150000, 210000 → 220000 (in order of call it would be 1150 → 150000, ...) */
    assert_int_equal(a.handoff_ms.count, 7);
    assert_close(a.handoff_ms.max, 118.85, 0.2);
    assert_int_equal(b.handoff_ms.count, a.handoff_ms.count);
    assert_close(b.handoff_ms.mean, a.handoff_ms.mean, 0);
    assert_close(b.handoff_ms.max, a.handoff_ms.max, 0);
    assert_int_equal(b.acquire_ms.count, a.acquire_ms.count);
    assert_close(b.acquire_ms.p99, a.acquire_ms.p99, 0);
    assert_int_equal(b.timeouts, a.timeouts);
    assert_int_equal(a.nbins, 3);
    assert_int_equal(b.nbins, a.nbins);
    for (size_t k = 0; k < a.nbins; k++) {
        assert_int_equal(b.timeline[k].holders, a.timeline[k].holders);
        assert_int_equal(b.timeline[k].acquisitions, a.timeline[k].acquisitions);
    }
    assert_int_equal(a.timeline[0].holders, 2);  /* [0.1, 1) ms on key 0 with [0.01, 0.5) on 1 */
    assert_int_equal(a.timeline[1].holders, 1);  /* [120, 140) ms, then [150, 210) */
    assert_close(b.fairness.jain, a.fairness.jain, 0);
    assert_close(b.fairness.max_wait_ms, a.fairness.max_wait_ms, 0);
    lb_summary_free(&a);
    lb_summary_free(&b);
    fixture_free(&own);
    fixture_free(&shared);
    lb_scenario_free(sc);
}

/* ---- paths and expectations ----------------------------------------------------------------- */

static void test_value_paths(void **state)
{
    lb_summary s = {.acquisitions = 7, .acquire_ms.p99 = 1.5, .fairness.jain = 0.5,
                    .counter.lost_updates = 3, .redis.commands_per_acquisition = 4.25};
    double v;
    size_t n;
    const lb_field *f = lb_fields(&n);
    for (size_t i = 0; i < n; i++) {
        /* every figure of the table has a value, those an expectation may name included */
        if (!lb_metrics_value(&s, f[i].path, &v))
            fail_msg("lb_metrics_value does not know %s", f[i].path);
    }
    assert_true(lb_metrics_value(&s, "acquisitions", &v));
    assert_close(v, 7, 0);
    assert_true(lb_metrics_value(&s, "acquire_ms.p99", &v));
    assert_close(v, 1.5, 0);
    assert_true(lb_metrics_value(&s, "fairness.jain", &v));
    assert_close(v, 0.5, 0);
    assert_true(lb_metrics_value(&s, "counter.lost_updates", &v));
    assert_close(v, 3, 0);
    assert_true(lb_metrics_value(&s, "redis.commands_per_acquisition", &v));
    assert_close(v, 4.25, 0);
    assert_false(lb_metrics_value(&s, "acquire_ms", &v));
    assert_false(lb_metrics_value(&s, "nope", &v));
}

/* 10 acquisitions in 2.5 s (4/s), 2 overlaps, 3 lost updates. Passing: acquisitions == 10,
 * acquire_ms.max in [0, 100]. Failing, in file order: overlaps == 0 ("0"), throughput in [1, 3]
 * ("[1, 3]"), lost_updates <= 0 ("<= 0"), acquisitions >= 20 (">= 20"). */
static void test_expectations(void **state)
{
    lb_scenario *sc = load(
        "{\"name\": \"t\", \"clients\": [{\"name\": \"w\", \"count\": 2}], \"expect\": {"
        "\"acquisitions\": 10, \"acquire_ms.max\": {\"min\": 0, \"max\": 100},"
        "\"overlaps\": 0, \"throughput_per_s\": {\"min\": 1, \"max\": 3},"
        "\"counter.lost_updates\": {\"max\": 0}, \"fairness.min_acquisitions\": {\"min\": 20}}}");
    fixture x;
    fixture_init(&x, 2, 2500000);
    for (int i = 0; i < 10; i++)
        add(&x, i % 2, 0, i * 1000, i * 1000 + 10, i * 1000 + 20, LB_RES_OK, LB_END_RELEASED);
    x.run.overlaps = 2;
    x.cl[0].cs_acked = 10;
    x.run.counter_actual = 7;
    lb_summary s;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s), 0);
    lb_metrics_check(sc, &s);
    assert_false(s.expect.passed);
    assert_int_equal(s.expect.nfailures, 4);
    const lb_expect_failure *f = s.expect.failures;
    /* the loader may order expectations its own way: find each by path */
    for (size_t i = 0; i < 4; i++) {
        if (!strcmp(f[i].path, "overlaps")) {
            assert_close(f[i].value, 2, 0);
            assert_string_equal(f[i].bound, "0");
        } else if (!strcmp(f[i].path, "throughput_per_s")) {
            assert_close(f[i].value, 4, 1e-12);
            assert_string_equal(f[i].bound, "[1, 3]");
        } else if (!strcmp(f[i].path, "counter.lost_updates")) {
            assert_close(f[i].value, 3, 0);
            assert_string_equal(f[i].bound, "<= 0");
        } else if (!strcmp(f[i].path, "fairness.min_acquisitions")) {
            assert_close(f[i].value, 5, 0);
            assert_string_equal(f[i].bound, ">= 20");
        } else {
            fail_msg("unexpected failure on %s", f[i].path);
        }
    }
    /* checking again replaces the list instead of appending to it */
    lb_metrics_check(sc, &s);
    assert_int_equal(s.expect.nfailures, 4);
    lb_summary_free(&s);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* Equality allows for floating-point noise (1e-9 relative), nothing more. */
static void test_expect_equal_tolerance(void **state)
{
    lb_expect e[2] = {{.path = "throughput_per_s", .equal = true, .min = 0.3, .max = 0.3},
                      {.path = "elapsed_ms", .equal = true, .min = 100, .max = 100}};
    lb_scenario sc = {.nexpect = 2, .expect = e};
    lb_summary s = {.throughput_per_s = 0.1 + 0.2, .elapsed_ms = 100.001};
    lb_metrics_check(&sc, &s);
    assert_false(s.expect.passed);
    assert_int_equal(s.expect.nfailures, 1);
    assert_string_equal(s.expect.failures[0].path, "elapsed_ms");
    assert_string_equal(s.expect.failures[0].bound, "100");
    lb_summary_free(&s);
}

/* An interrupted run (complete false) whose figures meet every bound still does not pass: its
 * figures cover part of the run. No failure is invented for it. Combined with a complete
 * repeat, the whole is incomplete too. */
static void test_incomplete_run_does_not_pass(void **state)
{
    lb_scenario *sc = load("{\"name\": \"t\", \"clients\": [{\"name\": \"w\", \"count\": 1}],"
                           " \"expect\": {\"overlaps\": 0}}");
    fixture x;
    fixture_init(&x, 1, 1000000);
    add(&x, 0, 0, 0, 10, 20, LB_RES_OK, LB_END_RELEASED);
    lb_summary s[2];
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s[0]), 0);
    lb_metrics_check(sc, &s[0]);
    assert_true(s[0].complete);
    assert_true(s[0].expect.passed);
    x.run.complete = false;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &s[1]), 0);
    lb_metrics_check(sc, &s[1]);
    assert_false(s[1].complete);
    assert_false(s[1].expect.passed);
    assert_int_equal(s[1].expect.nfailures, 0);
    lb_summary c;
    assert_int_equal(lb_metrics_combine(s, 2, &c), 0);
    assert_false(c.complete);
    assert_false(c.expect.passed);
    lb_summary_free(&c);
    assert_int_equal(lb_metrics_combine(s, 1, &c), 0);
    assert_true(c.complete);
    assert_true(c.expect.passed);
    lb_metrics_incomplete(&c);   /* fewer repeats ran than were asked for */
    assert_false(c.complete);
    assert_false(c.expect.passed);
    lb_summary_free(&c);
    lb_summary_free(&s[0]);
    lb_summary_free(&s[1]);
    fixture_free(&x);
    lb_scenario_free(sc);
}

/* ---- combining repeats ---------------------------------------------------------------------- */

static lb_client_summary first_clients[1] = {{.client = 0, .group = "g", .acquisitions = 10}};
static lb_timeline_bin first_bins[2] = {{.t_ms = 0, .acquisitions = 4}, {.t_ms = 100}};

/* Three repeats: throughput 100/300/200 → median 200; p50 1/3/2 → 2; p99 5/9/7 → 7;
 * acquisitions 10/30/20 → 20; commands/acq 4/6/5 → 5. Sums: overlaps 0+1+2 = 3, lost 1+0+0 = 1,
 * errors 1+2+3 = 6, timeouts 2+2+2 = 6, crashed 0+0+1 = 1, acked 10+30+20 = 60.
 * Repeat 2 failed one expectation: the combined one fails with the repeat named. The third
 * repeat has no handoff samples: its 0s do not drag the handoff median down. */
static void test_combine(void **state)
{
    static lb_expect_failure fail2 = {.path = "throughput_per_s", .value = 300,
                                      .bound = "[2000, 2500]"};
    lb_summary r[3] = {
        {.name = "v", .algorithm = "token", .clients = 5, .throughput_per_s = 100,
         .acquisitions = 10, .errors = 1, .timeouts = 2, .overlaps = 0,
         .acquire_ms = {.count = 10, .p50 = 1, .p99 = 5},
         .handoff_ms = {.count = 9, .p50 = 0.2},
         .counter = {.acked = 10, .lost_updates = 1}, .redis = {.commands_per_acquisition = 4},
         .fairness = {.nclients = 1, .per_client = first_clients}, .nbins = 2,
         .timeline = first_bins, .expect = {.passed = true}},
        {.name = "v", .throughput_per_s = 300, .acquisitions = 30, .errors = 2, .timeouts = 2,
         .overlaps = 1, .acquire_ms = {.count = 30, .p50 = 3, .p99 = 9},
         .handoff_ms = {.count = 29, .p50 = 0.4},
         .counter = {.acked = 30}, .redis = {.commands_per_acquisition = 6},
         .expect = {.passed = false, .nfailures = 1, .failures = &fail2}},
        {.name = "v", .throughput_per_s = 200, .acquisitions = 20, .errors = 3, .timeouts = 2,
         .overlaps = 2, .crashed_clients = 1, .acquire_ms = {.count = 20, .p50 = 2, .p99 = 7},
         .counter = {.acked = 20}, .redis = {.commands_per_acquisition = 5},
         .expect = {.passed = true}},
    };
    lb_summary c;
    assert_int_equal(lb_metrics_combine(r, 3, &c), 0);
    assert_string_equal(c.name, "v");
    assert_string_equal(c.algorithm, "token");
    assert_int_equal(c.clients, 5);
    assert_close(c.throughput_per_s, 200, 0);
    assert_close(c.acquire_ms.p50, 2, 0);
    assert_close(c.acquire_ms.p99, 7, 0);
    assert_int_equal(c.acquire_ms.count, 20);
    assert_int_equal(c.acquisitions, 20);
    assert_close(c.redis.commands_per_acquisition, 5, 0);
    assert_close(c.handoff_ms.p50, 0.3, 1e-12);
    assert_int_equal(c.overlaps, 3);
    assert_int_equal(c.counter.lost_updates, 1);
    assert_int_equal(c.counter.acked, 60);
    assert_int_equal(c.errors, 6);
    assert_int_equal(c.timeouts, 6);
    assert_int_equal(c.crashed_clients, 1);
    assert_int_equal(c.repeats.n, 3);
    assert_close(lb_metrics_repeats(&c, "throughput_per_s")[1], 300, 0);
    assert_close(lb_metrics_repeats(&c, "acquire_ms.p50")[2], 2, 0);
    assert_close(lb_metrics_repeats(&c, "acquire_ms.p99")[0], 5, 0);
    assert_close(lb_metrics_repeats(&c, "redis.commands_per_acquisition")[1], 6, 0);
    assert_false(c.expect.passed);
    assert_int_equal(c.expect.nfailures, 1);
    assert_string_equal(c.expect.failures[0].path, "throughput_per_s");
    assert_string_equal(c.expect.failures[0].bound, "repeat 2: [2000, 2500]");
    assert_int_equal(c.fairness.nclients, 1);
    assert_ptr_not_equal(c.fairness.per_client, first_clients);   /* a copy: freed separately */
    assert_string_equal(c.fairness.per_client[0].group, "g");
    assert_int_equal(c.nbins, 2);
    assert_int_equal(c.timeline[0].acquisitions, 4);
    lb_summary_free(&c);
    assert_int_equal(lb_metrics_combine(r, 0, &c), -1);

    /* one repeat (no --repeat): the same figures, no per-repeat lists, bounds as they were */
    assert_int_equal(lb_metrics_combine(&r[1], 1, &c), 0);
    assert_close(c.throughput_per_s, 300, 0);
    assert_int_equal(c.overlaps, 1);
    assert_int_equal(c.repeats.n, 0);
    assert_null(c.repeats.values);
    assert_null(lb_metrics_repeats(&c, "throughput_per_s"));
    assert_false(c.expect.passed);
    assert_string_equal(c.expect.failures[0].bound, "[2000, 2500]");
    lb_summary_free(&c);
}

/* A repeat without acquisitions: its acquire p50/p99 are NAN in the per-repeat lists (written
 * as null), not 0; the combined figures are medians over the two repeats that have samples:
 * p50 (1 + 3) / 2 = 2, p99 (5 + 9) / 2 = 7; the count is the median of 10, 0, 20. */
static void test_combine_repeat_without_acquisitions(void **state)
{
    lb_summary r[3] = {
        {.name = "v", .throughput_per_s = 100, .acquisitions = 10,
         .acquire_ms = {.count = 10, .p50 = 1, .p99 = 5}, .expect = {.passed = true}},
        {.name = "v", .throughput_per_s = 0, .acquisitions = 0, .expect = {.passed = true}},
        {.name = "v", .throughput_per_s = 200, .acquisitions = 20,
         .acquire_ms = {.count = 20, .p50 = 3, .p99 = 9}, .expect = {.passed = true}},
    };
    lb_summary c;
    assert_int_equal(lb_metrics_combine(r, 3, &c), 0);
    assert_int_equal(c.repeats.n, 3);
    assert_close(lb_metrics_repeats(&c, "acquire_ms.p50")[0], 1, 0);
    assert_true(isnan(lb_metrics_repeats(&c, "acquire_ms.p50")[1]));
    assert_true(isnan(lb_metrics_repeats(&c, "acquire_ms.p99")[1]));
    assert_close(lb_metrics_repeats(&c, "acquire_ms.p99")[2], 9, 0);
    /* a real figure: no acquisitions/s */
    assert_close(lb_metrics_repeats(&c, "throughput_per_s")[1], 0, 0);
    assert_close(c.acquire_ms.p50, 2, 0);
    assert_close(c.acquire_ms.p99, 7, 0);
    assert_int_equal(c.acquire_ms.count, 10);
    lb_summary_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acq_log),
        cmocka_unit_test(test_acq_merge),
        cmocka_unit_test(test_acq_merge_by_end),
        cmocka_unit_test(test_latency_and_totals),
        cmocka_unit_test(test_driver_as_recorded),
        cmocka_unit_test(test_empty_run),
        cmocka_unit_test(test_lost_updates),
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_handoff),
        cmocka_unit_test(test_handoff_before_release_returns),
        cmocka_unit_test(test_timeline),
        cmocka_unit_test(test_timeline_overlap),
        cmocka_unit_test(test_holders_from_left),
        cmocka_unit_test(test_one_meter_for_all_clients),
        cmocka_unit_test(test_value_paths),
        cmocka_unit_test(test_expectations),
        cmocka_unit_test(test_expect_equal_tolerance),
        cmocka_unit_test(test_incomplete_run_does_not_pass),
        cmocka_unit_test(test_combine),
        cmocka_unit_test(test_combine_repeat_without_acquisitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
