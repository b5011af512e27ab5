/* test_explore.c -- `lockbench explore` as a user runs it: the search over seeds, the files it
 * writes for a failure, the replay, the shrinking (checked independently: the minimized file
 * fails, and without any one of its events or clients it passes), --confirm on the real driver,
 * an interrupted search, and bad input. $LOCKBENCH names the binary. Runs from the repository
 * root. Not under ThreadSanitizer: explore is the simulator, one thread per process. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FOUND "scenarios/explore/pause-no-fencing.json"
#define SAFE "scenarios/explore/redlock-kill-aof-always.json"

static char scratch[64];

static int setup(void **state)
{
    snprintf(scratch, sizeof scratch, "/tmp/lockbench-explore-XXXXXX");
    return mkdtemp(scratch) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *lockbench_bin(void)
{
    const char *b = getenv("LOCKBENCH");
    return b && *b ? b : "build/lockbench";
}

/* Runs `lockbench ARGS` (our own fragment), output to files in the scratch folder; exit code. */
static int sh(const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s >%s/stdout 2>%s/stderr", lockbench_bin(), args, scratch,
             scratch);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static const char *at(const char *fmt, ...)
{
    static char buf[4][1024];
    static unsigned k;
    char *p = buf[k++ % 4], leaf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(leaf, sizeof leaf, fmt, ap);
    va_end(ap);
    snprintf(p, sizeof buf[0], "%s/%s", scratch, leaf);
    return p;
}

static json_t *json_at(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("%s: %s", path, e.text);
    return j;
}

static bool same_file(const char *a, const char *b)
{
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static bool contains(const char *path, const char *text)
{
    char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

/* The minimized file with one event, or one client, taken out: it must pass. */
static int run_without(json_t *doc, size_t event, int64_t client)
{
    json_t *cand = json_deep_copy(doc);
    if (client < 0) {
        json_array_remove(json_object_get(cand, "events"), event);
    } else {   /* client is the last of its group and no event names it */
        json_t *g = json_array_get(json_object_get(cand, "clients"), 0);
        json_object_set_new(g, "count", json_integer(json_integer_value(
                                            json_object_get(g, "count")) - 1));
    }
    assert_int_equal(json_dump_file(cand, at("candidate.json"), 0), 0);
    json_decref(cand);
    return sh("run %s --out %s --force --quiet --no-plot", at("candidate.json"), at("cand-out"));
}

static bool names_client(json_t *doc, int64_t id)
{
    size_t i, k;
    json_t *e, *c;
    json_array_foreach(json_object_get(doc, "events"), i, e)
        json_array_foreach(json_object_get(e, "clients"), k, c)
            if (json_integer_value(c) == id)
                return true;
    return false;
}

/* A lost update exists among the seeds of pause-no-fencing: explore finds the lowest failing
 * seed on any number of workers, writes it resolved, replays it and shrinks it. */
static void explore_finds_replays_and_shrinks(void **state)
{
    assert_int_equal(sh("explore " FOUND " --seeds 200 --jobs 2 --out %s", at("two")), 1);
    json_t *x = json_at(at("two/explore.json"));
    assert_true(json_is_true(json_object_get(x, "complete")));
    json_t *first = json_object_get(x, "first_failure");
    json_int_t seed = json_integer_value(json_object_get(first, "seed"));
    assert_int_equal(seed, json_integer_value(json_array_get(json_object_get(x, "failing_seeds"),
                                                             0)));
    assert_true(json_integer_value(json_object_get(x, "seeds_run")) >= seed + 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(first, "expectation"), "path")),
                        "counter.lost_updates");
    assert_true(json_array_size(json_object_get(first, "schedule")) > 0);
    assert_non_null(strstr(json_string_value(json_object_get(first, "replay")), "--seed"));

    /* one worker: the same first failure */
    assert_int_equal(sh("explore " FOUND " --seeds 200 --jobs 1 --out %s", at("one")), 1);
    json_t *x1 = json_at(at("one/explore.json"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(x1, "first_failure"),
                                                        "seed")), seed);
    json_decref(x1);

    /* the replay command and the resolved file give the recorded run, byte for byte */
    assert_int_equal(sh("run " FOUND " --driver sim --seed %lld --out %s --quiet --no-plot",
                        (long long)seed, at("replay")), 1);
    assert_true(same_file(at("replay/default/acquisitions.csv"),
                          at("two/seed-%lld/default/acquisitions.csv", (long long)seed)));
    assert_int_equal(sh("run %s --out %s --quiet --no-plot",
                        at("two/failure-%lld.json", (long long)seed), at("resolved")), 1);
    assert_true(same_file(at("resolved/default/acquisitions.csv"),
                          at("two/seed-%lld/default/acquisitions.csv", (long long)seed)));

    /* minimized: smaller, still failing the same way, and 1-minimal */
    json_t *min = json_object_get(first, "minimized");
    assert_true(json_is_true(json_object_get(min, "one_minimal")));
    assert_true(json_array_size(json_object_get(min, "steps")) > 0);
    json_t *doc = json_at(at("two/minimized.json"));
    assert_int_equal(json_object_size(json_object_get(doc, "expect")), 1);
    assert_int_equal(sh("run %s --out %s --quiet --no-plot", at("two/minimized.json"),
                        at("min-out")), 1);
    assert_true(contains(at("stderr"), "counter.lost_updates"));
    size_t nev = json_array_size(json_object_get(doc, "events"));
    for (size_t i = 0; i < nev; i++)
        assert_int_equal(run_without(doc, i, -1), 0);
    json_t *groups = json_object_get(doc, "clients");
    int64_t last = json_integer_value(json_object_get(json_array_get(groups, 0), "count")) - 1;
    if (json_array_size(groups) == 1 && last > 0 && !names_client(doc, last))
        assert_int_equal(run_without(doc, 0, last), 0);
    json_decref(doc);
    json_decref(x);
}

/* A scenario that holds over every seed searched: exit 0, nothing written but explore.json. */
static void explore_that_finds_nothing_writes_only_its_summary(void **state)
{
    assert_int_equal(sh("explore " SAFE " --seeds 24 --out %s --quiet", at("safe")), 0);
    json_t *x = json_at(at("safe/explore.json"));
    assert_true(json_is_true(json_object_get(x, "complete")));
    assert_int_equal(json_integer_value(json_object_get(x, "seeds_run")), 24);
    assert_int_equal(json_integer_value(json_object_get(x, "failures")), 0);
    assert_true(json_is_null(json_object_get(x, "first_failure")));
    assert_true(json_object_get(x, "seeds_per_s") != NULL);
    json_decref(x);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = explore.json", at("safe"));
    assert_int_equal(system(cmd), 0);
    /* --force to search again into the same folder: an earlier explore's failures go (here
     * made up), a file of the user's stays */
    assert_int_equal(sh("explore " SAFE " --seeds 2 --out %s --quiet", at("safe")), 2);
    snprintf(cmd, sizeof cmd, "cd '%s' && touch failure-7.json minimized.json notes.txt && "
             "mkdir -p seed-7 confirm/run-1 && touch seed-7/summary.json confirm/run-1/summary.json",
             at("safe"));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(sh("explore " SAFE " --seeds 2 --out %s --quiet --force", at("safe")), 0);
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s' | tr '\\n' ' ')\" = 'explore.json notes.txt '",
             at("safe"));
    assert_int_equal(system(cmd), 0);
}

/* --confirm K: the minimized failure run K times on the real driver, against real Redis. */
static void confirm_runs_the_minimized_failure_on_redis(void **state)
{
    assert_int_equal(sh("explore " FOUND " --seeds 200 --confirm 2 --out %s --quiet",
                        at("confirm")), 1);
    json_t *x = json_at(at("confirm/explore.json"));
    json_t *c = json_object_get(json_object_get(x, "first_failure"), "confirm");
    assert_int_equal(json_integer_value(json_object_get(c, "runs")), 2);
    int missed = 0;  /* reproduced: the runs whose own summary did not pass */
    for (int k = 1; k <= 2; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "confirm/confirm/run-%d/summary.json", k);
        json_t *run = json_at(at(rel));
        missed += json_is_false(json_object_get(run, "passed"));
        json_decref(run);
    }
    assert_int_equal(json_integer_value(json_object_get(c, "reproduced")), missed);
    json_decref(x);
}

static void bad_input_exits_2(void **state)
{
    static const char no_expect[] = "{\"name\": \"n\", \"driver\": \"sim\", \"clients\": "
                                    "[{\"count\": 2}]}";
    FILE *f = fopen(at("no-expect.json"), "w");
    assert_non_null(f);
    fputs(no_expect, f);
    fclose(f);
    assert_int_equal(sh("explore %s --seeds 5 --out %s", at("no-expect.json"), at("x")), 2);
    assert_true(contains(at("stderr"), "expect"));
    assert_int_equal(sh("explore " SAFE " --seeds 0"), 2);
    assert_true(contains(at("stderr"), "--seeds"));
    assert_int_equal(sh("explore " SAFE " --seeds -4"), 2);
    assert_int_equal(sh("explore " SAFE " --seeds 3 --from -1"), 2);
    assert_int_equal(sh("explore " SAFE), 2);
    assert_int_equal(sh("explore " SAFE " --seeds 3 --jobs 0"), 2);
    assert_int_equal(sh("explore %s --seeds 3", at("missing.json")), 2);
    assert_true(contains(at("stderr"), "missing.json"));
}

/* Ctrl-C: the search stops, explore.json says what ran and "complete": false, exit 130. */
static void an_interrupted_explore_is_incomplete(void **state)
{
    char out[1024];
    snprintf(out, sizeof out, "%s", at("stopped"));
    char *argv[] = {(char *)lockbench_bin(), "explore", SAFE, "--seeds", "1000000", "--out", out,
                    "--quiet", NULL};
    posix_spawnattr_t attr;
    sigset_t deflt;
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGINT);
    assert_int_equal(posix_spawnattr_init(&attr), 0);
    assert_int_equal(posix_spawnattr_setsigdefault(&attr, &deflt), 0);
    assert_int_equal(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF), 0);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, argv[0], NULL, &attr, argv, environ), 0);
    posix_spawnattr_destroy(&attr);
    /* the search has begun once explore.json (incomplete) is there */
    struct stat st;
    time_t deadline = time(NULL) + 30;
    while (stat(at("stopped/explore.json"), &st) != 0 && time(NULL) < deadline) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(stat(at("stopped/explore.json"), &st), 0);
    kill(pid, SIGINT);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 130);
    json_t *x = json_at(at("stopped/explore.json"));
    assert_true(json_is_false(json_object_get(x, "complete")));
    assert_true(json_integer_value(json_object_get(x, "seeds_run")) < 1000000);
    json_decref(x);
    /* no worker outlives it (workers carry the parent's command line, and --out is ours) */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "! pgrep -f '[e]xplore " SAFE " --seeds 1000000 --out %s' >/dev/null",
             out);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
#if defined(__SANITIZE_THREAD__)
    printf("ok 1 - # SKIP explore is the simulator: one thread per process, ASan's to check\n");
    printf("1..1\n");
    return 0;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_input_exits_2),
        cmocka_unit_test(explore_finds_replays_and_shrinks),
        cmocka_unit_test(explore_that_finds_nothing_writes_only_its_summary),
        cmocka_unit_test(an_interrupted_explore_is_incomplete),
        cmocka_unit_test(confirm_runs_the_minimized_failure_on_redis),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
