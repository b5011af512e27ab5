/* test_gate.c -- `lockbench gate` end to end, through lb_gate_main.
 *
 * Inputs start from the hand-written fixtures in harness/test/fixtures/gate/ (base.json: two
 * variants, no repeats; malformed.json, missing-key.json, incomplete.json: bad inputs). Each
 * test changes a copy of base.json in a temporary directory -- halving a throughput, adding an
 * overlap, attaching repeats -- so every case states only what differs from the baseline.
 * stdout and stderr of each gate run are captured to check the table and the error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fields.h"
#include "gate.h"

static char tmpdir[64];
static char out_text[65536], err_text[65536];

/* ---- helpers -------------------------------------------------------------------------------- */

/* Fixtures sit beside this file; tests run from the repository root (run-tests.sh), which is
 * where __FILE__'s relative path starts. LB_GATE_FIXTURES overrides. */
static const char *fixture(const char *name)
{
    static char buf[32][PATH_MAX];
    static unsigned k;
    char *p = buf[k++ % 32];
    const char *dir = getenv("LB_GATE_FIXTURES");
    const char *slash = strrchr(__FILE__, '/');
    if (dir)
        snprintf(p, PATH_MAX, "%s/%s", dir, name);
    else if (slash)
        snprintf(p, PATH_MAX, "%.*s/fixtures/gate/%s", (int)(slash - __FILE__), __FILE__, name);
    else
        snprintf(p, PATH_MAX, "fixtures/gate/%s", name);
    return p;
}

static const char *tmp_path(const char *name)
{
    static char buf[32][PATH_MAX];
    static unsigned k;
    char *p = buf[k++ % 32];
    snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
    return p;
}

static json_t *load_base(void)
{
    json_error_t e;
    json_t *root = json_load_file(fixture("base.json"), 0, &e);
    if (!root)
        fail_msg("%s:%d:%d: %s", fixture("base.json"), e.line, e.column, e.text);
    return root;
}

static json_t *variant(json_t *root, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "variants"), i, v)
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return v;
    fail_msg("no variant %s", name);
    return NULL;
}

/* Sets obj's dotted path to value (stolen), creating objects on the way. */
static void set_path(json_t *obj, const char *path, json_t *value)
{
    char key[128];
    size_t len = strcspn(path, ".");
    snprintf(key, sizeof key, "%.*s", (int)len, path);
    if (path[len] == '\0') {
        json_object_set_new(obj, key, value);
        return;
    }
    json_t *next = json_object_get(obj, key);
    if (!next) {
        next = json_object();
        json_object_set_new(obj, key, next);
    }
    set_path(next, path + len + 1, value);
}

static void set_num(json_t *root, const char *var, const char *path, double v)
{
    set_path(variant(root, var), path, json_real(v));
}

/* Attaches per-repeat values and, as a run does, their median as the headline figure. */
static void set_repeats(json_t *root, const char *var, const char *path, const double *vals,
                        size_t n, double median)
{
    char where[160];
    json_t *list = json_array();
    for (size_t k = 0; k < n; k++)
        json_array_append_new(list, json_real(vals[k]));
    snprintf(where, sizeof where, "repeats.%s", path);
    set_path(variant(root, var), where, list);
    set_num(root, var, path, median);
}

/* Writes root (consumed) into the temporary directory; returns the path. */
static const char *save(json_t *root, const char *name)
{
    const char *p = tmp_path(name);
    assert_int_equal(json_dump_file(root, p, JSON_INDENT(2)), 0);
    json_decref(root);
    return p;
}

static void slurp(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Runs `gate ARGS...` (NULL-terminated) with stdout and stderr captured into out_text and
 * err_text; returns the exit code. */
static int run_gate(const char *first, ...)
{
    char *argv[32] = {"gate"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);

    const char *out = tmp_path("stdout.txt"), *err = tmp_path("stderr.txt");
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = lb_gate_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fo);
    close(fe);
    close(saved_out);
    close(saved_err);
    slurp(out, out_text, sizeof out_text);
    slurp(err, err_text, sizeof err_text);
    return rc;
}

#define assert_contains(hay, needle)                                                          \
    do {                                                                                      \
        if (!strstr((hay), (needle)))                                                         \
            fail_msg("expected \"%s\" in:\n%s", (needle), (hay));                             \
    } while (0)

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    if (!doc)
        fail_msg("%s:%d:%d: %s", path, e.line, e.column, e.text);
    return doc;
}

/* The --json result row for (variant, metric). */
static json_t *result(json_t *doc, const char *var, const char *metric)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "results"), i, r)
        if (strcmp(json_string_value(json_object_get(r, "variant")), var) == 0 &&
            strcmp(json_string_value(json_object_get(r, "metric")), metric) == 0)
            return r;
    fail_msg("no result row %s %s", var, metric);
    return NULL;
}

static const char *verdict(json_t *row)
{
    return json_string_value(json_object_get(row, "verdict"));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_gate.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- pass / fail on performance ------------------------------------------------------------- */

static void test_identical_inputs_pass(void **state)
{
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), NULL), LB_GATE_PASS);
    assert_contains(out_text, "PASS");
    assert_contains(out_text, "token-poll");
    assert_contains(out_text, "acquire_ms.p99");
    assert_string_equal(err_text, "");
}

static void test_directory_input(void **state)
{
    assert_int_equal(mkdir(tmp_path("run"), 0755), 0);
    const char *file = save(load_base(), "run/summary.json");
    assert_non_null(file);
    assert_int_equal(run_gate(tmp_path("run"), fixture("base.json"), NULL), LB_GATE_PASS);
}

static void test_throughput_halved_fails(void **state)
{
    json_t *cur = load_base();
    set_num(cur, "token-poll", "throughput_per_s", 500);
    const char *c = save(cur, "halved.json");
    assert_int_equal(run_gate(fixture("base.json"), c, NULL), LB_GATE_REGRESSION);
    assert_contains(out_text, "-50.0%");
    assert_contains(out_text, "REGRESSION (weak)");
    assert_contains(out_text, "weak: fewer than 5 repeats");
    assert_contains(out_text, "FAIL: scenario gate-fixture, 1 regression: token-poll throughput_per_s");
}

static void test_improvement_passes(void **state)
{
    json_t *cur = load_base();
    set_num(cur, "token-poll", "throughput_per_s", 2000);
    set_num(cur, "token-poll", "acquire_ms.p99", 5);
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "faster.json"), NULL), LB_GATE_PASS);
    assert_contains(out_text, "improved");
}

static const double base_tput[7] = {1000, 1040, 980, 1010, 995, 1025, 970};

static void test_two_percent_noise_passes(void **state)
{
    json_t *base = load_base(), *cur = load_base();
    double slower[7];
    for (int k = 0; k < 7; k++)
        slower[k] = base_tput[k] * 0.98;
    set_repeats(base, "token-poll", "throughput_per_s", base_tput, 7, 1000);
    set_repeats(cur, "token-poll", "throughput_per_s", slower, 7, 980);
    const char *b = save(base, "noisy-base.json"), *c = save(cur, "noisy-cur.json");
    assert_int_equal(run_gate(b, c, "--json", tmp_path("noisy.json"), NULL), LB_GATE_PASS);

    json_t *doc = load_json(tmp_path("noisy.json"));
    json_t *row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "ok");
    assert_true(json_is_false(json_object_get(row, "weak")));
    assert_true(json_is_number(json_object_get(row, "p_value")));
    assert_true(fabs(json_number_value(json_object_get(row, "change_pct")) + 2.0) < 1e-9);
    json_decref(doc);
}

/* Medians 11 -> 14.5 (+31.8 %, past the 25 % threshold) but the samples interleave:
 * U = 11 of 25, exact p = 0.69. */
static const double p99_base_wide[5] = {10, 14, 9, 30, 11};
static const double p99_cur_wide[5] = {14.5, 9.5, 35, 8.8, 15};

static void test_p99_past_threshold_not_significant_passes(void **state)
{
    json_t *base = load_base(), *cur = load_base();
    set_repeats(base, "token-poll", "acquire_ms.p99", p99_base_wide, 5, 11);
    set_repeats(cur, "token-poll", "acquire_ms.p99", p99_cur_wide, 5, 14.5);
    const char *b = save(base, "wide-base.json"), *c = save(cur, "wide-cur.json");
    assert_int_equal(run_gate(b, c, "--json", tmp_path("wide.json"), NULL), LB_GATE_PASS);
    assert_contains(out_text, "noise");

    json_t *doc = load_json(tmp_path("wide.json"));
    json_t *row = result(doc, "token-poll", "acquire_ms.p99");
    assert_string_equal(verdict(row), "noise");
    assert_true(json_number_value(json_object_get(row, "p_value")) > 0.05);
    assert_true(json_number_value(json_object_get(row, "change_pct")) > 25);
    json_decref(doc);
}

/* Every current repeat is slower than every baseline one: U = 0, exact p = 2/252 = 0.0079. */
static void test_p99_significant_regression_fails(void **state)
{
    const double b5[5] = {10, 10.5, 9.8, 10.2, 10.1}, c5[5] = {14, 14.5, 13.9, 14.2, 15};
    json_t *base = load_base(), *cur = load_base();
    set_repeats(base, "token-poll", "acquire_ms.p99", b5, 5, 10.1);
    set_repeats(cur, "token-poll", "acquire_ms.p99", c5, 5, 14.2);
    const char *b = save(base, "tight-base.json"), *c = save(cur, "tight-cur.json");
    assert_int_equal(run_gate(b, c, "--json", tmp_path("tight.json"), NULL), LB_GATE_REGRESSION);

    json_t *doc = load_json(tmp_path("tight.json"));
    json_t *row = result(doc, "token-poll", "acquire_ms.p99");
    assert_string_equal(verdict(row), "regression");
    assert_true(json_is_false(json_object_get(row, "weak")));
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 2.0 / 252) < 1e-9);
    assert_true(json_is_false(json_object_get(doc, "passed")));
    json_decref(doc);
}

/* Holm over the metrics tested in one run, worked by hand. token-poll's p99 rounds are fully
 * separated (p = 2/252), its throughput nearly (998 beats two baseline repeats: U = 2,
 * p = 8/252), and its p50 repeats all tie (p = 1); the other metrics have no repeats and are not
 * tested. Three tests: sorted, 3 x 2/252 = 0.0238 < 0.05, the p99 regresses; 2 x 8/252 = 0.0635,
 * so the throughput, 49.5 % down, is noise; the p50 gets max(0.0635, 1) = 1. Without the p50's
 * repeats, two tests: 2 x 2/252 = 0.0159, then max(0.0159, 8/252 = 0.0317): both regress. */
static void test_holm_steps_down_over_the_metrics(void **state)
{
    const double p99_b[5] = {10, 10.5, 9.8, 10.2, 10.1}, p99_c[5] = {14, 14.5, 13.9, 14.2, 15};
    const double tput_b[5] = {1000, 1010, 990, 1005, 995}, tput_c[5] = {500, 505, 495, 510, 998};
    const double p50[5] = {2, 2, 2, 2, 2};
    json_t *base = load_base(), *cur = load_base();
    set_repeats(base, "token-poll", "acquire_ms.p99", p99_b, 5, 10.1);
    set_repeats(cur, "token-poll", "acquire_ms.p99", p99_c, 5, 14.2);
    set_repeats(base, "token-poll", "throughput_per_s", tput_b, 5, 1000);
    set_repeats(cur, "token-poll", "throughput_per_s", tput_c, 5, 505);
    const char *b2 = save(json_deep_copy(base), "holm2-base.json");
    const char *c2 = save(json_deep_copy(cur), "holm2-cur.json");
    set_repeats(base, "token-poll", "acquire_ms.p50", p50, 5, 2);
    set_repeats(cur, "token-poll", "acquire_ms.p50", p50, 5, 2);
    const char *b3 = save(base, "holm3-base.json"), *c3 = save(cur, "holm3-cur.json");

    assert_int_equal(run_gate(b3, c3, "--json", tmp_path("holm3.json"), NULL),
                     LB_GATE_REGRESSION);
    assert_contains(out_text, "1 regression: token-poll acquire_ms.p99");
    json_t *doc = load_json(tmp_path("holm3.json"));
    assert_int_equal(json_integer_value(json_object_get(doc, "tests")), 3);
    json_t *row = result(doc, "token-poll", "acquire_ms.p99");
    assert_string_equal(verdict(row), "regression");
    assert_true(fabs(json_number_value(json_object_get(row, "p_holm")) - 6.0 / 252) < 1e-12);
    row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "noise");
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 8.0 / 252) < 1e-12);
    assert_true(fabs(json_number_value(json_object_get(row, "p_holm")) - 16.0 / 252) < 1e-12);
    row = result(doc, "token-poll", "acquire_ms.p50");
    assert_string_equal(verdict(row), "ok");
    assert_true(json_number_value(json_object_get(row, "p_holm")) == 1);
    assert_true(json_is_null(json_object_get(result(doc, "legacy-setnx", "acquire_ms.p50"),
                                             "p_holm")));
    json_decref(doc);

    assert_int_equal(run_gate(b2, c2, "--json", tmp_path("holm2.json"), NULL),
                     LB_GATE_REGRESSION);
    assert_contains(out_text, "2 regressions: token-poll throughput_per_s, token-poll "
                              "acquire_ms.p99");
    doc = load_json(tmp_path("holm2.json"));
    assert_int_equal(json_integer_value(json_object_get(doc, "tests")), 2);
    row = result(doc, "token-poll", "acquire_ms.p99");
    assert_true(fabs(json_number_value(json_object_get(row, "p_holm")) - 4.0 / 252) < 1e-12);
    row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "regression");
    assert_true(fabs(json_number_value(json_object_get(row, "p_holm")) - 8.0 / 252) < 1e-12);
    json_decref(doc);
}

/* Four repeats are too few for the test: the threshold alone decides, and says so. */
static void test_four_repeats_is_weak(void **state)
{
    const double b4[4] = {10, 14, 9, 30}, c4[4] = {15, 16, 35, 14};
    json_t *base = load_base(), *cur = load_base();
    set_repeats(base, "token-poll", "acquire_ms.p99", b4, 4, 12);
    set_repeats(cur, "token-poll", "acquire_ms.p99", c4, 4, 15.5);
    const char *b = save(base, "four-base.json"), *c = save(cur, "four-cur.json");
    assert_int_equal(run_gate(b, c, NULL), LB_GATE_REGRESSION);
    assert_contains(out_text, "REGRESSION (weak)");
    assert_contains(out_text, "weak: fewer than 5 repeats");
}

/* Per-repeat values with nulls (repeats without acquisitions, so without acquire latency). */
static void set_repeats_json(json_t *root, const char *var, const char *path, json_t *list,
                             double median)
{
    char where[160];
    snprintf(where, sizeof where, "repeats.%s", path);
    set_path(variant(root, var), where, list);
    set_num(root, var, path, median);
}

/* Seven repeats on each side, two of them null: the nulls are skipped, leaving five numbers a
 * side, enough for the test: the same full separation as above, U = 0, p = 2/252, not weak. The
 * figures are the medians of the numbers (10.1 and 14.2). */
static void test_null_repeats_are_skipped(void **state)
{
    json_t *base = load_base(), *cur = load_base();
    set_repeats_json(base, "token-poll", "acquire_ms.p99",
                     json_pack("[f,n,f,f,f,n,f]", 10.0, 10.5, 9.8, 10.2, 10.1), 10.1);
    set_repeats_json(cur, "token-poll", "acquire_ms.p99",
                     json_pack("[n,f,f,f,n,f,f]", 14.0, 14.5, 13.9, 14.2, 15.0), 14.2);
    const char *b = save(base, "null-base.json"), *c = save(cur, "null-cur.json");
    assert_int_equal(run_gate(b, c, "--json", tmp_path("null.json"), NULL), LB_GATE_REGRESSION);
    assert_string_equal(err_text, "");

    json_t *doc = load_json(tmp_path("null.json"));
    json_t *row = result(doc, "token-poll", "acquire_ms.p99");
    assert_string_equal(verdict(row), "regression");
    assert_true(json_is_false(json_object_get(row, "weak")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(row, "repeats"),
                                                        "baseline")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(row, "repeats"),
                                                        "current")), 5);
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 2.0 / 252) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(row, "baseline")) - 10.1) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(row, "current")) - 14.2) < 1e-9);
    json_decref(doc);
}

/* Five repeats but one null on the current side: four numbers, so the verdict is weak; a side
 * whose repeats are all null has no data. A value that is neither a number nor null is still
 * bad input. */
static void test_null_repeats_leave_too_few(void **state)
{
    const double b5[5] = {10, 10.5, 9.8, 10.2, 10.1};
    json_t *base = load_base(), *cur = load_base();
    set_repeats(base, "token-poll", "acquire_ms.p99", b5, 5, 10.1);
    set_repeats_json(cur, "token-poll", "acquire_ms.p99",
                     json_pack("[f,f,n,f,f]", 14.0, 14.5, 14.2, 15.0), 14.35);
    const char *b = save(base, "few-base.json"), *c = save(cur, "few-cur.json");
    assert_int_equal(run_gate(b, c, "--json", tmp_path("few.json"), NULL), LB_GATE_REGRESSION);
    assert_contains(out_text, "REGRESSION (weak)");
    assert_contains(out_text, "weak: fewer than 5 repeats");
    json_t *doc = load_json(tmp_path("few.json"));
    json_t *row = result(doc, "token-poll", "acquire_ms.p99");
    assert_true(json_is_true(json_object_get(row, "weak")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(row, "repeats"),
                                                        "current")), 4);
    assert_true(fabs(json_number_value(json_object_get(row, "current")) - 14.35) < 1e-9);
    json_decref(doc);

    cur = load_base();
    set_path(variant(cur, "token-poll"), "acquire_ms.p50", json_null());
    set_path(variant(cur, "token-poll"), "repeats.acquire_ms.p50", json_pack("[n,n,n,n,n]"));
    c = save(cur, "all-null.json");
    assert_int_equal(run_gate(b, c, "--json", tmp_path("all-null.json"), NULL), LB_GATE_PASS);
    doc = load_json(tmp_path("all-null.json"));
    assert_string_equal(verdict(result(doc, "token-poll", "acquire_ms.p50")), "no-data");
    json_decref(doc);

    cur = load_base();
    set_repeats_json(cur, "token-poll", "acquire_ms.p99",
                     json_pack("[f,s,f,f,f]", 14.0, "fast", 14.2, 14.3, 15.0), 14.25);
    c = save(cur, "string-repeat.json");
    assert_int_equal(run_gate(b, c, NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "repeats.acquire_ms.p99");
    assert_contains(err_text, "neither a number nor null");
}

/* ---- correctness ---------------------------------------------------------------------------- */

static void test_new_overlap_fails_even_when_faster(void **state)
{
    json_t *cur = load_base();
    set_num(cur, "token-poll", "overlaps", 1);
    set_num(cur, "token-poll", "throughput_per_s", 3000);
    set_num(cur, "token-poll", "acquire_ms.p99", 1);
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "overlap.json"), NULL),
                     LB_GATE_REGRESSION);
    assert_contains(out_text, "overlaps");
    assert_contains(out_text, "FAIL: scenario gate-fixture, 1 regression: token-poll overlaps");
}

static void test_lost_updates_and_new_errors_fail(void **state)
{
    json_t *cur = load_base();
    set_num(cur, "token-poll", "counter.lost_updates", 2);
    set_num(cur, "token-poll", "errors", 1);
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "lost.json"), NULL),
                     LB_GATE_REGRESSION);
    /* correctness rows come in the summary's order (fields.c's table) */
    assert_contains(out_text, "2 regressions: token-poll errors, token-poll counter.lost_updates");
}

/* legacy-setnx already had 3 errors in the baseline (a fault scenario): more is not gated. */
static void test_errors_present_in_baseline_are_not_gated(void **state)
{
    json_t *cur = load_base();
    set_num(cur, "legacy-setnx", "errors", 10);
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "errors.json"), NULL), LB_GATE_PASS);
    assert_contains(out_text, "errors");
}

static void test_newly_failed_expectation_fails(void **state)
{
    json_t *cur = load_base();
    json_t *v = variant(cur, "legacy-setnx");
    set_path(v, "expect.passed", json_false());
    set_path(v, "expect.failures",
             json_pack("[{s:s,s:i,s:{s:i}}]", "path", "counter.actual", "value", 4, "bound",
                       "min", 5));
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "expect.json"), NULL),
                     LB_GATE_REGRESSION);
    assert_contains(out_text, "expect.passed");
    assert_contains(out_text, "legacy-setnx: expectation failed: counter.actual = 4, bound {\"min\":5}");
}

static void test_missing_variant_fails(void **state)
{
    json_t *cur = load_base();
    json_array_remove(json_object_get(cur, "variants"), 1);
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "missing-variant.json"), NULL),
                     LB_GATE_REGRESSION);
    assert_contains(out_text, "missing");
    assert_contains(out_text, "legacy-setnx variant");
}

static void test_new_variant_is_listed_not_gated(void **state)
{
    json_t *cur = load_base();
    json_t *extra = json_deep_copy(variant(cur, "token-poll"));
    json_object_set_new(extra, "name", json_string("token-pubsub"));
    json_array_append_new(json_object_get(cur, "variants"), extra);
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "new-variant.json"), NULL),
                     LB_GATE_PASS);
    assert_contains(out_text, "token-pubsub");
    assert_contains(out_text, "new");
}

/* ---- options -------------------------------------------------------------------------------- */

static void test_threshold_overrides(void **state)
{
    json_t *cur = load_base();
    set_num(cur, "token-poll", "acquire_ms.p99", 12);   /* +20 %: inside the default 25 % */
    const char *c = save(cur, "p99-20.json");
    assert_int_equal(run_gate(fixture("base.json"), c, NULL), LB_GATE_PASS);
    assert_int_equal(run_gate(fixture("base.json"), c, "--threshold", "acquire_ms.p99=10", NULL),
                     LB_GATE_REGRESSION);
    assert_int_equal(run_gate(fixture("base.json"), c, "--threshold=acquire_ms.p99=10%", NULL),
                     LB_GATE_REGRESSION);
    assert_contains(out_text, "acquire_ms.p99 10%");

    cur = load_base();
    set_num(cur, "token-poll", "throughput_per_s", 500);
    c = save(cur, "halved2.json");
    assert_int_equal(run_gate(fixture("base.json"), c, "--threshold", "throughput_per_s=60", NULL),
                     LB_GATE_PASS);
}

static void test_unknown_threshold_metric_is_bad_input(void **state)
{
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--threshold",
                              "latency=5", NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "unknown metric \"latency\"");
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--threshold",
                              "acquire_ms.p99=lots", NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "acquire_ms.p99=lots");
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--threshold",
                              "acquire_ms.p99", NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "METRIC=PCT");
}

/* The current run came from a machine half as fast: raw 50 000 ops/s instead of 100 000. */
static void test_normalize(void **state)
{
    json_t *cur = load_base();
    set_path(cur, "calibration.raw_ops_per_s", json_real(50000));
    set_num(cur, "token-poll", "throughput_per_s", 500);
    set_num(cur, "legacy-setnx", "throughput_per_s", 250);
    const char *c = save(cur, "slow-machine.json");
    assert_int_equal(run_gate(fixture("base.json"), c, NULL), LB_GATE_REGRESSION);
    assert_int_equal(run_gate(fixture("base.json"), c, "--normalize", "--benchmark-json-bigger",
                              tmp_path("bigger.json"), NULL), LB_GATE_PASS);
    assert_contains(out_text, "divided by calibration.raw_ops_per_s");

    json_t *list = load_json(tmp_path("bigger.json"));
    json_t *e = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(e, "name")),
                        "gate-fixture/token-poll throughput_per_s");
    assert_true(fabs(json_number_value(json_object_get(e, "value")) - 0.01) < 1e-12);
    json_decref(list);
}

static void test_normalize_without_calibration_is_bad_input(void **state)
{
    json_t *cur = load_base();
    json_object_del(cur, "calibration");
    const char *c = save(cur, "no-calibration.json");
    assert_int_equal(run_gate(fixture("base.json"), c, NULL), LB_GATE_PASS);
    assert_int_equal(run_gate(fixture("base.json"), c, "--normalize", NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "no-calibration.json");
    assert_contains(err_text, "calibration.raw_ops_per_s");
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void test_malformed_json_is_bad_input(void **state)
{
    assert_int_equal(run_gate(fixture("malformed.json"), fixture("base.json"), NULL),
                     LB_GATE_BAD_INPUT);
    /* line 5: the trailing comma before '}' */
    assert_contains(err_text, "malformed.json:5:");
    assert_string_equal(out_text, "");
}

static void test_missing_file_is_bad_input(void **state)
{
    assert_int_equal(run_gate(fixture("base.json"), tmp_path("nowhere.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "nowhere.json");
    assert_contains(err_text, "No such file");
    assert_int_equal(mkdir(tmp_path("empty-run"), 0755), 0);
    assert_int_equal(run_gate(tmp_path("empty-run"), fixture("base.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "empty-run: no summary.json in this directory");

    FILE *f = fopen(tmp_path("empty.json"), "w");   /* a file cut off before its first byte */
    assert_non_null(f);
    fclose(f);
    assert_int_equal(run_gate(fixture("base.json"), tmp_path("empty.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "empty.json:");
    assert_contains(err_text, "expected near end of file");
}

static void test_missing_key_is_bad_input(void **state)
{
    assert_int_equal(run_gate(fixture("base.json"), fixture("missing-key.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "missing-key.json: variants[1] (\"legacy-setnx\"): acquire_ms.p99 "
                              "is missing");

    json_t *cur = load_base();
    set_path(variant(cur, "token-poll"), "overlaps", json_string("none"));
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "wrong-type.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "variants[0] (\"token-poll\"): overlaps is not a number");
}

static void test_incomplete_run_is_bad_input(void **state)
{
    assert_int_equal(run_gate(fixture("incomplete.json"), fixture("base.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "incomplete.json: \"complete\" is false: the baseline run ended early");
    assert_int_equal(run_gate(fixture("base.json"), fixture("incomplete.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "the current run ended early");
}

static void test_mismatched_scenarios_are_bad_input(void **state)
{
    json_t *cur = load_base();
    json_object_set_new(cur, "scenario", json_string("other"));
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "other.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "scenario \"other\"");
}

static void test_duplicate_variant_is_bad_input(void **state)
{
    json_t *cur = load_base();
    json_array_append(json_object_get(cur, "variants"), variant(cur, "token-poll"));
    assert_int_equal(run_gate(fixture("base.json"), save(cur, "dup.json"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "duplicate variant name \"token-poll\"");
}

static void test_usage_errors(void **state)
{
    assert_int_equal(run_gate(NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "needs BASELINE and CURRENT");
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--colour", NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "unknown option --colour");
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--json", NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "--json needs a value");
    assert_int_equal(run_gate("a", "b", "c", NULL), LB_GATE_BAD_INPUT);
    assert_int_equal(run_gate("--help", NULL), LB_GATE_PASS);
    assert_contains(out_text, "usage: lockbench gate");
}

/* ---- output files --------------------------------------------------------------------------- */

/* Hidden entries: the temporaries a write goes through (".NAME.XXXXXX"). */
static size_t count_temporaries(const char *dir)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^[.]'", dir);
    FILE *p = popen(cmd, "r");
    unsigned n = 0;
    if (p) {
        if (fscanf(p, "%u", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

static void test_output_files(void **state)
{
    json_t *cur = load_base();
    set_num(cur, "token-poll", "throughput_per_s", 500);
    const char *c = save(cur, "out-cur.json");
    assert_int_equal(mkdir(tmp_path("out"), 0755), 0);
    assert_int_equal(run_gate(fixture("base.json"), c, "--markdown", tmp_path("out/gate.md"),
                              "--json", tmp_path("out/gate.json"), "--benchmark-json",
                              tmp_path("out/smaller.json"), "--benchmark-json-bigger",
                              tmp_path("out/bigger.json"), NULL), LB_GATE_REGRESSION);

    char md[16384];
    slurp(tmp_path("out/gate.md"), md, sizeof md);
    const char *head = "**lockbench gate FAIL: scenario gate-fixture, 1 regression: token-poll "
                       "throughput_per_s**\n\n";
    assert_true(strncmp(md, head, strlen(head)) == 0);
    assert_contains(md, "| variant | metric | baseline | current | change | p-value | p (Holm) | "
                        "verdict |\n|---|---|--:|--:|--:|--:|--:|---|\n");
    assert_contains(md, "| token-poll | throughput_per_s | 1000 | 500 | -50.0% | - | - | "
                        "**REGRESSION (weak)** |");
    assert_contains(md, "- weak: fewer than 5 repeats");

    json_t *doc = load_json(tmp_path("out/gate.json"));
    assert_true(json_is_false(json_object_get(doc, "passed")));
    assert_int_equal(json_integer_value(json_object_get(doc, "exit_code")), 1);
    json_t *row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "regression");
    assert_true(json_is_true(json_object_get(row, "weak")));
    assert_true(json_is_null(json_object_get(row, "p_value")));
    assert_true(json_number_value(json_object_get(row, "threshold_pct")) == 10);
    assert_string_equal(verdict(result(doc, "legacy-setnx", "acquire_ms.p50")), "ok");
    json_decref(doc);

    /* customSmallerIsBetter: p50, p99 and commands for each of the 2 variants */
    json_t *small = load_json(tmp_path("out/smaller.json"));
    assert_true(json_is_array(small));
    assert_int_equal(json_array_size(small), 6);
    bool seen = false;
    size_t i;
    json_t *e;
    json_array_foreach(small, i, e) {
        assert_true(json_is_string(json_object_get(e, "name")));
        assert_true(json_is_string(json_object_get(e, "unit")));
        assert_true(json_is_number(json_object_get(e, "value")));
        if (strcmp(json_string_value(json_object_get(e, "name")),
                   "gate-fixture/token-poll acquire_ms.p99") == 0) {
            seen = true;
            assert_string_equal(json_string_value(json_object_get(e, "unit")), "ms");
            assert_true(json_number_value(json_object_get(e, "value")) == 10);
        }
        assert_null(strstr(json_string_value(json_object_get(e, "name")), "throughput"));
    }
    assert_true(seen);
    json_decref(small);

    json_t *big = load_json(tmp_path("out/bigger.json"));
    assert_int_equal(json_array_size(big), 2);
    e = json_array_get(big, 0);
    assert_string_equal(json_string_value(json_object_get(e, "name")),
                        "gate-fixture/token-poll throughput_per_s");
    assert_string_equal(json_string_value(json_object_get(e, "unit")), "acquisitions/s");
    assert_true(json_number_value(json_object_get(e, "value")) == 500);
    json_decref(big);

    assert_int_equal(count_temporaries(tmp_path("out")), 0);   /* no temporary file left behind */
}

static void test_unwritable_output_is_bad_input(void **state)
{
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--markdown",
                              tmp_path("no-such-dir/gate.md"), NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "cannot write");
    assert_contains(err_text, "no-such-dir/gate.md");
}

static mode_t file_type(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        fail_msg("%s: %s", path, strerror(errno));
    return st.st_mode & S_IFMT;
}

/* An output FILE is replaced only when it is a regular file: a link stays a link and its target
 * gets the output, a FIFO is written in place. */
static void test_outputs_keep_what_they_name(void **state)
{
    char md[16384], fifo_text[16384] = "";
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--markdown",
                              tmp_path("old.md"), NULL), LB_GATE_PASS);
    assert_int_equal(symlink("old.md", tmp_path("link.md")), 0);
    assert_int_equal(mkfifo(tmp_path("fifo.json"), 0644), 0);
    int r = open(tmp_path("fifo.json"), O_RDONLY | O_NONBLOCK);  /* the writer's open returns */
    assert_true(r >= 0);
    json_t *cur = load_base();
    set_num(cur, "token-poll", "throughput_per_s", 500);
    const char *c = save(cur, "links-cur.json");
    assert_int_equal(run_gate(fixture("base.json"), c, "--markdown", tmp_path("link.md"),
                              "--json", tmp_path("fifo.json"), NULL), LB_GATE_REGRESSION);
    assert_string_equal(err_text, "");
    assert_int_equal(file_type(tmp_path("link.md")), S_IFLNK);
    slurp(tmp_path("old.md"), md, sizeof md);
    assert_contains(md, "**lockbench gate FAIL");
    ssize_t n = read(r, fifo_text, sizeof fifo_text - 1);
    close(r);
    assert_true(n > 0);
    assert_int_equal(file_type(tmp_path("fifo.json")), S_IFIFO);
    json_error_t e;
    json_t *doc = json_loadb(fifo_text, (size_t)n, 0, &e);
    if (!doc)
        fail_msg("the FIFO's JSON: %s", e.text);
    assert_true(json_is_false(json_object_get(doc, "passed")));
    json_decref(doc);
    assert_int_equal(count_temporaries(tmpdir), 0);
}

/* A device stays a device (as root a rename would have replaced it with a regular file), and a
 * write it refuses -- ENOSPC from a copy of /dev/full -- is an error and exit 2. */
static void test_device_output_is_written_in_place(void **state)
{
    const char *full = tmp_path("full");
    if (mknod(full, S_IFCHR | 0666, makedev(1, 7)) != 0)
        skip();   /* not allowed to make devices (not root, or no CAP_MKNOD) */
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--benchmark-json",
                              full, NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "cannot write");
    assert_contains(err_text, full);
    assert_contains(err_text, strerror(ENOSPC));
    assert_int_equal(file_type(full), S_IFCHR);
    assert_int_equal(count_temporaries(tmpdir), 0);
}

/* The defaults the gate applies are the table's: the JSON output's thresholds are exactly its
 * performance figures with their default thresholds. */
static void test_metric_table(void **state)
{
    assert_int_equal(run_gate(fixture("base.json"), fixture("base.json"), "--json",
                              tmp_path("thr.json"), NULL), LB_GATE_PASS);
    json_t *doc = load_json(tmp_path("thr.json"));
    json_t *thr = json_object_get(doc, "thresholds_pct");
    size_t nf, nperf = 0;
    const lb_field *f = lb_fields(&nf);
    for (size_t k = 0; k < nf; k++) {
        if (f[k].gate != LB_CHECK_HIGHER && f[k].gate != LB_CHECK_LOWER)
            continue;
        nperf++;
        assert_true(json_number_value(json_object_get(thr, f[k].path)) == f[k].threshold_pct);
    }
    assert_int_equal(json_object_size(thr), nperf);
    assert_true(lb_field_find("throughput_per_s")->threshold_pct == 10);
    assert_int_equal(lb_field_find("throughput_per_s")->gate, LB_CHECK_HIGHER);
    assert_int_equal(lb_field_find("redis.commands_per_acquisition")->gate, LB_CHECK_LOWER);
    json_decref(doc);
}

/* Rounds: a folder of one-run results on each side, folded into repeats. Every figure of the
 * fixture's two variants but the halved throughput ties across the rounds, so all 8 metrics are
 * tested (p = 1 for the 7 others). Six rounds of a halved throughput, every one below every
 * baseline round: exact p = 2/C(12, 6) = 2/924, p (Holm) = 8 x 2/924 = 0.0173, a regression.
 * Five rounds: p = 2/252, p (Holm) = 16/252 = 0.0635: noise, for five rounds a side cannot fail
 * a gate of eight metrics. Rounds of the same figures pass; an overlap in any one round fails. */
static void write_rounds(const char *side, const double *tput, size_t n, int overlap_round)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp_path(side));
    assert_int_equal(mkdir(dir, 0755), 0);
    for (size_t r = 0; r < n; r++) {
        char name[300];
        snprintf(name, sizeof name, "%s/r%zu", side, r + 1);
        assert_int_equal(mkdir(tmp_path(name), 0755), 0);
        json_t *root = load_base();
        set_num(root, "token-poll", "throughput_per_s", tput[r]);
        if ((int)r == overlap_round)
            set_num(root, "token-poll", "overlaps", 1);
        snprintf(name, sizeof name, "%s/r%zu/summary.json", side, r + 1);
        save(root, name);
    }
}

static void test_rounds_are_folded_into_repeats(void **state)
{
    const double base[6] = {1000, 1010, 990, 1005, 995, 1002};
    const double half[6] = {500, 505, 495, 510, 490, 502};
    write_rounds("base-rounds", base, 6, -1);
    write_rounds("same-rounds", base, 6, -1);
    write_rounds("half-rounds", half, 6, -1);
    write_rounds("base-rounds-5", base, 5, -1);
    write_rounds("half-rounds-5", half, 5, -1);
    write_rounds("overlap-rounds", base, 6, 3);
    assert_int_equal(run_gate(tmp_path("base-rounds"), tmp_path("same-rounds"), NULL),
                     LB_GATE_PASS);

    assert_int_equal(run_gate(tmp_path("base-rounds"), tmp_path("half-rounds"), "--json",
                              tmp_path("half.json"), NULL), LB_GATE_REGRESSION);
    assert_contains(out_text, "-50.0%");
    assert_contains(out_text, "p (Holm): the p-values of the 8 metrics tested");
    json_t *doc = load_json(tmp_path("half.json"));
    json_t *row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "regression");
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 2.0 / 924) < 1e-12);
    assert_true(fabs(json_number_value(json_object_get(row, "p_holm")) - 16.0 / 924) < 1e-12);
    assert_int_equal(json_integer_value(json_object_get(doc, "tests")), 8);
    json_decref(doc);

    assert_int_equal(run_gate(tmp_path("base-rounds-5"), tmp_path("half-rounds-5"), "--json",
                              tmp_path("half-5.json"), NULL), LB_GATE_PASS);
    doc = load_json(tmp_path("half-5.json"));
    row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "noise");
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 2.0 / 252) < 1e-12);
    assert_true(fabs(json_number_value(json_object_get(row, "p_holm")) - 16.0 / 252) < 1e-12);
    json_decref(doc);

    assert_int_equal(run_gate(tmp_path("base-rounds"), tmp_path("overlap-rounds"), NULL),
                     LB_GATE_REGRESSION);
    assert_contains(out_text, "overlaps");
}

/* Rounds where one round had no acquisitions (acquire_ms.p50 and p99 null): folding skips that
 * round for those figures, leaving 4 numbers, so the p99 verdict is weak; throughput still has
 * all 5 rounds. The folded p99 is the median of the 4 numbers (here all the base's 10). A round
 * whose figure is a string is bad input, naming the round's file. */
static void test_rounds_with_null_figures(void **state)
{
    const double base[5] = {1000, 1010, 990, 1005, 995};
    write_rounds("base-rounds-2", base, 5, -1);
    write_rounds("null-rounds", base, 5, -1);
    json_t *r3 = load_json(tmp_path("null-rounds/r3/summary.json"));
    set_path(variant(r3, "token-poll"), "acquire_ms.p50", json_null());
    set_path(variant(r3, "token-poll"), "acquire_ms.p99", json_null());
    save(r3, "null-rounds/r3/summary.json");
    assert_int_equal(run_gate(tmp_path("base-rounds-2"), tmp_path("null-rounds"), "--json",
                              tmp_path("rounds.json"), NULL), LB_GATE_PASS);
    assert_string_equal(err_text, "");
    json_t *doc = load_json(tmp_path("rounds.json"));
    json_t *row = result(doc, "token-poll", "acquire_ms.p99");
    assert_string_equal(verdict(row), "ok");
    assert_true(json_is_true(json_object_get(row, "weak")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(row, "repeats"),
                                                        "current")), 4);
    assert_true(fabs(json_number_value(json_object_get(row, "current")) - 10.0) < 1e-9);
    row = result(doc, "token-poll", "throughput_per_s");
    assert_true(json_is_false(json_object_get(row, "weak")));
    json_decref(doc);

    json_t *r2 = load_json(tmp_path("null-rounds/r2/summary.json"));
    set_path(variant(r2, "token-poll"), "acquire_ms.p99", json_string("n/a"));
    save(r2, "null-rounds/r2/summary.json");
    assert_int_equal(run_gate(tmp_path("base-rounds-2"), tmp_path("null-rounds"), NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "r2/summary.json");
    assert_contains(err_text, "acquire_ms.p99");
}

/* --paired: twelve rounds whose speed halves midway (a slow minute on a shared machine), the
 * current 10 % slower than the base in every round. Pooled, the slow rounds of one side mix
 * with the fast ones of the other: Mann-Whitney's p is 0.039, 0.31 after Holm over 8 metrics,
 * so the gate passes it as noise. Paired by round name, all 12 differences are negative:
 * p = 2/2^12, p (Holm) = 8 x 2/4096 = 0.0039, a regression. The pairs follow the names, not
 * the positions (r1, r10, r11, ...): a round missing on one side leaves 11 pairs. A side that
 * is not a folder of rounds cannot be paired: bad input, naming it. */
static void test_paired_rounds(void **state)
{
    double base[12], slower[12];
    for (int i = 0; i < 12; i++) {
        base[i] = i < 6 ? 2000 + 20 * i : 1000 + 10 * i;
        slower[i] = 0.85 * base[i];
    }
    write_rounds("paired-base", base, 12, -1);
    write_rounds("paired-slower", slower, 12, -1);
    assert_int_equal(run_gate(tmp_path("paired-base"), tmp_path("paired-slower"), "--json",
                              tmp_path("pooled.json"), NULL), LB_GATE_PASS);
    json_t *doc = load_json(tmp_path("pooled.json"));
    json_t *row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "noise");
    assert_string_equal(json_string_value(json_object_get(doc, "test")), "mann-whitney");
    assert_null(json_object_get(row, "pairs"));
    json_decref(doc);

    assert_int_equal(run_gate(tmp_path("paired-base"), tmp_path("paired-slower"), "--paired",
                              "--json", tmp_path("paired.json"), NULL), LB_GATE_REGRESSION);
    assert_contains(out_text, "Wilcoxon signed-rank over the rounds paired by name");
    doc = load_json(tmp_path("paired.json"));
    row = result(doc, "token-poll", "throughput_per_s");
    assert_string_equal(verdict(row), "regression");
    assert_string_equal(json_string_value(json_object_get(doc, "test")), "wilcoxon-signed-rank");
    assert_int_equal(json_integer_value(json_object_get(row, "pairs")), 12);
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 2.0 / 4096) < 1e-15);
    assert_true(fabs(json_number_value(json_object_get(row, "p_holm")) - 16.0 / 4096) < 1e-15);
    assert_true(fabs(json_number_value(json_object_get(row, "change_pct")) + 15) < 1e-9);
    row = result(doc, "token-poll", "acquire_ms.p50");   /* every pair ties: no evidence */
    assert_string_equal(verdict(row), "ok");
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 1) < 1e-15);
    json_decref(doc);

    /* --alpha 0.001: p (Holm) 0.0039 is not below it, so the same change is noise. */
    assert_int_equal(run_gate(tmp_path("paired-base"), tmp_path("paired-slower"), "--paired",
                              "--alpha", "0.001", "--json", tmp_path("strict.json"), NULL),
                     LB_GATE_PASS);
    assert_contains(out_text, "noise (Holm p >= 0.001)");
    assert_contains(out_text, "a change regresses if p (Holm) < 0.001");
    doc = load_json(tmp_path("strict.json"));
    assert_string_equal(verdict(result(doc, "token-poll", "throughput_per_s")), "noise");
    assert_true(fabs(json_number_value(json_object_get(doc, "alpha")) - 0.001) < 1e-15);
    json_decref(doc);
    assert_int_equal(run_gate(tmp_path("paired-base"), tmp_path("paired-slower"), "--alpha", "1",
                              NULL), LB_GATE_BAD_INPUT);
    assert_contains(err_text, "--alpha 1: a significance level between 0 and 1");

    char gone[PATH_MAX];
    snprintf(gone, sizeof gone, "%s", tmp_path("paired-slower/r3/summary.json"));
    assert_int_equal(unlink(gone), 0);
    assert_int_equal(rmdir(tmp_path("paired-slower/r3")), 0);
    assert_int_equal(run_gate(tmp_path("paired-base"), tmp_path("paired-slower"), "--paired",
                              "--json", tmp_path("paired-11.json"), NULL), LB_GATE_REGRESSION);
    doc = load_json(tmp_path("paired-11.json"));
    row = result(doc, "token-poll", "throughput_per_s");
    assert_int_equal(json_integer_value(json_object_get(row, "pairs")), 11);
    assert_true(fabs(json_number_value(json_object_get(row, "p_value")) - 2.0 / 2048) < 1e-15);
    json_decref(doc);

    assert_int_equal(run_gate(fixture("base.json"), tmp_path("paired-slower"), "--paired", NULL),
                     LB_GATE_BAD_INPUT);
    assert_contains(err_text, "--paired: baseline");
    assert_contains(err_text, "is not a folder of rounds");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_inputs_pass),
        cmocka_unit_test(test_directory_input),
        cmocka_unit_test(test_throughput_halved_fails),
        cmocka_unit_test(test_improvement_passes),
        cmocka_unit_test(test_two_percent_noise_passes),
        cmocka_unit_test(test_p99_past_threshold_not_significant_passes),
        cmocka_unit_test(test_p99_significant_regression_fails),
        cmocka_unit_test(test_holm_steps_down_over_the_metrics),
        cmocka_unit_test(test_four_repeats_is_weak),
        cmocka_unit_test(test_null_repeats_are_skipped),
        cmocka_unit_test(test_null_repeats_leave_too_few),
        cmocka_unit_test(test_new_overlap_fails_even_when_faster),
        cmocka_unit_test(test_lost_updates_and_new_errors_fail),
        cmocka_unit_test(test_errors_present_in_baseline_are_not_gated),
        cmocka_unit_test(test_newly_failed_expectation_fails),
        cmocka_unit_test(test_missing_variant_fails),
        cmocka_unit_test(test_new_variant_is_listed_not_gated),
        cmocka_unit_test(test_threshold_overrides),
        cmocka_unit_test(test_unknown_threshold_metric_is_bad_input),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_normalize_without_calibration_is_bad_input),
        cmocka_unit_test(test_malformed_json_is_bad_input),
        cmocka_unit_test(test_missing_file_is_bad_input),
        cmocka_unit_test(test_missing_key_is_bad_input),
        cmocka_unit_test(test_incomplete_run_is_bad_input),
        cmocka_unit_test(test_mismatched_scenarios_are_bad_input),
        cmocka_unit_test(test_duplicate_variant_is_bad_input),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_output_files),
        cmocka_unit_test(test_unwritable_output_is_bad_input),
        cmocka_unit_test(test_outputs_keep_what_they_name),
        cmocka_unit_test(test_device_output_is_written_in_place),
        cmocka_unit_test(test_metric_table),
        cmocka_unit_test(test_rounds_are_folded_into_repeats),
        cmocka_unit_test(test_rounds_with_null_figures),
        cmocka_unit_test(test_paired_rounds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
