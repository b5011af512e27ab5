/* test_fields.c -- the table of summary figures (fields.h) is the one vocabulary.
 *
 * The summary a hand-made run gives, written by results.c and parsed back, has exactly the
 * table's figures as its numeric leaves, and the table's listed figures under "repeats"; the
 * table's rules say what SPEC sections 5 and 8 say. No servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fields.h"
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
} run_fixture;

static void record(lb_client_result *c, int64_t call, int64_t end, int64_t released,
                   lb_result r)
{
    lb_acquisition *a = lb_acq_log_append(&c->log);
    assert_non_null(a);
    *a = (lb_acquisition){.call_us = call, .end_us = end,
                          .left_us = r == LB_RES_OK ? released : -1,
                          .released_us = r == LB_RES_OK ? released : -1, .result = (uint8_t)r,
                          .end = (uint8_t)(r == LB_RES_OK ? LB_END_RELEASED : LB_END_NONE),
                          .attempts = 1, .commands = 2};
    c->commands += 2;
    if (r == LB_RES_OK) {
        c->acquisitions++;
        c->wait_sum_us += end - call;
        lb_hist_record(c->acquire_hist, end - call);
    } else {
        c->timeouts++;
        lb_hist_record(c->timeout_hist, end - call);
    }
}

/* Two clients, three holds in turn and one timeout: every block has samples, so every figure
 * is a number. */
static void build_run(run_fixture *x)
{
    memset(x, 0, sizeof *x);
    x->run = (lb_run_result){.complete = true, .elapsed_us = 300000, .nkeys = 1, .nclients = 2,
                             .clients = x->cl, .counter_actual = 3, .faults_applied = 1,
                             .driver = LB_DRIVER_LOOP};
    for (int i = 0; i < 2; i++) {
        x->cl[i] = (lb_client_result){.client = i, .acquire_hist = lb_hist_new(),
                                      .timeout_hist = lb_hist_new()};
        assert_non_null(x->cl[i].acquire_hist);
        assert_non_null(x->cl[i].timeout_hist);
    }
    record(&x->cl[0], 0, 1000, 2000, LB_RES_OK);
    record(&x->cl[1], 100, 2500, 4000, LB_RES_OK);
    record(&x->cl[0], 2100, 4600, 6000, LB_RES_OK);
    record(&x->cl[1], 4100, 104100, -1, LB_RES_TIMEOUT);
    x->cl[0].cs_acked = x->cl[0].cs_attempted = 2;
    x->cl[1].cs_acked = x->cl[1].cs_attempted = 1;
}

static void free_run(run_fixture *x)
{
    for (int i = 0; i < 2; i++) {
        lb_hist_free(x->cl[i].acquire_hist);
        lb_hist_free(x->cl[i].timeout_hist);
        lb_acq_log_free(&x->cl[i].log);
    }
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_is_the_table),
        cmocka_unit_test(test_rules_follow_the_spec),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
