/* test_scenario.c -- the scenario loader: the invalid corpus, the shipped scenarios, defaults,
 * group overrides, variants, --set, null mappings and events. Runs from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fields.h"
#include "scenario.h"

#define INVALID_DIR "scenarios/invalid"

static char err[1024];

/* Loads JSON text; fails the test if it does not load. */
static lb_scenario *load_ok(const char *json, const lb_load_options *opt)
{
    lb_scenario *s = NULL;
    err[0] = '\0';
    int rc = lb_scenario_load_buffer("t.json", json, strlen(json), opt, &s, err, sizeof err);
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* Loads JSON text that must fail with exactly `want`. */
static void load_fails(const char *json, const lb_load_options *opt, const char *want)
{
    lb_scenario *s = (lb_scenario *)1;
    err[0] = '\0';
    assert_int_equal(lb_scenario_load_buffer("t.json", json, strlen(json), opt, &s, err,
                                             sizeof err), -1);
    assert_null(s);
    assert_string_equal(err, want);
}

static lb_scenario *load_with(const char *json, const char *const *sets, size_t n)
{
    lb_override ov[16];
    char buf[16][256];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[i], sizeof buf[i], "%s", sets[i]);
        assert_true(lb_override_from_arg(buf[i], &ov[i]));
    }
    lb_load_options opt = {.overrides = ov, .noverrides = n};
    lb_scenario *s = NULL;
    err[0] = '\0';
    lb_scenario_load_buffer("t.json", json, strlen(json), &opt, &s, err, sizeof err);
    return s;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return buf;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- corpus and shipped scenarios ------------------------------------------------------- */

static void test_invalid_corpus(void **state)
{
    (void)state;
    DIR *d = opendir(INVALID_DIR);
    assert_non_null(d);
    int cases = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char json[512], error[512];
        if (!ends_with(e->d_name, ".json"))
            continue;
        snprintf(json, sizeof json, "%s/%s", INVALID_DIR, e->d_name);
        snprintf(error, sizeof error, "%s/%.*s.error", INVALID_DIR,
                 (int)(strlen(e->d_name) - 5), e->d_name);
        const char *want = read_text(error);
        lb_scenario *s = NULL;
        err[0] = '\0';
        int rc = lb_scenario_load(json, NULL, &s, err, sizeof err);
        if (rc != -1 || strcmp(err, want) != 0)
            print_error("%s:\n  want: %s\n  got:  %s\n", json, want, rc ? err : "(loaded)");
        assert_int_equal(rc, -1);
        assert_string_equal(err, want);
        assert_null(s);
        cases++;
    }
    closedir(d);
    assert_true(cases >= 24);
}

/* Every .error has its .json (and the reverse is checked above by read_text). */
static void test_invalid_corpus_pairs(void **state)
{
    (void)state;
    DIR *d = opendir(INVALID_DIR);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        char json[512];
        if (e->d_name[0] == '.')
            continue;
        assert_true(ends_with(e->d_name, ".json") || ends_with(e->d_name, ".error"));
        if (!ends_with(e->d_name, ".error"))
            continue;
        snprintf(json, sizeof json, "%s/%.*s.json", INVALID_DIR, (int)(strlen(e->d_name) - 6),
                 e->d_name);
        FILE *f = fopen(json, "rb");
        if (!f)
            print_error("%s has no .json\n", e->d_name);
        assert_non_null(f);
        fclose(f);
    }
    closedir(d);
}

/* Every scenarios/NAME.json loads, and its dump loads back to the same dump. */
static void test_shipped_scenarios_load(void **state)
{
    (void)state;
    DIR *d = opendir("scenarios");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char path[512];
        if (!ends_with(e->d_name, ".json"))
            continue;
        snprintf(path, sizeof path, "scenarios/%s", e->d_name);
        lb_scenario *s = NULL, *again = NULL;
        if (lb_scenario_load(path, NULL, &s, err, sizeof err) != 0)
            print_error("%s\n", err);
        assert_non_null(s);
        char *dump = lb_scenario_dump(s);
        assert_non_null(dump);
        assert_int_equal(lb_scenario_load_buffer(path, dump, strlen(dump), NULL, &again, err,
                                                 sizeof err), 0);
        char *dump2 = lb_scenario_dump(again);
        assert_string_equal(dump, dump2);
        free(dump);
        free(dump2);
        lb_scenario_free(again);
        lb_scenario_free(s);
        n++;
    }
    closedir(d);
    assert_true(n >= 2);
}

static void test_seed_scenarios(void **state)
{
    (void)state;
    lb_scenario *s = NULL;
    assert_int_equal(lb_scenario_load("scenarios/seed-timeout.json", NULL, &s, err, sizeof err),
                     0);
    assert_int_equal(s->ngroups, 2);
    assert_false(s->groups[0].workload.release);
    assert_int_equal(s->groups[0].lock.ttl_ms, 0);
    assert_int_equal(s->groups[1].lock.wait_timeout_ms, 2000);
    assert_true(s->groups[1].start_ms > 0);
    assert_true(s->groups[1].workload.release);
    assert_int_equal(s->groups[1].first_client, 1);
    bool found = false;
    for (size_t i = 0; i < s->nexpect; i++)
        if (strcmp(s->expect[i].path, "timeout_ms.max") == 0) {
            found = true;
            assert_false(s->expect[i].equal);
            assert_true(s->expect[i].min == 2000 && s->expect[i].max == 2500);
        }
    assert_true(found);
    lb_scenario_free(s);

    assert_int_equal(lb_scenario_load("scenarios/seed-five-clients.json", NULL, &s, err,
                                      sizeof err), 0);
    assert_int_equal(s->nclients, 5);
    assert_string_equal(s->expect[0].path, "counter.actual");
    assert_true(s->expect[0].equal && s->expect[0].min == 5);
    lb_scenario_free(s);
}

/* ---- defaults and mappings ---------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    lb_scenario *s = load_ok("{\"name\": \"x\"}", NULL);
    assert_string_equal(s->name, "x");
    assert_string_equal(s->description, "");
    assert_int_equal(s->seed, 1);
    assert_int_equal(s->redis.servers, 1);
    assert_int_equal(s->redis.persistence, LB_PERSIST_NONE);
    const lb_lock *l = &s->lock;
    assert_int_equal(l->algorithm, LB_ALG_TOKEN);
    assert_string_equal(l->key, "testlock");
    assert_int_equal(l->keys, 1);
    assert_int_equal(l->ttl_ms, 30000);
    assert_int_equal(l->wait_timeout_ms, -1);
    assert_int_equal(l->wait, LB_WAIT_POLL);
    assert_int_equal(l->backoff.policy, LB_BACKOFF_EXPONENTIAL);
    assert_int_equal(l->backoff.base_ms, 1);
    assert_int_equal(l->backoff.cap_ms, 100);
    assert_false(l->renew);
    assert_false(l->fencing);
    assert_true(fabs(l->drift_factor - 0.01) < 1e-12);
    assert_int_equal(l->command_timeout_ms, 1000);
    assert_int_equal(l->min_replicas, 0);
    assert_int_equal(l->replica_timeout_ms, 100);
    assert_int_equal(s->workload.iterations, 1);
    assert_int_equal(s->workload.duration_ms, -1);
    assert_int_equal(s->workload.hold_ms.kind, LB_DIST_FIXED);
    assert_int_equal(s->workload.hold_ms.a, 0);
    assert_int_equal(s->workload.think_ms.a, 0);
    assert_int_equal(s->workload.critical_section, LB_CS_COUNTER);
    assert_true(s->workload.release);
    assert_int_equal(s->network.latency_ms, 0);
    assert_int_equal(s->network.jitter_ms, 0);
    assert_int_equal(s->ngroups, 1);
    assert_string_equal(s->groups[0].name, "worker");
    assert_int_equal(s->groups[0].count, 5);
    assert_int_equal(s->groups[0].start_ms, 0);
    assert_memory_equal(&s->groups[0].workload, &s->workload, sizeof s->workload);
    assert_int_equal(s->groups[0].lock.ttl_ms, 30000);
    assert_int_equal(s->nclients, 5);
    assert_int_equal(s->nevents, 0);
    assert_int_equal(s->nexpect, 0);
    assert_int_equal(s->nvariants, 0);
    assert_int_equal(lb_scenario_variant_count(s), 1);
    assert_string_equal(lb_scenario_variant_name(s, 0), "default");
    assert_ptr_equal(lb_scenario_variant(s, 0), s);
    assert_null(lb_scenario_variant(s, 1));

    char *dump = lb_scenario_dump(s);
    for (const char *k = "\"redis\"\0\"persistence\"\0\"backoff\"\0\"drift_factor\"\0"
                         "\"critical_section\"\0\"clients\"\0\"events\"\0\"variants\"\0"
                         "\"expect\"\0\"wait_timeout_ms\": null\0";
         *k; k += strlen(k) + 1)
        assert_non_null(strstr(dump, k));
    free(dump);
    lb_scenario_free(s);
}

static void test_null_mapping(void **state)
{
    (void)state;
    lb_scenario *s = load_ok("{\"name\": \"x\", \"lock\": {\"ttl_ms\": null, \"wait_timeout_ms\": 0},"
                             " \"workload\": {\"duration_ms\": 500}}", NULL);
    assert_int_equal(s->lock.ttl_ms, 0);
    assert_int_equal(s->lock.wait_timeout_ms, 0);
    assert_int_equal(s->workload.duration_ms, 500);
    assert_int_equal(s->workload.iterations, 0);   /* a duration alone: no iteration limit */
    lb_scenario_free(s);

    s = load_ok("{\"name\": \"x\", \"lock\": {\"wait_timeout_ms\": null},"
                " \"workload\": {\"duration_ms\": 500, \"iterations\": 3}}", NULL);
    assert_int_equal(s->lock.ttl_ms, 30000);
    assert_int_equal(s->lock.wait_timeout_ms, -1);
    assert_int_equal(s->workload.iterations, 3);
    lb_scenario_free(s);
}

static void test_distributions(void **state)
{
    (void)state;
    lb_scenario *s = load_ok("{\"name\": \"x\", \"workload\": {\"hold_ms\": {\"uniform\": [2, 9]},"
                             " \"think_ms\": {\"exponential\": 4}}}", NULL);
    assert_int_equal(s->workload.hold_ms.kind, LB_DIST_UNIFORM);
    assert_int_equal(s->workload.hold_ms.a, 2);
    assert_int_equal(s->workload.hold_ms.b, 9);
    assert_int_equal(s->workload.think_ms.kind, LB_DIST_EXPONENTIAL);
    assert_int_equal(s->workload.think_ms.mean, 4);
    lb_scenario_free(s);
    load_fails("{\"name\": \"x\", \"workload\": {\"hold_ms\": {\"uniform\": [2]}}}", NULL,
               "t.json: workload.hold_ms.uniform: must be [a, b] with non-negative integers, "
               "got [2]");
    load_fails("{\"name\": \"x\", \"workload\": {\"hold_ms\": -1}}", NULL,
               "t.json: workload.hold_ms: must be a non-negative integer, {\"uniform\": [a, b]} "
               "or {\"exponential\": mean}, got -1");
}

/* ---- client groups -------------------------------------------------------------------------- */

static void test_group_overrides(void **state)
{
    (void)state;
    lb_scenario *s = load_ok(
        "{\"name\": \"x\", \"lock\": {\"ttl_ms\": 500, \"backoff\": {\"policy\": \"linear\","
        " \"cap_ms\": 50}}, \"workload\": {\"duration_ms\": 1000, \"hold_ms\": 3},"
        " \"network\": {\"latency_ms\": 2},"
        " \"clients\": [{\"name\": \"a\", \"count\": 2},"
        "  {\"count\": 3, \"start_ms\": 40, \"lock\": {\"backoff\": {\"base_ms\": 5}, \"wait\": \"fifo\"},"
        "   \"workload\": {\"iterations\": 7}, \"network\": {\"jitter_ms\": 1}}]}", NULL);
    assert_int_equal(s->ngroups, 2);
    assert_int_equal(s->nclients, 5);
    const lb_client_group *a = &s->groups[0], *b = &s->groups[1];
    assert_string_equal(a->name, "a");
    assert_int_equal(a->first_client, 0);
    assert_int_equal(a->lock.ttl_ms, 500);
    assert_int_equal(a->lock.wait, LB_WAIT_POLL);
    assert_int_equal(a->workload.iterations, 0);
    assert_string_equal(b->name, "group-1");
    assert_int_equal(b->first_client, 2);
    assert_int_equal(b->count, 3);
    assert_int_equal(b->start_ms, 40);
    assert_int_equal(b->lock.ttl_ms, 500);                        /* inherited */
    assert_int_equal(b->lock.wait, LB_WAIT_FIFO);                 /* overridden */
    assert_int_equal(b->lock.backoff.policy, LB_BACKOFF_LINEAR);  /* nested merge */
    assert_int_equal(b->lock.backoff.base_ms, 5);
    assert_int_equal(b->lock.backoff.cap_ms, 50);
    assert_int_equal(b->workload.iterations, 7);
    assert_int_equal(b->workload.duration_ms, 1000);
    assert_int_equal(b->workload.hold_ms.a, 3);
    assert_int_equal(b->network.latency_ms, 2);
    assert_int_equal(b->network.jitter_ms, 1);
    lb_scenario_free(s);

    /* The group's effective workload gets the default that fits it, and so does its reload. */
    s = load_ok("{\"name\": \"x\", \"workload\": {\"duration_ms\": 100}, \"clients\": ["
                "{\"workload\": {\"duration_ms\": null}}, {\"name\": \"b\"},"
                " {\"name\": \"c\", \"workload\": {\"duration_ms\": 50}}]}", NULL);
    assert_int_equal(s->workload.iterations, 0);
    assert_int_equal(s->groups[0].workload.iterations, 1);
    assert_int_equal(s->groups[0].workload.duration_ms, -1);
    assert_int_equal(s->groups[1].workload.iterations, 0);
    assert_int_equal(s->groups[2].workload.iterations, 0);
    char *dump = lb_scenario_dump(s);
    lb_scenario *again = load_ok(dump, NULL);
    free(dump);
    for (size_t i = 0; i < 3; i++)
        assert_memory_equal(&again->groups[i].workload, &s->groups[i].workload,
                            sizeof s->workload);
    lb_scenario_free(again);
    lb_scenario_free(s);

    load_fails("{\"name\": \"x\", \"clients\": [{\"lock\": 5}]}", NULL,
               "t.json: clients.0.lock: must be an object, got 5");
    load_fails("{\"name\": \"x\", \"clients\": [{\"count\": 3}, {\"lock\": {\"ttl_ms\": -1}}]}",
               NULL, "t.json: clients.1.lock.ttl_ms: must be a non-negative integer or null, "
                     "got -1");
    load_fails("{\"name\": \"x\", \"redis\": {\"servers\": 3}, \"clients\": [{\"lock\": "
               "{\"algorithm\": \"redlock\"}}, {\"name\": \"b\"}]}", NULL,
               "t.json: lock.algorithm: token uses exactly one server, but redis.servers is 3");
    load_fails("{\"name\": \"x\", \"clients\": [{\"count\": 30000}, {\"name\": \"b\", "
               "\"count\": 30000}]}", NULL,
               "t.json: clients: 60000 clients in all, at most 50000 (1000000 with "
               "\"driver\": \"sim\")");
}

/* ---- variants ----------------------------------------------------------------------------- */

static const char *variants_json =
    "{\"name\": \"x\", \"lock\": {\"backoff\": {\"cap_ms\": 20}},"
    " \"variants\": [{\"name\": \"full-jitter\", \"set\": {\"lock.backoff.policy\": \"full-jitter\"}},"
    "  {\"name\": \"redlock\", \"set\": {\"redis.servers\": 3, \"lock.algorithm\": \"redlock\","
    "   \"clients.0.count\": 2}},"
    "  {\"name\": \"plain\"}],"
    " \"expect\": {\"overlaps\": 0, \"errors\": 0,"
    "  \"variants\": {\"redlock\": {\"errors\": {\"max\": 3}, \"acquisitions\": 2}}}}";

static const lb_expect *find_expect(const lb_scenario *s, const char *path)
{
    for (size_t i = 0; i < s->nexpect; i++)
        if (strcmp(s->expect[i].path, path) == 0)
            return &s->expect[i];
    return NULL;
}

static void test_variants(void **state)
{
    (void)state;
    lb_scenario *s = load_ok(variants_json, NULL);
    assert_null(s->variant);
    assert_int_equal(lb_scenario_variant_count(s), 3);
    assert_string_equal(lb_scenario_variant_name(s, 0), "full-jitter");
    assert_string_equal(lb_scenario_variant_name(s, 1), "redlock");
    assert_string_equal(lb_scenario_variant_name(s, 2), "plain");
    assert_null(lb_scenario_variant(s, 3));
    assert_int_equal(s->variants[1].nsets, 3);
    assert_string_equal(s->variants[1].sets[0].path, "redis.servers");
    assert_string_equal(s->variants[1].sets[0].value, "3");
    assert_string_equal(s->variants[1].sets[1].value, "\"redlock\"");
    assert_int_equal(s->variants[2].nsets, 0);

    const lb_scenario *fj = lb_scenario_variant(s, 0), *rl = lb_scenario_variant(s, 1);
    assert_string_equal(fj->variant, "full-jitter");
    assert_int_equal(fj->groups[0].lock.backoff.policy, LB_BACKOFF_FULL_JITTER);
    assert_int_equal(fj->groups[0].lock.backoff.cap_ms, 20);
    assert_int_equal(fj->nvariants, 0);
    assert_int_equal(fj->nexpect, 2);
    assert_int_equal(rl->redis.servers, 3);
    assert_int_equal(rl->groups[0].lock.algorithm, LB_ALG_REDLOCK);
    assert_int_equal(rl->groups[0].lock.backoff.policy, LB_BACKOFF_EXPONENTIAL);
    assert_int_equal(rl->nclients, 2);
    assert_int_equal(rl->nexpect, 3);
    const lb_expect *e = find_expect(rl, "errors");
    assert_non_null(e);
    assert_false(e->equal);
    assert_true(isinf(e->min) && e->min < 0 && e->max == 3);
    e = find_expect(rl, "acquisitions");
    assert_true(e && e->equal && e->min == 2);
    /* the base is untouched */
    assert_int_equal(s->redis.servers, 1);
    assert_int_equal(s->nexpect, 2);
    assert_int_equal(s->groups[0].lock.backoff.policy, LB_BACKOFF_EXPONENTIAL);

    char *dump = lb_scenario_dump(s);
    lb_scenario *again;
    assert_non_null(strstr(dump, "\"full-jitter\""));
    free(dump);
    dump = lb_scenario_dump(rl);
    assert_non_null(strstr(dump, "\"redlock\""));
    assert_null(strstr(dump, "full-jitter"));
    free(dump);
    lb_scenario_free(s);

    /* a variant that sets a duration drops the one-iteration default; the dump reloads to the
     * same variants */
    s = load_ok("{\"name\": \"x\", \"variants\": [{\"name\": \"timed\", \"set\": "
                "{\"workload.duration_ms\": 300}}, {\"name\": \"both\", \"set\": "
                "{\"workload.duration_ms\": 300, \"workload.iterations\": 4}}]}", NULL);
    assert_int_equal(s->workload.iterations, 1);
    assert_int_equal(lb_scenario_variant(s, 0)->groups[0].workload.iterations, 0);
    assert_int_equal(lb_scenario_variant(s, 0)->groups[0].workload.duration_ms, 300);
    assert_int_equal(lb_scenario_variant(s, 1)->groups[0].workload.iterations, 4);
    dump = lb_scenario_dump(s);
    again = load_ok(dump, NULL);
    free(dump);
    for (size_t i = 0; i < 2; i++) {
        char *a = lb_scenario_dump(lb_scenario_variant(s, i));
        char *b = lb_scenario_dump(lb_scenario_variant(again, i));
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    lb_scenario_free(again);
    lb_scenario_free(s);

    load_fails("{\"name\": \"x\", \"variants\": [{\"name\": \"a\", \"set\": "
               "{\"redis.servers\": 2}}]}", NULL,
               "t.json: variants[0] (a): lock.algorithm: token uses exactly one server, but "
               "redis.servers is 2");
    load_fails("{\"name\": \"x\", \"variants\": [{\"name\": \"a\", \"set\": "
               "{\"clients.1.count\": 2}}]}", NULL,
               "t.json: variants[0] (a): set clients.1.count: clients has no element 1 (it has 1)");
    load_fails("{\"name\": \"x\", \"variants\": [{\"name\": \"a\", \"sets\": {}}]}", NULL,
               "t.json: variants.0.sets: unknown key");
    load_fails("{\"name\": \"x\", \"variants\": {\"a\": {}}}", NULL,
               "t.json: variants: must be an array of variants, got {\"a\": {}}");
}

/* ---- --set ------------------------------------------------------------------------------------ */

static void test_set_overrides(void **state)
{
    (void)state;
    const char *sets[] = {"lock.backoff.policy=full-jitter", "clients.0.count=2", "seed=42",
                          "workload.hold_ms={\"uniform\": [1, 3]}", "lock.ttl_ms=null",
                          "expect.counter.actual=2", "lock.key=\"k\"", "seed=43"};
    lb_scenario *s = load_with("{\"name\": \"x\"}", sets, 8);
    assert_non_null(s);
    assert_int_equal(s->lock.backoff.policy, LB_BACKOFF_FULL_JITTER);
    assert_int_equal(s->groups[0].lock.backoff.policy, LB_BACKOFF_FULL_JITTER);
    assert_int_equal(s->groups[0].count, 2);
    assert_string_equal(s->groups[0].name, "worker");
    assert_int_equal(s->seed, 43);   /* the last one wins: --seed goes after the --sets */
    assert_int_equal(s->workload.hold_ms.kind, LB_DIST_UNIFORM);
    assert_int_equal(s->lock.ttl_ms, 0);
    assert_string_equal(s->lock.key, "k");
    assert_int_equal(s->nexpect, 1);
    assert_string_equal(s->expect[0].path, "counter.actual");
    lb_scenario_free(s);

    /* per-variant expectation and a variant's own key */
    const char *vsets[] = {"expect.variants.redlock.overlaps=1"};
    s = load_with(variants_json, vsets, 1);
    assert_non_null(s);
    assert_true(find_expect(lb_scenario_variant(s, 1), "overlaps")->min == 1);
    assert_true(find_expect(lb_scenario_variant(s, 0), "overlaps")->min == 0);
    lb_scenario_free(s);

    const char *bad[][2] = {
        {"lock.ttl_ms=abc", "t.json: lock.ttl_ms: must be a non-negative integer or null, "
                            "got \"abc\""},
        {"lock.backof.policy=none", "t.json: lock.backof: unknown key"},
        {"clients.3.count=1", "t.json: --set clients.3.count: clients has no element 3 (it has 1)"},
        {"clients.x.count=1", "t.json: --set clients.x.count: clients is a list: x is not an index"},
        {"name.x=1", "t.json: --set name.x: name is not an object"},
        {"lock..ttl_ms=1", "t.json: --set lock..ttl_ms: empty key in the path"},
        {"redis.servers=3", "t.json: lock.algorithm: token uses exactly one server, but "
                            "redis.servers is 3"},
        {"expect.p99=1", "t.json: expect.p99: unknown summary path"},
        {"seed=-1", "t.json: seed: must be a non-negative integer, got -1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = load_with("{\"name\": \"x\"}", &bad[i][0], 1);
        assert_null(s);
        assert_string_equal(err, bad[i][1]);
    }

    lb_override none = {NULL, "1"};
    lb_load_options opt = {.overrides = &none, .noverrides = 1};
    load_fails("{\"name\": \"x\"}", &opt, "t.json: --set: needs PATH=VALUE");

    char arg[] = "a.b=c=d", noeq[] = "abc", nopath[] = "=1";
    lb_override o;
    assert_true(lb_override_from_arg(arg, &o));
    assert_string_equal(o.path, "a.b");
    assert_string_equal(o.value, "c=d");
    assert_false(lb_override_from_arg(noeq, &o));
    assert_false(lb_override_from_arg(nopath, &o));
}

/* ---- events ------------------------------------------------------------------------------- */

static void test_events(void **state)
{
    (void)state;
    lb_scenario *s = load_ok(
        "{\"name\": \"x\", \"redis\": {\"servers\": 3}, \"lock\": {\"algorithm\": \"redlock\"},"
        " \"events\": ["
        "  {\"at_ms\": 10, \"do\": \"crash\", \"clients\": [4, 1], \"when\": \"holding\","
        "   \"restart_after_ms\": 100},"
        "  {\"at_ms\": 20, \"do\": \"pause\", \"clients\": \"all\", \"duration_ms\": 50},"
        "  {\"at_ms\": 30, \"do\": \"delay\", \"clients\": [0], \"latency_ms\": 5,"
        "   \"duration_ms\": 60},"
        "  {\"at_ms\": 40, \"do\": \"partition\", \"clients\": [2], \"duration_ms\": 70},"
        "  {\"at_ms\": 50, \"do\": \"reset\", \"clients\": [3]},"
        "  {\"at_ms\": 60, \"do\": \"kill-server\", \"server\": 2},"
        "  {\"at_ms\": 70, \"do\": \"pause-server\", \"server\": 1, \"duration_ms\": 80},"
        "  {\"at_ms\": 80, \"do\": \"clock-skew\", \"clients\": [0], \"offset_ms\": -500},"
        "  {\"at_ms\": 0, \"do\": \"crash\", \"clients\": [0]}]}", NULL);
    assert_int_equal(s->nevents, 9);
    const lb_event *e = s->events;
    assert_int_equal(e[0].action, LB_EV_CRASH);
    assert_int_equal(e[0].at_ms, 10);
    assert_false(e[0].all_clients);
    assert_int_equal(e[0].nclients, 2);
    assert_int_equal(e[0].clients[0], 4);
    assert_int_equal(e[0].clients[1], 1);
    assert_true(e[0].when_holding);
    assert_int_equal(e[0].restart_after_ms, 100);
    assert_int_equal(e[0].server, -1);
    assert_int_equal(e[1].action, LB_EV_PAUSE);
    assert_true(e[1].all_clients);
    assert_int_equal(e[1].nclients, 5);
    assert_int_equal(e[1].clients[4], 4);
    assert_false(e[1].when_holding);
    assert_int_equal(e[1].duration_ms, 50);
    assert_int_equal(e[2].action, LB_EV_DELAY);
    assert_int_equal(e[2].latency_ms, 5);
    assert_int_equal(e[2].jitter_ms, 0);
    assert_int_equal(e[2].duration_ms, 60);
    assert_int_equal(e[3].action, LB_EV_PARTITION);
    assert_int_equal(e[3].duration_ms, 70);
    assert_int_equal(e[4].action, LB_EV_RESET);
    assert_int_equal(e[4].clients[0], 3);
    assert_int_equal(e[5].action, LB_EV_KILL_SERVER);
    assert_int_equal(e[5].server, 2);
    assert_int_equal(e[5].nclients, 0);
    assert_int_equal(e[5].restart_after_ms, -1);
    assert_int_equal(e[6].action, LB_EV_PAUSE_SERVER);
    assert_int_equal(e[6].server, 1);
    assert_int_equal(e[6].duration_ms, 80);
    assert_int_equal(e[7].action, LB_EV_CLOCK_SKEW);
    assert_int_equal(e[7].offset_ms, -500);
    assert_int_equal(e[8].restart_after_ms, -1);
    assert_string_equal(lb_event_action_name(e[5].action), "kill-server");
    lb_scenario_free(s);

    load_fails("{\"name\": \"x\", \"events\": [{\"do\": \"reset\", \"clients\": [0]}]}", NULL,
               "t.json: events.0.at_ms: missing required key");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"clients\": [0]}]}", NULL,
               "t.json: events.0.do: missing required key");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"delay\", \"clients\": [0],"
               " \"duration_ms\": 5}]}", NULL,
               "t.json: events.0.latency_ms: missing required key for delay");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"crash\", \"clients\": [0],"
               " \"when\": \"idle\"}]}", NULL,
               "t.json: events.0.when: must be one of holding, got \"idle\"");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"reset\", \"clients\": []}]}",
               NULL, "t.json: events.0.clients: must be \"all\" or a non-empty list of client "
                     "numbers, got []");
    load_fails("{\"name\": \"x\", \"events\": {}}", NULL,
               "t.json: events: must be an array of events, got {}");
}

/* ---- random schedules ---------------------------------------------------------------------- */

static lb_scenario *load_seeded(const char *json, const char *seed)
{
    char arg[64];
    snprintf(arg, sizeof arg, "seed=%s", seed);
    const char *sets[] = {arg};
    lb_scenario *s = load_with(json, sets, 1);
    if (!s)
        print_error("unexpected error: %s\n", err);
    assert_non_null(s);
    return s;
}

static bool same_events(const lb_scenario *a, const lb_scenario *b)
{
    if (a->nevents != b->nevents)
        return false;
    for (size_t i = 0; i < a->nevents; i++) {
        const lb_event *x = &a->events[i], *y = &b->events[i];
        if (x->at_ms != y->at_ms || x->duration_ms != y->duration_ms || x->server != y->server ||
            x->offset_ms != y->offset_ms || x->nclients != y->nclients ||
            x->restart_after_ms != y->restart_after_ms)
            return false;
        for (size_t k = 0; k < x->nclients; k++)
            if (x->clients[k] != y->clients[k])
                return false;
    }
    return true;
}

static const char random_json[] =
    "{\"name\": \"x\", \"redis\": {\"servers\": 5}, \"lock\": {\"algorithm\": \"redlock\"},"
    " \"clients\": [{\"count\": 10}], \"events\": ["
    "  {\"at_ms\": {\"uniform\": [10, 20]}, \"do\": \"pause\", \"clients\": {\"choose\": 3},"
    "   \"duration_ms\": {\"exponential\": 100}, \"times\": 2000},"
    "  {\"at_ms\": 5, \"do\": \"kill-server\", \"server\": {\"choose\": 2},"
    "   \"restart_after_ms\": {\"uniform\": [1, 9]}},"
    "  {\"at_ms\": 7, \"do\": \"clock-skew\", \"clients\": [1], \"p\": 0.5, \"times\": 1000,"
    "   \"offset_ms\": {\"uniform\": [-50, 50]}}]}";

/* Distributions, choices, chances and copies are drawn from the seed when the file loads: the
 * scenario holds plain events, within bounds, in the file's order, the same for the same seed. */
static void test_random_schedules(void **state)
{
    (void)state;
    lb_scenario *s = load_seeded(random_json, "11");
    size_t pauses = 0, kills = 0, skews = 0;
    double at = 0, dur = 0, off = 0;
    for (size_t i = 0; i < s->nevents; i++) {
        const lb_event *e = &s->events[i];
        if (e->action == LB_EV_PAUSE) {
            assert_int_equal(i, pauses);   /* the copies of the first event come first */
            pauses++;
            assert_in_range(e->at_ms, 10, 20);
            at += (double)e->at_ms;
            dur += (double)e->duration_ms;
            assert_int_equal(e->nclients, 3);
            assert_true(e->clients[0] < e->clients[1] && e->clients[1] < e->clients[2]);
            assert_in_range(e->clients[2], 0, 9);
        } else if (e->action == LB_EV_KILL_SERVER) {
            assert_in_range(e->restart_after_ms, 1, 9);
            assert_in_range(e->server, 0, 4);
            kills++;
        } else {
            assert_int_equal(e->action, LB_EV_CLOCK_SKEW);
            assert_in_range(e->offset_ms + 50, 0, 100);
            off += (double)e->offset_ms;
            skews++;
        }
    }
    assert_int_equal(pauses, 2000);
    assert_int_equal(kills, 2);                        /* one event per server chosen */
    assert_int_not_equal(s->events[2000].server, s->events[2001].server);
    assert_int_equal(s->events[2000].restart_after_ms, s->events[2001].restart_after_ms);
    assert_in_range(skews, 430, 570);                  /* p 0.5 of 1000: 4.4 sigma either side */
    assert_true(fabs(at / 2000 - 15.0) < 0.3);        /* uniform [10, 20]: mean 15, sd 0.07 */
    assert_true(fabs(dur / 2000 - 100.0) < 10.0);     /* exponential 100: sd of the mean 2.2 */
    assert_true(fabs(off / (double)skews) < 5.0);      /* uniform [-50, 50]: sd of the mean 1.3 */

    lb_scenario *again = load_seeded(random_json, "11"), *other = load_seeded(random_json, "12");
    assert_true(same_events(s, again));
    assert_false(same_events(s, other));
    lb_scenario_free(again);
    lb_scenario_free(other);

    /* The resolved file holds the draws: it loads back to the same events with any seed. */
    char *dump = lb_scenario_dump(s);
    assert_null(strstr(dump, "uniform"));
    assert_null(strstr(dump, "choose"));
    lb_scenario *back = load_seeded(dump, "99");
    assert_true(same_events(s, back));
    lb_scenario_free(back);
    free(dump);
    lb_scenario_free(s);

    /* An event's draws are its own: changing the first leaves the second's alone. */
    static const char one[] =
        "{\"name\": \"x\", \"clients\": [{\"count\": 4}], \"events\": ["
        "  {\"at_ms\": {\"uniform\": [0, 1000]}, \"do\": \"reset\", \"clients\": {\"choose\": 2}},"
        "  {\"at_ms\": {\"uniform\": [0, 1000]}, \"do\": \"crash\", \"clients\": {\"choose\": 2}}]}";
    static const char two[] =
        "{\"name\": \"x\", \"clients\": [{\"count\": 4}], \"events\": ["
        "  {\"at_ms\": {\"exponential\": 9}, \"do\": \"reset\", \"clients\": [1], \"p\": 0.3},"
        "  {\"at_ms\": {\"uniform\": [0, 1000]}, \"do\": \"crash\", \"clients\": {\"choose\": 2}}]}";
    lb_scenario *a = load_seeded(one, "5"), *b = load_seeded(two, "5");
    const lb_event *ca = &a->events[a->nevents - 1], *cb = &b->events[b->nevents - 1];
    assert_int_equal(ca->action, LB_EV_CRASH);
    assert_int_equal(ca->at_ms, cb->at_ms);
    assert_int_equal(ca->clients[0], cb->clients[0]);
    assert_int_equal(ca->clients[1], cb->clients[1]);
    lb_scenario_free(a);
    lb_scenario_free(b);

    /* p 0 never happens, p 1 always; choose all is everyone. */
    s = load_ok("{\"name\": \"x\", \"clients\": [{\"count\": 3}], \"events\": ["
                " {\"at_ms\": 1, \"do\": \"reset\", \"clients\": [0], \"p\": 0, \"times\": 50},"
                " {\"at_ms\": 1, \"do\": \"reset\", \"clients\": {\"choose\": 3}, \"p\": 1}]}",
                NULL);
    assert_int_equal(s->nevents, 1);
    assert_int_equal(s->events[0].nclients, 3);
    lb_scenario_free(s);

    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": {\"uniform\": [5, 2]}, \"do\": \"reset\","
               " \"clients\": [0]}]}", NULL,
               "t.json: events.0.at_ms.uniform: a must not exceed b, got [5, 2]");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": {\"uniform\": [-5, 2]}, \"do\": \"reset\","
               " \"clients\": [0]}]}", NULL,
               "t.json: events.0.at_ms.uniform: must be [a, b], integers from 0 to 1000000000000, "
               "got [-5, 2]");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"pause\", \"clients\": [0],"
               " \"duration_ms\": {\"exponential\": 0}}]}", NULL,
               "t.json: events.0.duration_ms.exponential: must be a positive number (the mean, ms),"
               " got 0");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": {\"normal\": 3}, \"do\": \"reset\","
               " \"clients\": [0]}]}", NULL,
               "t.json: events.0.at_ms: must be an integer, {\"uniform\": [a, b]} or "
               "{\"exponential\": mean}, got {\"normal\": 3}");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"reset\","
               " \"clients\": {\"choose\": 6}}]}", NULL,
               "t.json: events.0.clients.choose: must be an integer from 1 to 5 (the clients), "
               "got 6");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"kill-server\","
               " \"server\": {\"choose\": 2}}]}", NULL,
               "t.json: events.0.server.choose: must be an integer from 1 to 1 (the servers), "
               "got 2");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"reset\", \"clients\": [0],"
               " \"p\": 1.5}]}", NULL,
               "t.json: events.0.p: must be a number from 0 to 1 (the chance the event happens), "
               "got 1.5");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"reset\", \"clients\": [0],"
               " \"times\": 0}]}", NULL,
               "t.json: events.0.times: must be an integer from 1 to 10000 (events drawn), got 0");
    /* A drawn event is checked as the file's: its messages name the file's event. */
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"reset\", \"clients\": [0]},"
               " {\"at_ms\": 1, \"do\": \"reset\", \"clients\": [0], \"times\": 3, \"when\": 1}]}",
               NULL, "t.json: events.1.when: unknown key for reset");
}

/* The command line's driver wins: a file with a model runs on a real driver with --driver. */
static void test_driver_given_over_sim_model(void **state)
{
    (void)state;
    static const char json[] =
        "{\"name\": \"x\", \"driver\": \"sim\", \"sim\": {\"rtt_us\": 7}}";
    const char *sets[] = {"driver=loop"};
    lb_scenario *s = load_with(json, sets, 1);
    assert_non_null(s);
    assert_int_equal(lb_scenario_driver(s), LB_DRIVER_LOOP);
    lb_scenario_free(s);
    load_fails("{\"name\": \"x\", \"driver\": \"loop\", \"sim\": {\"rtt_us\": 7}}", NULL,
               "t.json: sim: the simulator's model, but no variant runs on the simulator (set "
               "\"driver\": \"sim\", or --driver sim)");
}

static void test_external_servers(void **state)
{
    (void)state;
    const char *kill = "{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"kill-server\","
                       " \"server\": 0}]}";
    const char *pause = "{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"pause-server\","
                        " \"server\": 0, \"duration_ms\": 10}]}";
    lb_load_options ext = {.external_servers = true};
    lb_scenario_free(load_ok(kill, NULL));
    load_fails(kill, &ext, "t.json: events.0.do: kill-server needs servers that lockbench "
                           "manages, not --redis");
    load_fails(pause, &ext, "t.json: events.0.do: pause-server needs servers that lockbench "
                            "manages, not --redis");
    lb_scenario_free(load_ok("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"reset\","
                             " \"clients\": \"all\"}]}", &ext));
}

/* redis.replicas and the events that act on replicas: ranges, defaults, what needs replicas,
 * and where replicas cannot be (--redis, the simulator). */
static void test_replicas(void **state)
{
    (void)state;
    lb_load_options ext = {.external_servers = true};
    lb_scenario *s = load_ok("{\"name\": \"x\", \"redis\": {\"replicas\": 2}, \"events\": ["
                             "{\"at_ms\": 1, \"do\": \"failover\", \"server\": 0},"
                             "{\"at_ms\": 2, \"do\": \"failover\", \"server\": 0, \"old\": \"demote\"},"
                             "{\"at_ms\": 3, \"do\": \"delay-replication\", \"server\": 0,"
                             " \"latency_ms\": 50, \"duration_ms\": 100},"
                             "{\"at_ms\": 4, \"do\": \"partition-replication\", \"server\": 0,"
                             " \"duration_ms\": 10},"
                             "{\"at_ms\": 5, \"do\": \"failover\", \"server\": 0,"
                             " \"restart_after_ms\": 100}]}", NULL);
    assert_int_equal(s->redis.replicas, 2);
    assert_int_equal(s->events[0].action, LB_EV_FAILOVER);
    assert_int_equal(s->events[0].old, LB_OLD_KILL);          /* the default */
    assert_int_equal(s->events[0].restart_after_ms, -1);
    assert_int_equal(s->events[1].old, LB_OLD_DEMOTE);
    assert_int_equal(s->events[2].action, LB_EV_DELAY_REPLICATION);
    assert_int_equal(s->events[2].latency_ms, 50);
    assert_int_equal(s->events[3].action, LB_EV_PARTITION_REPLICATION);
    assert_int_equal(s->events[4].restart_after_ms, 100);
    char *dump = lb_scenario_dump(s);
    assert_non_null(strstr(dump, "\"replicas\": 2"));
    assert_non_null(strstr(dump, "\"old\": \"kill\""));
    free(dump);
    lb_scenario_free(s);
    s = load_ok("{\"name\": \"x\"}", NULL);
    assert_int_equal(s->redis.replicas, 0);
    lb_scenario_free(s);

    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 5}}", NULL,
               "t.json: redis.replicas: must be an integer from 0 to 4, got 5");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"failover\", "
               "\"server\": 0}]}", NULL,
               "t.json: events.0.server: failover needs replicas of server 0, but redis.replicas "
               "is 0");
    load_fails("{\"name\": \"x\", \"events\": [{\"at_ms\": 1, \"do\": \"delay-replication\", "
               "\"server\": 0, \"latency_ms\": 5, \"duration_ms\": 5}]}", NULL,
               "t.json: events.0.server: delay-replication needs replicas of server 0, but "
               "redis.replicas is 0");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1}, \"events\": [{\"at_ms\": 1, "
               "\"do\": \"partition-replication\", \"server\": 1, \"duration_ms\": 5}]}", NULL,
               "t.json: events.0.server: server 1 does not exist (redis.servers is 1)");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1}, \"events\": [{\"at_ms\": 1, "
               "\"do\": \"failover\", \"server\": 0, \"old\": \"demote\", "
               "\"restart_after_ms\": 5}]}", NULL,
               "t.json: events.0.restart_after_ms: only with \"old\": \"kill\" (a demoted "
               "primary keeps running)");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1}, \"events\": [{\"at_ms\": 1, "
               "\"do\": \"failover\", \"server\": 0, \"old\": \"pause\"}]}", NULL,
               "t.json: events.0.old: must be one of kill, demote, got \"pause\"");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1}, \"events\": [{\"at_ms\": 1, "
               "\"do\": \"delay-replication\", \"server\": 0, \"duration_ms\": 5}]}", NULL,
               "t.json: events.0.latency_ms: missing required key for delay-replication");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1}, \"events\": [{\"at_ms\": 1, "
               "\"do\": \"kill-server\", \"server\": 0, \"old\": \"kill\"}]}", NULL,
               "t.json: events.0.old: unknown key for kill-server");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1}}", &ext,
               "t.json: redis.replicas: replicas need servers that lockbench manages, not --redis");
}

/* redis.sentinels: 0, 3 or 5, after replicas in scenario.json, and what rules it out: no
 * replicas, --redis, the simulator, lockbench's own failover, and client network faults (the
 * proxy relays to a fixed address; sentinel clients follow the primary). */
static void test_sentinels(void **state)
{
    (void)state;
    lb_load_options ext = {.external_servers = true};
    lb_scenario *s = load_ok("{\"name\": \"x\", \"redis\": {\"replicas\": 1, \"sentinels\": 5},"
                             " \"events\": [{\"at_ms\": 1, \"do\": \"kill-server\", \"server\": 0,"
                             " \"restart_after_ms\": 100},"
                             "{\"at_ms\": 2, \"do\": \"delay-replication\", \"server\": 0,"
                             " \"latency_ms\": 5, \"duration_ms\": 5}]}", NULL);
    assert_int_equal(s->redis.sentinels, 5);
    char *dump = lb_scenario_dump(s);
    const char *rep = strstr(dump, "\"replicas\": 1"), *sen = strstr(dump, "\"sentinels\": 5");
    assert_non_null(rep);
    assert_non_null(sen);
    assert_true(rep < sen);   /* SPEC order: servers, persistence, replicas, sentinels */
    free(dump);
    lb_scenario_free(s);
    s = load_ok("{\"name\": \"x\", \"redis\": {\"replicas\": 2}}", NULL);
    assert_int_equal(s->redis.sentinels, 0);   /* the default */
    dump = lb_scenario_dump(s);
    assert_non_null(strstr(dump, "\"sentinels\": 0"));
    free(dump);
    lb_scenario_free(s);

    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1, \"sentinels\": 1}}", NULL,
               "t.json: redis.sentinels: must be 0, 3 or 5 (a majority of 2 or 3 agrees on a "
               "failover), got 1");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1, \"sentinels\": -3}}", NULL,
               "t.json: redis.sentinels: must be a non-negative integer, got -3");
    load_fails("{\"name\": \"x\", \"redis\": {\"sentinels\": 3}}", NULL,
               "t.json: redis.sentinels: sentinels promote a replica: set redis.replicas to 1 or "
               "more");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1, \"sentinels\": 3}}", &ext,
               "t.json: redis.sentinels: sentinels watch servers that lockbench manages, not "
               "--redis");
    load_fails("{\"name\": \"x\", \"driver\": \"sim\", \"redis\": {\"replicas\": 1, "
               "\"sentinels\": 3}}", NULL,
               "t.json: redis.sentinels: the simulator does not model sentinels: run this "
               "scenario with \"driver\": \"loop\" or \"threads\"");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1, \"sentinels\": 3}, "
               "\"events\": [{\"at_ms\": 1, \"do\": \"failover\", \"server\": 0}]}", NULL,
               "t.json: events.0.do: failover is lockbench's own promotion, behind the backs of "
               "the sentinels (redis.sentinels), which would undo it: kill-server or pause-server "
               "the primary and let them promote a replica");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1, \"sentinels\": 3}, "
               "\"events\": [{\"at_ms\": 1, \"do\": \"delay\", \"clients\": [0], "
               "\"latency_ms\": 5, \"duration_ms\": 5}]}", NULL,
               "t.json: events.0.do: delay relays clients through the fault proxy to a fixed "
               "address, and with redis.sentinels they follow the primary the sentinels name");
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1, \"sentinels\": 3}, "
               "\"clients\": [{\"name\": \"a\"}, {\"name\": \"far\", \"network\": "
               "{\"jitter_ms\": 2}}]}", NULL,
               "t.json: redis.sentinels: clients follow the primary the sentinels name, and the "
               "fault proxy relays to a fixed address: client group far has network latency or "
               "jitter");
    /* a variant that turns sentinels on is checked as its own scenario */
    load_fails("{\"name\": \"x\", \"redis\": {\"replicas\": 1}, \"variants\": [{\"name\": "
               "\"ha\", \"set\": {\"redis.sentinels\": 2}}]}", NULL,
               "t.json: variants[0] (ha): redis.sentinels: must be 0, 3 or 5 (a majority of 2 or 3 "
               "agrees on a failover), got 2");
}

/* ---- odds and ends -------------------------------------------------------------------------- */

static void test_files_and_parse_errors(void **state)
{
    (void)state;
    lb_scenario *s = (lb_scenario *)1;
    assert_int_equal(lb_scenario_load("scenarios/no-such-file.json", NULL, &s, err, sizeof err),
                     -1);
    assert_null(s);
    assert_string_equal(err, "scenarios/no-such-file.json: cannot open: No such file or directory");
    assert_int_equal(lb_scenario_load("scenarios", NULL, &s, err, sizeof err), -1);
    assert_string_equal(err, "scenarios: cannot read: Is a directory");
    load_fails("{\"name\": \"x\",\n  \"seed\": }", NULL,
               "t.json:2:11: unexpected token near '}'");
    load_fails("", NULL, "t.json:1:0: '[' or '{' expected near end of file");
    load_fails("{\"name\": \"x\", \"seed\": 1.5}", NULL,
               "t.json: seed: must be a non-negative integer, got 1.5");
    /* a tiny error buffer truncates, never overflows */
    char small[8];
    assert_int_equal(lb_scenario_load_buffer("t.json", "[]", 2, NULL, &s, small, sizeof small), -1);
    assert_string_equal(small, "t.json:");
}

/* expect names the figures fields.h marks so, and nothing else: a path not in the table, or
 * one the table says an expectation cannot name, is an error naming the key. */
static void test_expect_paths_from_the_table(void **state)
{
    size_t n, named = 0;
    const lb_field *f = lb_fields(&n);
    char json[256], want[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(json, sizeof json, "{\"name\": \"x\", \"expect\": {\"%s\": {\"min\": 0}}}",
                 f[i].path);
        if (f[i].expect) {
            lb_scenario *s = load_ok(json, NULL);
            assert_int_equal(s->nexpect, 1);
            assert_string_equal(s->expect[0].path, f[i].path);
            lb_scenario_free(s);
            named++;
        } else {
            snprintf(want, sizeof want, "t.json: expect.%s: a summary figure that an "
                     "expectation cannot name", f[i].path);
            load_fails(json, NULL, want);
        }
    }
    assert_int_equal(named, 49);   /* SPEC section 6's figures, section 10's open-loop ones and
                                      store_overlaps (workload.inside_check) */
    load_fails("{\"name\": \"x\", \"expect\": {\"timeout_ms.p99\": 1}}", NULL,
               "t.json: expect.timeout_ms.p99: unknown summary path");
    load_fails("{\"name\": \"x\", \"expect\": {\"acquire_ms\": 1}}", NULL,
               "t.json: expect.acquire_ms: unknown summary path");
    load_fails("{\"name\": \"x\", \"expect\": {\"fairness.per_client\": 1}}", NULL,
               "t.json: expect.fairness.per_client: unknown summary path");
    load_fails("{\"name\": \"x\", \"variants\": [{\"name\": \"a\"}], \"expect\": "
               "{\"variants\": {\"a\": {\"latency.p99\": 1}}}}", NULL,
               "t.json: expect.variants.a.latency.p99: unknown summary path");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(lb_algorithm_name(LB_ALG_REDLOCK), "redlock");
    assert_string_equal(lb_wait_name(LB_WAIT_NOTIFY), "notify");
    assert_string_equal(lb_backoff_policy_name(LB_BACKOFF_DECORRELATED_JITTER),
                        "decorrelated-jitter");
    assert_string_equal(lb_backoff_policy_name(LB_BACKOFF_SERVICESTACK), "servicestack");
    assert_string_equal(lb_critical_section_name(LB_CS_INCR), "incr");
    assert_string_equal(lb_persistence_name(LB_PERSIST_AOF_ALWAYS), "aof-always");
    lb_scenario_free(NULL);
}

/* ---- many variants -------------------------------------------------------------------------- */

/* Every jansson allocation is counted: the loader's work on JSON shows as allocations. */
static size_t json_allocs;

static void *counting_malloc(size_t n)
{
    json_allocs++;
    return malloc(n);
}

/* A scenario with n variants, each setting two paths and having one expectation of its own. */
static char *many_variants(size_t n)
{
    size_t cap = 512 + n * 200, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    len += (size_t)snprintf(buf, cap, "{\"name\": \"many\", \"clients\": [{\"count\": 2}, "
                            "{\"name\": \"b\"}], \"variants\": [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s{\"name\": \"v%zu\", \"set\": "
                                "{\"lock.backoff.base_ms\": %zu, \"clients.1.count\": %zu}}",
                                i ? ", " : "", i, i % 50, 1 + i % 3);
    len += (size_t)snprintf(buf + len, cap - len, "], \"expect\": {\"overlaps\": 0, "
                            "\"variants\": {");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s\"v%zu\": {\"errors\": %zu}",
                                i ? ", " : "", i, i % 7);
    snprintf(buf + len, cap - len, "}}}");
    assert_true(len + 3 < cap);
    return buf;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads n variants: the JSON allocations it made and its CPU time (the best of `tries`, so a
 * busy machine shows less). Checks the last variant was resolved. */
static size_t load_many(size_t n, int tries, double *best)
{
    char *json = many_variants(n);
    size_t allocs = 0;
    *best = INFINITY;
    for (int t = 0; t < tries; t++) {
        size_t before = json_allocs;
        double start = cpu_seconds();
        lb_scenario *s = load_ok(json, NULL);
        double took = cpu_seconds() - start;
        allocs = json_allocs - before;
        *best = took < *best ? took : *best;
        const lb_scenario *last = lb_scenario_variant(s, n - 1);
        assert_int_equal(lb_scenario_variant_count(s), n);
        assert_int_equal(last->groups[1].count, 1 + (int64_t)((n - 1) % 3));
        assert_int_equal(last->lock.backoff.base_ms, (int64_t)((n - 1) % 50));
        assert_int_equal(last->nexpect, 2);
        lb_scenario_free(s);
    }
    free(json);
    return allocs;
}

/* Resolving a variant costs what the variant changes, not the size of the file: ten times the
 * variants is about ten times the allocations and the time (copying the whole document per
 * variant made it a hundred, and 10 000 variants took a minute). */
static void test_many_variants_linear(void **state)
{
    (void)state;
    double small_s, big_s;
    size_t small = load_many(1000, 3, &small_s), big = load_many(10000, 3, &big_s);
    print_message("# 1 000 variants: %zu allocations, %.3f s; 10 000: %zu, %.3f s\n", small,
                  small_s, big, big_s);
    assert_true(big < 12 * small);
    assert_true(big_s < 20 * small_s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_corpus),
        cmocka_unit_test(test_invalid_corpus_pairs),
        cmocka_unit_test(test_shipped_scenarios_load),
        cmocka_unit_test(test_seed_scenarios),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_null_mapping),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_group_overrides),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_random_schedules),
        cmocka_unit_test(test_driver_given_over_sim_model),
        cmocka_unit_test(test_external_servers),
        cmocka_unit_test(test_replicas),
        cmocka_unit_test(test_sentinels),
        cmocka_unit_test(test_files_and_parse_errors),
        cmocka_unit_test(test_expect_paths_from_the_table),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_many_variants_linear),
    };
    json_set_alloc_funcs(counting_malloc, free);   /* before any JSON is made */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
