/* test_results.c -- the write stage: files written from a hand-made run, read back.
 *
 * Each test writes into a fresh temporary directory: summary.json is parsed back with jansson
 * and checked key by key against SPEC section 6, the CSVs' headers against README.md's columns,
 * and the top-level summary is fed to the gate (lb_gate_main) to prove the two agree on the
 * format. No temporary file may survive a write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "dlock.h"
#include "gate.h"
#include "metrics.h"
#include "results.h"
#include "scenario.h"

/* ---- fixture -------------------------------------------------------------------------------- */

static const char scenario_json[] =
    "{\"name\": \"results-test\", \"clients\": [{\"name\": \"writers\", \"count\": 2}],"
    " \"expect\": {\"overlaps\": 0},"
    " \"variants\": [{\"name\": \"a\", \"set\": {}},"
    "              {\"name\": \"b\", \"set\": {\"lock.backoff.policy\": \"full-jitter\"}}]}";

typedef struct {
    char             dir[64];
    lb_scenario     *sc;
    lb_run_result    run;
    lb_client_result cl[2];
    lb_meter         meter;    /* both clients', as one loop thread's */
    lb_fault_record  f[2];
    lb_summary       s[2];     /* one per variant */
} fixture;

/* One acquire call; an acquired one left its critical section 0.5 ms before its release
 * returned. */
static void add(fixture *x, int client, int64_t call, int64_t end, int64_t released,
                lb_result r, lb_hold_end how)
{
    lb_client_result *c = &x->cl[client];
    lb_acquisition *a = lb_acq_log_append(&x->meter.log);
    assert_non_null(a);
    *a = (lb_acquisition){.call_us = call, .end_us = end, .client = client,
                          .left_us = r == LB_RES_OK ? released - 500 : -1,
                          .released_us = released, .result = (uint8_t)r, .end = (uint8_t)how,
                          .attempts = 2, .commands = 3, .fence = 0};
    if (r == LB_RES_OK) {
        c->acquisitions++;
        c->wait_sum_us += end - call;
        lb_hist_record(x->meter.acquire_hist, end - call);
    } else if (r == LB_RES_TIMEOUT) {
        c->timeouts++;
        lb_hist_record(x->meter.timeout_hist, end - call);
    }
    if ((r == LB_RES_OK || r == LB_RES_TIMEOUT) && end - call > c->wait_max_us)
        c->wait_max_us = end - call;
    c->commands += 3;
}

/* Two clients: client 0 acquires at 1.5 ms and 4 ms, client 1 at 2 ms and times out once;
 * one applied partition of clients 0 and 1, one skipped crash. */
static void build_run(fixture *x)
{
    x->run = (lb_run_result){.complete = true, .elapsed_us = 250000, .nkeys = 1, .nclients = 2,
                             .clients = x->cl, .nfaults = 2, .faults = x->f,
                             .nmeters = 1, .meters = &x->meter, .counter_actual = 3};
    for (int i = 0; i < 2; i++)
        x->cl[i] = (lb_client_result){.client = i, .group = 0};
    assert_int_equal(lb_meter_init(&x->meter, 2, false), 0);
    add(x, 0, 0, 1500, 3000, LB_RES_OK, LB_END_RELEASED);
    add(x, 1, 100, 3100, 5000, LB_RES_OK, LB_END_RELEASED);
    add(x, 0, 3200, 5200, 7000, LB_RES_OK, LB_END_RELEASED);
    add(x, 1, 5100, 105100, -1, LB_RES_TIMEOUT, LB_END_NONE);
    x->cl[0].cs_acked = x->cl[0].cs_attempted = 2;
    x->cl[1].cs_acked = x->cl[1].cs_attempted = 1;
    x->f[0] = (lb_fault_record){.at_ms = 10, .start_us = 10004, .end_us = 60010,
                                .action = LB_EV_PARTITION, .target = "clients=0,1",
                                .detail = "duration_ms=50", .applied = true};
    x->f[1] = (lb_fault_record){.at_ms = 900, .start_us = -1, .end_us = -1,
                                .action = LB_EV_CRASH, .target = "clients=1", .applied = false};
    x->run.faults_applied = 1;
}

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof *x);
    assert_non_null(x);
    strcpy(x->dir, "/tmp/lb-results-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    char err[512] = "";
    int rc = lb_scenario_load_buffer("t.json", scenario_json, strlen(scenario_json), NULL,
                                     &x->sc, err, sizeof err);
    if (rc != 0)
        fail_msg("scenario: %s", err);
    build_run(x);
    for (size_t v = 0; v < 2; v++) {
        const lb_scenario *var = lb_scenario_variant(x->sc, v);
        assert_int_equal(lb_metrics_compute(var, &x->run, &x->s[v]), 0);
        lb_metrics_check(var, &x->s[v]);
    }
    *state = x;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    fixture *x = *state;
    for (int v = 0; v < 2; v++)
        lb_summary_free(&x->s[v]);
    lb_meter_free(&x->meter);
    lb_scenario_free(x->sc);
    nftw(x->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(x);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static char *path_of(const fixture *x, const char *rel)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", x->dir, rel);
    return p;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* The first line, without its newline, into a static buffer. */
static const char *first_line(const char *text)
{
    static char line[512];
    size_t n = strcspn(text, "\n");
    snprintf(line, sizeof line, "%.*s", (int)n, text);
    return line;
}

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("%s:%d:%d: %s", path, e.line, e.column, e.text);
    return j;
}

static json_t *at(json_t *obj, const char *dotted)
{
    char key[64];
    while (obj && *dotted) {
        size_t n = strcspn(dotted, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, dotted);
        obj = json_object_get(obj, key);
        dotted += n + (dotted[n] == '.');
    }
    if (!obj)
        fail_msg("missing key %s", dotted);
    return obj;
}

/* No ".NAME.XXXXXX" left behind in dir or its subfolders. */
static void assert_no_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (e->d_name[0] == '.')
            fail_msg("temporary file left: %s/%s", dir, e->d_name);
        char sub[512];
        struct stat st;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            assert_no_temporaries(sub);
    }
    closedir(d);
}

static void write_run(fixture *x, size_t v, const char *sub)
{
    char err[512] = "";
    int rc = lb_results_write_run(path_of(x, sub), &x->s[v], &x->run, err, sizeof err);
    if (rc != 0)
        fail_msg("write_run: %s", err);
}

static void write_top(fixture *x, size_t n)
{
    char err[512] = "";
    lb_calibration cal = {.ping_rtt_us = 42.5, .raw_ops_per_s = 150000};
    int rc = lb_results_write_top(x->dir, x->sc, x->s, n, &cal, "2024-05-01T10:00:00Z", true,
                                  err, sizeof err);
    if (rc != 0)
        fail_msg("write_top: %s", err);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* The variant summary.json holds every key of SPEC section 6 with the run's values. */
static void test_variant_summary(void **state)
{
    fixture *x = *state;
    write_run(x, 0, "deep/a");   /* the folder, and its parent, are created */
    json_t *j = load_json(path_of(x, "deep/a/summary.json"));
    assert_string_equal(json_string_value(at(j, "name")), "a");
    assert_true(json_is_true(at(j, "complete")));
    assert_string_equal(json_string_value(at(j, "algorithm")), "token");
    assert_string_equal(json_string_value(at(j, "wait")), "poll");
    assert_string_equal(json_string_value(at(j, "backoff")), "exponential");
    assert_true(json_is_integer(at(j, "clients")));
    assert_int_equal(json_integer_value(at(j, "clients")), 2);
    assert_int_equal(json_integer_value(at(j, "acquisitions")), 3);
    assert_int_equal(json_integer_value(at(j, "timeouts")), 1);
    assert_int_equal(json_integer_value(at(j, "errors")), 0);
    assert_int_equal(json_integer_value(at(j, "crashed_clients")), 0);
    assert_true(fabs(json_number_value(at(j, "elapsed_ms")) - 250) < 1e-9);
    assert_true(fabs(json_number_value(at(j, "throughput_per_s")) - 12) < 1e-9);
    static const char *const keys[] = {
        "acquire_ms.count", "acquire_ms.mean", "acquire_ms.p50", "acquire_ms.p90",
        "acquire_ms.p99", "acquire_ms.p999", "acquire_ms.max", "timeout_ms.count",
        "timeout_ms.mean", "timeout_ms.p50", "timeout_ms.max", "handoff_ms.count",
        "handoff_ms.mean", "handoff_ms.p50", "handoff_ms.p99", "handoff_ms.max",
        "fairness.jain", "fairness.jain_wait", "fairness.min_acquisitions",
        "fairness.max_acquisitions", "fairness.max_wait_ms", "counter.acked",
        "counter.attempted", "counter.actual", "counter.lost_updates",
        "counter.stale_writes_rejected", "overlaps", "store_overlaps", "redis.commands",
        "redis.commands_per_acquisition", "faults_applied"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!json_is_number(at(j, keys[i])))
            fail_msg("%s is not a number", keys[i]);
    assert_int_equal(json_integer_value(at(j, "acquire_ms.count")), 3);
    assert_true(fabs(json_number_value(at(j, "acquire_ms.max")) - 3.0) < 1e-9);
    assert_true(fabs(json_number_value(at(j, "timeout_ms.max")) - 100.0) < 1e-9);
    /* handoffs: 3000 → 3100, 5000 → 5200: 0.1 and 0.2 ms */
    assert_int_equal(json_integer_value(at(j, "handoff_ms.count")), 2);
    assert_true(fabs(json_number_value(at(j, "handoff_ms.max")) - 0.2) < 1e-9);
    assert_int_equal(json_integer_value(at(j, "counter.acked")), 3);
    assert_int_equal(json_integer_value(at(j, "counter.actual")), 3);
    assert_int_equal(json_integer_value(at(j, "redis.commands")), 12);
    json_t *pc = at(j, "fairness.per_client");
    assert_int_equal(json_array_size(pc), 2);
    json_t *c0 = json_array_get(pc, 0);
    static const char *const ckeys[] = {"client", "group", "acquisitions", "timeouts", "errors",
                                        "mean_wait_ms", "max_wait_ms"};
    for (size_t i = 0; i < sizeof ckeys / sizeof ckeys[0]; i++)
        assert_non_null(json_object_get(c0, ckeys[i]));
    assert_string_equal(json_string_value(json_object_get(c0, "group")), "writers");
    assert_int_equal(json_integer_value(json_object_get(c0, "acquisitions")), 2);
    /* the longest call that returned ok or timed out: client 1's 100 ms timeout */
    assert_true(fabs(json_number_value(at(j, "fairness.max_wait_ms")) - 100.0) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(c0, "max_wait_ms")) - 2.0) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(json_array_get(pc, 1), "max_wait_ms")) -
                     100.0) < 1e-9);
    assert_null(json_object_get(j, "repeats"));
    assert_true(json_is_true(at(j, "expect.passed")));
    assert_int_equal(json_array_size(at(j, "expect.failures")), 0);
    json_decref(j);
    assert_no_temporaries(x->dir);
}

/* An interrupted run's variant summary says so, and does not claim its expectations passed. */
static void test_incomplete_variant(void **state)
{
    fixture *x = *state;
    lb_summary s;
    x->run.complete = false;
    const lb_scenario *var = lb_scenario_variant(x->sc, 0);
    assert_int_equal(lb_metrics_compute(var, &x->run, &s), 0);
    lb_metrics_check(var, &s);
    char err[256];
    assert_int_equal(lb_results_write_run(path_of(x, "cut"), &s, &x->run, err, sizeof err), 0);
    json_t *j = load_json(path_of(x, "cut/summary.json"));
    assert_true(json_is_false(at(j, "complete")));
    assert_true(json_is_false(at(j, "expect.passed")));
    json_decref(j);
    lb_summary_free(&s);
}

/* No samples: the figures are null (no data), the count 0. */
static void test_null_latencies(void **state)
{
    fixture *x = *state;
    lb_summary s = {.name = "empty", .algorithm = "token", .wait = "poll", .backoff = "none",
                    .expect.passed = true};
    char err[256];
    assert_int_equal(lb_results_write_summary(path_of(x, "empty"), &s, err, sizeof err), 0);
    json_t *j = load_json(path_of(x, "empty/summary.json"));
    assert_int_equal(json_integer_value(at(j, "acquire_ms.count")), 0);
    assert_true(json_is_null(at(j, "acquire_ms.p99")));
    assert_true(json_is_null(at(j, "timeout_ms.mean")));
    assert_true(json_is_null(at(j, "handoff_ms.max")));
    assert_int_equal(json_array_size(at(j, "fairness.per_client")), 0);
    json_decref(j);
}

/* README.md's columns exactly; one row per acquire call, per bin, per event, per client. */
static void test_csv_files(void **state)
{
    fixture *x = *state;
    write_run(x, 0, "a");
    char *acq = slurp(path_of(x, "a/acquisitions.csv"));
    /* left_ms sits right before released_ms, empty (like it) when not acquired */
    assert_string_equal(first_line(acq), "client,group,key,call_ms,end_ms,wait_ms,result,"
                                         "attempts,commands,fence,left_ms,released_ms,end,"
                                         "overlap,intended_ms");
    assert_int_equal(count_lines(acq), 1 + 4);
    /* merged by call time across the clients: 0, 100, 3200, 5100 */
    const char *row = strchr(acq, '\n') + 1;
    assert_string_equal(first_line(row),
                        "0,writers,0,0.000,1.500,1.500,ok,2,3,0,2.500,3.000,released,0,");
    row = strchr(row, '\n') + 1;
    assert_string_equal(first_line(row),
                        "1,writers,0,0.100,3.100,3.000,ok,2,3,0,4.500,5.000,released,0,");
    row = strchr(strchr(row, '\n') + 1, '\n') + 1;
    assert_string_equal(first_line(row), "1,writers,0,5.100,105.100,100.000,timeout,2,3,0,,,,0,");
    free(acq);

    char *tl = slurp(path_of(x, "a/timeline.csv"));
    assert_string_equal(first_line(tl), "t_ms,acquisitions,timeouts,errors,holders,active_faults");
    assert_int_equal(count_lines(tl), 1 + 3);   /* 250 ms: bins 0, 100, 200 */
    assert_string_equal(first_line(strchr(tl, '\n') + 1), "0,3,0,0,1,1");
    free(tl);

    char *ev = slurp(path_of(x, "a/events.csv"));
    assert_string_equal(first_line(ev), "at_ms,start_ms,end_ms,action,target,detail,status");
    assert_int_equal(count_lines(ev), 1 + 2);
    assert_string_equal(first_line(strchr(ev, '\n') + 1),
                        "10,10.004,60.010,partition,\"clients=0,1\",duration_ms=50,applied");
    assert_string_equal(first_line(strchr(strchr(ev, '\n') + 1, '\n') + 1),
                        "900,,,crash,clients=1,,skipped");
    free(ev);

    char *cl = slurp(path_of(x, "a/clients.csv"));
    assert_string_equal(first_line(cl),
                        "client,group,acquisitions,timeouts,errors,mean_wait_ms,max_wait_ms");
    assert_int_equal(count_lines(cl), 1 + 2);
    free(cl);

    char *h = slurp(path_of(x, "a/latency.hgrm"));
    assert_non_null(strstr(h, "Value"));
    assert_non_null(strstr(h, "Percentile"));
    assert_non_null(strstr(h, "TotalCount"));
    free(h);
    assert_no_temporaries(x->dir);
}

/* The scenario folder with two variants: top-level summary, scenario.json, comparisons. */
static void test_top_level(void **state)
{
    fixture *x = *state;
    write_top(x, 2);
    json_t *j = load_json(path_of(x, "summary.json"));
    assert_string_equal(json_string_value(at(j, "scenario")), "results-test");
    assert_true(json_is_true(at(j, "complete")));
    assert_true(json_is_true(at(j, "passed")));
    assert_string_equal(json_string_value(at(j, "started_at")), "2024-05-01T10:00:00Z");
    assert_string_equal(json_string_value(at(j, "lockbench_version")), DLOCK_VERSION);
    assert_true(fabs(json_number_value(at(j, "calibration.ping_rtt_us")) - 42.5) < 1e-9);
    assert_true(fabs(json_number_value(at(j, "calibration.raw_ops_per_s")) - 150000) < 1e-9);
    json_t *vars = at(j, "variants");
    assert_int_equal(json_array_size(vars), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(vars, 1), "name")), "b");
    assert_string_equal(json_string_value(json_object_get(json_array_get(vars, 1), "backoff")),
                        "full-jitter");
    json_decref(j);

    j = load_json(path_of(x, "scenario.json"));
    assert_string_equal(json_string_value(at(j, "name")), "results-test");
    json_decref(j);

    j = load_json(path_of(x, "comparison.json"));
    assert_int_equal(json_array_size(j), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "variant")), "a");
    json_decref(j);

    char *csv = slurp(path_of(x, "comparison.csv"));
    assert_string_equal(first_line(csv), "variant,throughput_per_s,p50_ms,p99_ms,"
                                         "commands_per_acquisition,elapsed_ms,total_commands");
    assert_int_equal(count_lines(csv), 3);
    free(csv);
    char *md = slurp(path_of(x, "comparison.md"));
    assert_non_null(strstr(md, "| variant | algorithm |"));
    assert_int_equal(count_lines(md), 4);
    free(md);
    assert_no_temporaries(x->dir);
}

/* One variant: no comparison files. A failed expectation makes the top level fail. */
static void test_top_level_single_and_failed(void **state)
{
    fixture *x = *state;
    x->s[0].expect.passed = false;
    write_top(x, 1);
    assert_int_equal(access(path_of(x, "comparison.md"), F_OK), -1);
    assert_int_equal(access(path_of(x, "comparison.csv"), F_OK), -1);
    json_t *j = load_json(path_of(x, "summary.json"));
    assert_false(json_is_true(at(j, "passed")));
    json_decref(j);
}

/* What we write is what the gate reads: the run compared with itself passes. */
static void test_gate_reads_it(void **state)
{
    fixture *x = *state;
    write_top(x, 2);
    char *argv[] = {"gate", x->dir, path_of(x, "summary.json"), NULL};
    /* the gate's table goes to /dev/null, keeping this program's TAP output clean */
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    dup2(null, 1);
    int rc = lb_gate_main(3, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(null);
    assert_int_equal(rc, LB_GATE_PASS);
}

/* With repeats, the lists sit under "repeats" at the metric's own path. */
static void test_repeats_json(void **state)
{
    fixture *x = *state;
    lb_summary c;
    lb_summary r[2] = {x->s[0], x->s[0]};
    r[1].throughput_per_s = 20;
    assert_int_equal(lb_metrics_combine(r, 2, &c), 0);
    char err[256];
    assert_int_equal(lb_results_write_summary(path_of(x, "rep"), &c, err, sizeof err), 0);
    json_t *j = load_json(path_of(x, "rep/summary.json"));
    assert_int_equal(json_array_size(at(j, "repeats.throughput_per_s")), 2);
    assert_true(fabs(json_number_value(json_array_get(at(j, "repeats.throughput_per_s"), 1)) -
                     20) < 1e-9);
    assert_int_equal(json_array_size(at(j, "repeats.acquire_ms.p50")), 2);
    assert_int_equal(json_array_size(at(j, "repeats.acquire_ms.p99")), 2);
    assert_int_equal(json_array_size(at(j, "repeats.redis.commands_per_acquisition")), 2);
    assert_true(fabs(json_number_value(at(j, "throughput_per_s")) - 16) < 1e-9);
    json_decref(j);
    lb_summary_free(&c);
}

/* A repeat without acquisitions has no acquire latency: null in the per-repeat p50 and p99
 * lists (the other lists stay numeric), and the gate, reading it back, skips the null instead
 * of refusing the file. */
static void test_repeats_json_null(void **state)
{
    fixture *x = *state;
    lb_summary c[2];
    lb_summary r[3] = {x->s[0], x->s[0], x->s[0]};
    r[1].acquisitions = 0;
    r[1].throughput_per_s = 0;
    r[1].acquire_ms = (lb_latency){0};
    assert_int_equal(lb_metrics_combine(r, 3, &c[0]), 0);
    assert_int_equal(lb_metrics_combine(r, 3, &c[1]), 0);
    c[1].name = "b";
    char err[256];
    assert_int_equal(lb_results_write_summary(path_of(x, "rep"), &c[0], err, sizeof err), 0);
    json_t *j = load_json(path_of(x, "rep/summary.json"));
    json_t *p50 = at(j, "repeats.acquire_ms.p50"), *p99 = at(j, "repeats.acquire_ms.p99");
    assert_int_equal(json_array_size(p50), 3);
    assert_true(json_is_number(json_array_get(p50, 0)));
    assert_true(json_is_null(json_array_get(p50, 1)));
    assert_true(json_is_number(json_array_get(p50, 2)));
    assert_true(json_is_null(json_array_get(p99, 1)));
    assert_true(fabs(json_number_value(json_array_get(p99, 0)) - x->s[0].acquire_ms.p99) < 1e-9);
    assert_true(json_is_number(json_array_get(at(j, "repeats.throughput_per_s"), 1)));
    /* the combined figure: the median over the repeats that have samples */
    assert_true(fabs(json_number_value(at(j, "acquire_ms.p99")) - x->s[0].acquire_ms.p99) < 1e-9);
    json_decref(j);

    char err2[512] = "";
    lb_calibration cal = {.ping_rtt_us = 42.5, .raw_ops_per_s = 150000};
    assert_int_equal(lb_results_write_top(path_of(x, "reptop"), x->sc, c, 2, &cal,
                                          "2024-05-01T10:00:00Z", true, err2, sizeof err2), 0);
    char *argv[] = {"gate", path_of(x, "reptop"), path_of(x, "reptop"), NULL};
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    dup2(null, 1);
    int rc = lb_gate_main(3, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(null);
    assert_int_equal(rc, LB_GATE_PASS);
    lb_summary_free(&c[0]);
    lb_summary_free(&c[1]);
}

/* A folder that cannot be created: -1 and a message naming it. */
static void test_errors_name_the_path(void **state)
{
    fixture *x = *state;
    assert_int_equal(lb_atomic_write(path_of(x, "plain"), "x", 1), 0);
    char err[512] = "";
    char *bad = path_of(x, "plain/sub");
    assert_int_equal(lb_results_write_run(bad, &x->s[0], &x->run, err, sizeof err), -1);
    assert_non_null(strstr(err, "plain"));
}

/* The summary a run writes first: not complete, not passed, no variants; the gate refuses it. */
static void test_begun_summary(void **state)
{
    fixture *x = *state;
    char err[512] = "";
    assert_int_equal(lb_results_write_begun(x->dir, x->sc, "2024-05-01T10:00:00Z", err,
                                            sizeof err), 0);
    json_t *j = load_json(path_of(x, "summary.json"));
    assert_string_equal(json_string_value(at(j, "scenario")), "results-test");
    assert_true(json_is_false(at(j, "complete")));
    assert_true(json_is_false(at(j, "passed")));
    assert_int_equal(json_array_size(at(j, "variants")), 0);
    json_decref(j);
    char *argv[] = {"gate", x->dir, x->dir, NULL};
    fflush(stdout);
    fflush(stderr);
    int saved = dup(1), saved_err = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    int rc = lb_gate_main(3, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved_err, 2);
    close(saved);
    close(saved_err);
    close(null);
    assert_int_equal(rc, LB_GATE_BAD_INPUT);
}

/* --force's clearing: every file a run writes goes (the temporaries of a killed one too), and
 * folders it leaves empty; a user's files and folders stay, wherever they are. */
static void test_clear(void **state)
{
    fixture *x = *state;
    char err[512] = "";
    write_run(x, 0, "a/repeat-1");
    write_run(x, 0, "a/repeat-2");
    write_run(x, 1, "b");
    write_top(x, 2);
    static const char *const ours[] = {
        "index.html", "compare-bars.png", "compare-work.svg", ".summary.json.Ab12Cd",
        "a/latency.png", "b/holders.svg", "b/.timeline.png.tmp", "a/repeat-2/fairness.png"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        assert_int_equal(lb_atomic_write(path_of(x, ours[i]), "x", 1), 0);
    assert_int_equal(mkdir(path_of(x, "mine"), 0755), 0);
    assert_int_equal(mkdir(path_of(x, "empty"), 0755), 0);
    assert_int_equal(mkdir(path_of(x, "b/repeat-x"), 0755), 0);
    static const char *const theirs[] = {
        "notes.txt", "summary.json.bak", "mine/data.txt", "b/my-notes.txt",
        "b/repeat-x/acquisitions.csv", "a/repeat-1/plot.gp"};
    for (size_t i = 0; i < sizeof theirs / sizeof theirs[0]; i++)
        assert_int_equal(lb_atomic_write(path_of(x, theirs[i]), "mine", 4), 0);
    assert_int_equal(symlink("mine", path_of(x, "link")), 0);
    assert_int_equal(lb_atomic_write(path_of(x, "mine/summary.json"), "{}", 2), 0);

    assert_int_equal(lb_results_clear(x->dir, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof theirs / sizeof theirs[0]; i++)
        if (access(path_of(x, theirs[i]), F_OK) != 0)
            fail_msg("%s was removed", theirs[i]);
    /* a user's folder at the top is taken for a variant folder: only a variant's names go */
    static const char *const gone[] = {
        "summary.json", "scenario.json", "comparison.md", "comparison.json", "comparison.csv",
        "index.html", "compare-bars.png", "compare-work.svg", ".summary.json.Ab12Cd",
        "a/repeat-2", "a/latency.png", "a/repeat-1/summary.json", "a/repeat-1/latency.hgrm",
        "b/summary.json", "b/acquisitions.csv", "b/timeline.csv", "b/events.csv",
        "b/clients.csv", "b/holders.svg", "b/.timeline.png.tmp", "mine/summary.json"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        if (access(path_of(x, gone[i]), F_OK) == 0)
            fail_msg("%s is still there", gone[i]);
    assert_int_equal(access(path_of(x, "empty"), F_OK), 0);   /* held nothing of ours */
    assert_int_equal(access(path_of(x, "link"), F_OK), 0);
    /* a folder emptied of ours goes */
    assert_int_equal(unlink(path_of(x, "b/my-notes.txt")), 0);
    assert_int_equal(unlink(path_of(x, "b/repeat-x/acquisitions.csv")), 0);
    assert_int_equal(rmdir(path_of(x, "b/repeat-x")), 0);
    write_run(x, 1, "b");
    assert_int_equal(lb_results_clear(x->dir, err, sizeof err), 0);
    assert_int_equal(access(path_of(x, "b"), F_OK), -1);
    assert_int_equal(lb_results_clear(path_of(x, "no-such"), err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such"));
}

static char *capture(void (*fn)(FILE *, const fixture *), const fixture *x)
{
    static char *buf;   /* static: open_memstream keeps their addresses until fclose */
    static size_t len;
    buf = NULL;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f, x);
    fclose(f);
    return buf;
}

static void print_variant(FILE *f, const fixture *x)
{
    lb_results_print_variant(f, &x->s[0]);
}

static void print_comparison(FILE *f, const fixture *x)
{
    lb_results_print_comparison(f, x->s, 2);
}

static void print_failures(FILE *f, const fixture *x)
{
    lb_results_print_failures(f, &x->s[0]);
}

static void test_terminal(void **state)
{
    fixture *x = *state;
    char *out = capture(print_variant, x);
    assert_non_null(strstr(out, "acquisitions 3"));
    assert_non_null(strstr(out, "throughput 12.0/s"));
    assert_non_null(strstr(out, "lost 0"));
    free(out);

    out = capture(print_comparison, x);
    assert_int_equal(count_lines(out), 3);
    /* aligned: every line puts "algorithm"'s column at the same place */
    const char *l1 = strchr(out, '\n') + 1, *l2 = strchr(l1, '\n') + 1;
    assert_int_equal(strstr(out, "algorithm") - out, strstr(l1, "token") - l1);
    assert_int_equal(strstr(l1, "token") - l1, strstr(l2, "token") - l2);
    free(out);

    x->s[0].expect.nfailures = 1;
    lb_expect_failure f = {.path = "overlaps", .value = 2, .bound = "0"};
    lb_expect_failure *saved = x->s[0].expect.failures;
    x->s[0].expect.failures = &f;
    out = capture(print_failures, x);
    x->s[0].expect.failures = saved;
    x->s[0].expect.nfailures = 0;
    assert_string_equal(out, "EXPECT FAILED a: overlaps = 2, expected 0\n");
    free(out);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_variant_summary),
        T(test_incomplete_variant),
        T(test_null_latencies),
        T(test_csv_files),
        T(test_top_level),
        T(test_top_level_single_and_failed),
        T(test_gate_reads_it),
        T(test_repeats_json),
        T(test_repeats_json_null),
        T(test_errors_name_the_path),
        T(test_begun_summary),
        T(test_clear),
        T(test_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
