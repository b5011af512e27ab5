/* test_fields.c -- the table of summary figures (fields.h) is the one vocabulary.
 *
 * The summary a hand-made run gives, written by results.c and parsed back, has exactly the
 * table's figures as its numeric leaves, and the table's listed figures under "repeats"; the
 * table's rules say what SPEC sections 5 and 8 say; and a rule changed in the table changes
 * what metrics and the gate both do. No servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fields.h"
#include "gate.h"
#include "metrics.h"
#include "results.h"
#include "scenario.h"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/lb-fields-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static lb_scenario *load(const char *json)
{
    lb_scenario *s = NULL;
    char err[512] = "";
    if (lb_scenario_load_buffer("t.json", json, strlen(json), NULL, &s, err, sizeof err) != 0)
        fail_msg("scenario: %s", err);
    return s;
}

/* ---- a run by hand -------------------------------------------------------------------------- */

typedef struct {
    lb_run_result    run;
    lb_client_result cl[2];
    lb_meter         meter;   /* both clients', as one loop thread's */
} run_fixture;

static void record(run_fixture *x, int client, int64_t call, int64_t end, int64_t released,
                   lb_result r)
{
    lb_client_result *c = &x->cl[client];
    lb_acquisition *a = lb_acq_log_append(&x->meter.log);
    assert_non_null(a);
    *a = (lb_acquisition){.intended_us = call - 20, .call_us = call, .end_us = end, .client = client,
                          .left_us = r == LB_RES_OK ? released : -1,
                          .released_us = r == LB_RES_OK ? released : -1, .result = (uint8_t)r,
                          .end = (uint8_t)(r == LB_RES_OK ? LB_END_RELEASED : LB_END_NONE),
                          .attempts = 1, .commands = 2};
    c->commands += 2;
    if (r == LB_RES_OK) {
        c->acquisitions++;
        c->wait_sum_us += end - call;
        lb_hist_record(x->meter.acquire_hist, end - call + 20);
        lb_hist_record(x->meter.service_hist, end - call);
    } else {
        c->timeouts++;
        lb_hist_record(x->meter.timeout_hist, end - call);
    }
    lb_hist_record(x->meter.lag_hist, 20);
    if (end - call + 20 > c->wait_max_us)
        c->wait_max_us = end - call + 20;
}

/* Two clients, three holds in turn and one timeout: every block has samples, so every figure
 * is a number. */
static void build_run(run_fixture *x)
{
    memset(x, 0, sizeof *x);
    x->run = (lb_run_result){.complete = true, .elapsed_us = 300000, .nkeys = 1, .nclients = 2,
                             .clients = x->cl, .nmeters = 1, .meters = &x->meter,
                             .counter_actual = 3, .faults_applied = 1,
                             .driver = LB_DRIVER_LOOP, .open_loop = true};
    for (int i = 0; i < 2; i++)
        x->cl[i] = (lb_client_result){.client = i};
    assert_int_equal(lb_meter_init(&x->meter, 2, true), 0);  /* open loop: every block has samples */
    record(x, 0, 0, 1000, 2000, LB_RES_OK);
    record(x, 1, 100, 2500, 4000, LB_RES_OK);
    record(x, 0, 2100, 4600, 6000, LB_RES_OK);
    record(x, 1, 4100, 104100, -1, LB_RES_TIMEOUT);
    x->cl[0].cs_acked = x->cl[0].cs_attempted = 2;
    x->cl[1].cs_acked = x->cl[1].cs_attempted = 1;
}

static void free_run(run_fixture *x)
{
    lb_meter_free(&x->meter);
}

/* ---- walking the JSON ----------------------------------------------------------------------- */

/* Keys of a VARIANT that are not figures: its description, and the structures around the
 * figures (checked on their own). */
static bool not_a_figure(const char *path)
{
    static const char *const keys[] = {"name", "complete", "algorithm", "wait", "backoff",
                                       "driver", "fairness.per_client", "repeats", "expect"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(path, keys[i]) == 0)
            return true;
    return false;
}

typedef struct {
    char   paths[LB_FIELDS_MAX * 2][96];
    size_t n;
} leaves;

/* The dotted paths of the leaves below obj (objects walked, anything else a leaf), skipping
 * the keys pass_over() names. */
static void walk(json_t *obj, const char *prefix, bool (*pass_over)(const char *), leaves *out)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        char path[96];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
        if (pass_over && pass_over(path))
            continue;
        if (json_is_object(v)) {
            walk(v, path, pass_over, out);
            continue;
        }
        assert_true(out->n < sizeof out->paths / sizeof out->paths[0]);
        snprintf(out->paths[out->n++], sizeof out->paths[0], "%s", path);
    }
}

static bool has_leaf(const leaves *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->paths[i], path) == 0)
            return true;
    return false;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* Every numeric leaf of a variant's summary.json (a real one: metrics on a hand-made run, two
 * repeats combined, written by results.c) is a figure of the table, of the table's type, in the
 * table's order; every figure of the table is there; metrics can look each one up. Under
 * "repeats" are exactly the listed figures, one value per repeat. */
static void test_summary_is_the_table(void **state)
{
    (void)state;
    lb_scenario *sc = load("{\"name\": \"t\", \"clients\": [{\"name\": \"w\", \"count\": 2}]}");
    run_fixture x;
    build_run(&x);
    lb_summary r[2], c;
    assert_int_equal(lb_metrics_compute(sc, &x.run, &r[0]), 0);
    assert_int_equal(lb_metrics_compute(sc, &x.run, &r[1]), 0);
    assert_int_equal(lb_metrics_combine(r, 2, &c), 0);
    char err[256];
    assert_int_equal(lb_results_write_summary(tmp_path("v"), &c, err, sizeof err), 0);
    json_error_t je;
    json_t *doc = json_load_file(tmp_path("v/summary.json"), 0, &je);
    if (!doc)
        fail_msg("summary.json: %s", je.text);

    leaves figures = {.n = 0}, listed = {.n = 0};
    walk(doc, "", not_a_figure, &figures);
    walk(json_object_get(doc, "repeats"), "", NULL, &listed);
    size_t nf, nlisted = 0;
    const lb_field *f = lb_fields(&nf);
    for (size_t i = 0; i < figures.n; i++)
        if (!lb_field_find(figures.paths[i]))
            fail_msg("summary.json has %s, which the table does not", figures.paths[i]);
    assert_int_equal(figures.n, nf);
    for (size_t k = 0; k < nf; k++) {
        double value;
        if (strcmp(figures.paths[k], f[k].path) != 0)
            fail_msg("figure %zu: %s in summary.json, %s in the table", k, figures.paths[k],
                     f[k].path);
        if (!lb_metrics_value(&c, f[k].path, &value))
            fail_msg("lb_metrics_value does not know %s", f[k].path);
        nlisted += f[k].listed;
        if (f[k].listed != has_leaf(&listed, f[k].path))
            fail_msg("%s: listed %d in the table, under repeats %d", f[k].path, f[k].listed,
                     !f[k].listed);
    }
    assert_int_equal(listed.n, nlisted);
    /* the types: integers where the table says so, every figure present as a number */
    for (size_t k = 0; k < nf; k++) {
        json_t *v = doc;
        char path[96], *save = NULL;
        snprintf(path, sizeof path, "%s", f[k].path);
        for (char *seg = strtok_r(path, ".", &save); seg; seg = strtok_r(NULL, ".", &save))
            v = json_object_get(v, seg);
        if (!json_is_number(v) || json_is_integer(v) != f[k].is_int)
            fail_msg("%s: expected %s", f[k].path, f[k].is_int ? "an integer" : "a real");
    }
    json_decref(doc);
    lb_summary_free(&c);
    lb_summary_free(&r[0]);
    lb_summary_free(&r[1]);
    free_run(&x);
    lb_scenario_free(sc);
}

/* The table says what the SPEC says: section 5's sums and expectable figures, section 8's
 * correctness and performance figures with their directions; and the gate can test every
 * performance figure against its repeats, because each one is listed. */
static void test_rules_follow_the_spec(void **state)
{
    (void)state;
    static const char *const sums[] = {"overlaps", "counter.lost_updates", "errors", "timeouts",
                                       "crashed_clients"};
    static const char *const zero[] = {"errors", "counter.lost_updates", "overlaps"};
    static const struct { const char *path; lb_gate_check check; } perf[] = {
        {"throughput_per_s", LB_CHECK_HIGHER}, {"acquire_ms.p50", LB_CHECK_LOWER},
        {"acquire_ms.p99", LB_CHECK_LOWER}, {"redis.commands_per_acquisition", LB_CHECK_LOWER}};
    for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++)
        assert_int_equal(lb_field_find(sums[i])->repeat, LB_REPEAT_SUM);
    size_t nf, nzero = 0, nperf = 0;
    const lb_field *f = lb_fields(&nf);
    for (size_t k = 0; k < nf; k++) {
        nzero += f[k].gate == LB_CHECK_ZERO;
        nperf += f[k].gate == LB_CHECK_HIGHER || f[k].gate == LB_CHECK_LOWER;
        if (f[k].gate == LB_CHECK_HIGHER || f[k].gate == LB_CHECK_LOWER) {
            assert_true(f[k].listed);
            assert_int_equal(f[k].repeat, LB_REPEAT_MEDIAN);
            assert_true(f[k].threshold_pct > 0);
        }
        if (f[k].gate == LB_CHECK_ZERO)   /* a rise in any one repeat must show */
            assert_int_equal(f[k].repeat, LB_REPEAT_SUM);
        assert_ptr_equal(lb_field_find(f[k].path), &f[k]);
        assert_int_equal(lb_field_index(&f[k]), k);
    }
    assert_int_equal(nzero, sizeof zero / sizeof zero[0]);
    for (size_t i = 0; i < nzero; i++)
        assert_int_equal(lb_field_find(zero[i])->gate, LB_CHECK_ZERO);
    assert_int_equal(nperf, sizeof perf / sizeof perf[0]);
    for (size_t i = 0; i < nperf; i++)
        assert_int_equal(lb_field_find(perf[i].path)->gate, perf[i].check);
    assert_null(lb_field_find("acquire_ms"));
    assert_null(lb_field_find("timeout_ms.p99"));   /* not a summary figure (SPEC section 6) */
}

/* ---- one rule, two readers ------------------------------------------------------------------ */

/* The rows this test changes, and their rules as the table has them. */
static lb_field *throughput_row, *overlaps_row;
static lb_repeat_rule throughput_rule, overlaps_rule;

static int save_rules(void **state)
{
    (void)state;
    /* the table is not const underneath: changing a rule here is what a change in fields.c is */
    throughput_row = (lb_field *)lb_field_find("throughput_per_s");
    overlaps_row = (lb_field *)lb_field_find("overlaps");
    throughput_rule = throughput_row->repeat;
    overlaps_rule = overlaps_row->repeat;
    return 0;
}

static int restore_rules(void **state)
{
    (void)state;
    throughput_row->repeat = throughput_rule;
    overlaps_row->repeat = overlaps_rule;
    return 0;
}

/* Three repeats of variant "v": throughput 100, 200, 600; overlaps 0, 0, overlap_last. */
static void three_repeats(lb_summary r[3], int64_t overlap_last)
{
    static const double tput[3] = {100, 200, 600};
    for (int i = 0; i < 3; i++)
        r[i] = (lb_summary){.name = "v", .algorithm = "token", .wait = "poll",
                            .backoff = "exponential", .driver = "loop", .complete = true,
                            .clients = 2, .acquisitions = 10, .throughput_per_s = tput[i],
                            .acquire_ms = {.count = 10, .p50 = 1, .p99 = 2},
                            .redis = {.commands = 40, .commands_per_acquisition = 4},
                            .overlaps = i == 2 ? overlap_last : 0, .expect = {.passed = true}};
}

/* The repeats as the gate's rounds: side/r1 … side/r3, one run's results each. */
static void write_rounds(const lb_scenario *sc, const char *side, const lb_summary r[3])
{
    char err[256], dir[256];
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/%s/r%d", tmpdir, side, i + 1);
        if (lb_results_write_top(dir, sc, &r[i], 1, NULL, "2024-05-01T10:00:00Z", true, err,
                                 sizeof err) != 0)
            fail_msg("%s", err);
    }
}

/* The gate on two folders of rounds, its table sent to /dev/null, its --json read back. */
static json_t *gate_rounds(const char *base, const char *cur, int *rc)
{
    char b[256], c[256], out[256];
    snprintf(b, sizeof b, "%s/%s", tmpdir, base);
    snprintf(c, sizeof c, "%s/%s", tmpdir, cur);
    snprintf(out, sizeof out, "%s/gate.json", tmpdir);
    char *argv[] = {"gate", b, c, "--json", out, NULL};
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    dup2(null, 1);
    *rc = lb_gate_main(5, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(null);
    json_error_t je;
    json_t *doc = json_load_file(out, 0, &je);
    if (!doc)
        fail_msg("gate.json: %s", je.text);
    return doc;
}

/* The gate's row for metric of variant v, or NULL. */
static json_t *gate_row(json_t *doc, const char *metric)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "results"), i, r)
        if (strcmp(json_string_value(json_object_get(r, "metric")), metric) == 0)
            return r;
    return NULL;
}

/* A repeat rule is read from the table by metrics (combining --repeat) and by the gate (folding
 * rounds, and taking a side's figure from its repeats) alike: as the table has it, throughput
 * is the median (200) and overlaps the sum (1, a new overlap the gate fails); with the two rules
 * swapped in the table, both readers give a throughput of 900 and overlaps of 0 (and the gate
 * passes). Neither keeps a rule of its own. */
static void test_a_rule_change_reaches_metrics_and_gate(void **state)
{
    (void)state;
    lb_scenario *sc = load("{\"name\": \"t\", \"clients\": [{\"name\": \"w\", \"count\": 2}]}");
    lb_summary base[3], cur[3], c;
    three_repeats(base, 0);
    three_repeats(cur, 1);
    write_rounds(sc, "base", base);
    write_rounds(sc, "cur", cur);

    for (int swapped = 0; swapped < 2; swapped++) {
        if (swapped) {
            throughput_row->repeat = LB_REPEAT_SUM;
            overlaps_row->repeat = LB_REPEAT_MEDIAN;
        }
        double want_tput = swapped ? 900 : 200;
        int64_t want_overlaps = swapped ? 0 : 1;

        assert_int_equal(lb_metrics_combine(cur, 3, &c), 0);
        assert_true(c.throughput_per_s == want_tput);
        assert_int_equal(c.overlaps, want_overlaps);
        lb_summary_free(&c);

        int rc;
        json_t *doc = gate_rounds("base", "cur", &rc);
        json_t *tput = gate_row(doc, "throughput_per_s"), *ov = gate_row(doc, "overlaps");
        assert_non_null(tput);
        assert_true(json_number_value(json_object_get(tput, "current")) == want_tput);
        assert_true(json_number_value(json_object_get(tput, "baseline")) == want_tput);
        if (swapped) {
            assert_null(ov);
            assert_int_equal(rc, LB_GATE_PASS);
        } else {
            assert_non_null(ov);
            assert_true(json_number_value(json_object_get(ov, "current")) == 1);
            assert_int_equal(rc, LB_GATE_REGRESSION);
        }
        json_decref(doc);
    }
    lb_scenario_free(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_is_the_table),
        cmocka_unit_test(test_rules_follow_the_spec),
        cmocka_unit_test_setup_teardown(test_a_rule_change_reaches_metrics_and_gate, save_rules,
                                        restore_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
