/* test_e2e.c -- lockbench as a user runs it: the binary, real servers, the files it writes.
 * $LOCKBENCH names the binary (the test runner sets it; default build/lockbench). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <spawn.h>
#include <time.h>
#include <unistd.h>

#include "servers.h"

static const char *bin(void)
{
    const char *b = getenv("LOCKBENCH");
    return b && *b ? b : "build/lockbench";
}

/* The binary by absolute path, for runs started in another folder. */
static const char *abs_bin(void)
{
    static char path[4096];
    if (!path[0] && !realpath(bin(), path))
        fail_msg("%s: not found (run make first)", bin());
    return path;
}

/* Runs lockbench with args (a shell fragment of our own, no user input) in folder cwd (NULL:
 * ours), its stdout to out; returns its exit code and leaves stderr in *err (malloc'd) when err
 * is not NULL. */
static int lockbench_v(const char *cwd, const char *out, char **err, const char *fmt, va_list ap)
{
    char args[2048], cmd[8192], errfile[] = "/tmp/lockbench-e2e-XXXXXX";
    vsnprintf(args, sizeof args, fmt, ap);
    int fd = mkstemp(errfile);
    assert_true(fd >= 0);
    close(fd);
    if (cwd)
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >%s 2>%s", cwd, abs_bin(), args, out,
                 errfile);
    else
        snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", bin(), args, out, errfile);
    int status = system(cmd);
    if (err) {
        FILE *f = fopen(errfile, "r");
        *err = calloc(1, 65536);
        if (f) {
            size_t n = fread(*err, 1, 65535, f);
            (*err)[n] = '\0';
            fclose(f);
        }
    }
    unlink(errfile);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int lockbench(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lockbench_v(NULL, "/dev/null", err, fmt, ap);
    va_end(ap);
    return rc;
}

/* The same, run in folder cwd (scenario paths must then be absolute). */
static int lockbench_in(const char *cwd, char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lockbench_v(cwd, "/dev/null", err, fmt, ap);
    va_end(ap);
    return rc;
}

/* The same, with stdout to out (a path). */
static int lockbench_to(const char *out, char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lockbench_v(NULL, out, err, fmt, ap);
    va_end(ap);
    return rc;
}

/* Starts lockbench in the background with args (after the program name; NULL-terminated) in
 * folder cwd (NULL: ours), output to /dev/null, and SIGINT, SIGTERM and SIGHUP at their default
 * actions: a background job inherits an ignored SIGINT, a nohup'd one an ignored SIGHUP. */
static pid_t start_lockbench(char *const *args, const char *cwd)
{
    char *argv[64] = {(char *)abs_bin()};
    for (size_t i = 0; args[i] && i + 2 < sizeof argv / sizeof argv[0]; i++)
        argv[i + 1] = args[i];
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t deflt;
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGINT);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGHUP);
    assert_int_equal(posix_spawnattr_init(&attr), 0);
    assert_int_equal(posix_spawnattr_setsigdefault(&attr, &deflt), 0);
    assert_int_equal(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF), 0);
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
    if (cwd)
        assert_int_equal(posix_spawn_file_actions_addchdir_np(&fa, cwd), 0);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, argv[0], &fa, &attr, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return pid;
}

/* Polls the server until a run's keys exist: the run has begun its clients. */
static void wait_for_keys(redisContext *r)
{
    int64_t deadline = time(NULL) + 20;
    long long keys = 0;
    while (keys == 0 && time(NULL) < deadline) {
        redisReply *n = redisCommand(r, "DBSIZE");
        keys = n ? n->integer : 0;
        freeReplyObject(n);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_true(keys > 0);
}

/* SIGKILLs pid and reaps it: nothing of lockbench's runs after this. */
static void kill_hard(pid_t pid)
{
    int status;
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
}

static char *tempdir(void)
{
    char tmpl[] = "/tmp/lockbench-e2e-out-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

/* dir/name in a rotating static buffer. */
static const char *path_in(const char *dir, const char *name)
{
    static char buf[4][2048];
    static unsigned k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static json_t *load_json(const char *dir, const char *file)
{
    char path[1024];
    json_error_t e;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("%s: %s", path, e.text);
    return j;
}

/* A number at a dotted path below obj. */
static double num(json_t *obj, const char *path)
{
    char buf[256], *save, *part;
    snprintf(buf, sizeof buf, "%s", path);
    for (part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save))
        obj = json_object_get(obj, part);
    if (!json_is_number(obj))
        fail_msg("%s is not a number", path);
    return json_number_value(obj);
}

static size_t count_lines(const char *dir, const char *file)
{
    char path[1024], line[4096];
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        n++;
    fclose(f);
    return n;
}

/* A whole file, NUL-terminated; NULL when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 8192;
            char *b = realloc(buf, cap);
            assert_non_null(b);
            buf = b;
        }
        size_t k = fread(buf + len, 1, 4096, f);
        len += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void version_and_help(void **state)
{
    assert_int_equal(lockbench(NULL, "--version"), 0);
    assert_int_equal(lockbench(NULL, "--help"), 0);
    char *err;
    assert_int_equal(lockbench(&err, "frobnicate"), 2);
    assert_non_null(strstr(err, "unknown command"));
    free(err);
    assert_int_equal(lockbench(&err, "run --repeat 0 scenarios/seed-five-clients.json"), 2);
    assert_non_null(strstr(err, "--repeat"));
    free(err);
}

static void missing_file_is_bad_input(void **state)
{
    char *err;
    assert_int_equal(lockbench(&err, "validate scenarios/no-such-file.json"), 2);
    assert_non_null(strstr(err, "scenarios/no-such-file.json"));
    free(err);
}

/* Every invalid scenario exits 2 with exactly its .error line, through the binary. */
static void invalid_scenarios_exit_2_with_their_message(void **state)
{
    DIR *d = opendir("scenarios/invalid");
    struct dirent *e;
    int checked = 0;
    assert_non_null(d);
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char want_path[512], want[2048] = "", *err;
        snprintf(want_path, sizeof want_path, "scenarios/invalid/%.*s.error", (int)(len - 5),
                 e->d_name);
        FILE *f = fopen(want_path, "r");
        assert_non_null(f);
        size_t n = fread(want, 1, sizeof want - 1, f);
        want[n] = '\0';
        fclose(f);
        assert_int_equal(lockbench(&err, "validate scenarios/invalid/%s", e->d_name), 2);
        if (strcmp(err, want) != 0)
            fail_msg("%s:\n got  %s want %s", e->d_name, err, want);
        free(err);
        checked++;
    }
    closedir(d);
    assert_true(checked >= 20);
}

static void seed_five_clients(void **state)
{
    char *out = tempdir();
    assert_int_equal(lockbench(NULL, "run scenarios/seed-five-clients.json --out %s --no-plot", out), 0);
    json_t *top = load_json(out, "summary.json");
    assert_true(json_is_true(json_object_get(top, "complete")));
    assert_true(json_is_true(json_object_get(top, "passed")));
    assert_true(num(top, "calibration.raw_ops_per_s") > 0);
    json_t *v = json_array_get(json_object_get(top, "variants"), 0);
    assert_int_equal(num(v, "counter.actual"), 5);
    assert_int_equal(num(v, "counter.acked"), 5);
    assert_int_equal(num(v, "overlaps"), 0);
    assert_int_equal(num(v, "acquisitions"), 5);
    assert_int_equal(num(v, "fairness.min_acquisitions"), 1);
    assert_true(num(v, "acquire_ms.max") >= num(v, "acquire_ms.p50"));
    /* the seed's artificial delay inside the lock: 5 holds of 20 ms one after another */
    assert_true(num(v, "elapsed_ms") >= 100);
    assert_int_equal(count_lines(out, "default/acquisitions.csv"), 6);
    json_t *sc = load_json(out, "scenario.json");
    assert_string_equal(json_string_value(json_object_get(sc, "name")), "seed-five-clients");
    json_decref(sc);
    json_decref(top);
    rmtree(out);
    free(out);
}

static void seed_timeout(void **state)
{
    char *out = tempdir();
    assert_int_equal(lockbench(NULL, "run scenarios/seed-timeout.json --out %s --no-plot", out), 0);
    json_t *v = load_json(out, "default/summary.json");
    assert_int_equal(num(v, "timeouts"), 1);
    assert_in_range((int64_t)num(v, "timeout_ms.max"), 2000, 2500);
    assert_int_equal(num(v, "counter.actual"), 1);
    assert_int_equal(num(v, "acquisitions"), 1);
    json_decref(v);
    rmtree(out);
    free(out);
}

static void failed_expectation_exits_1_and_says_why(void **state)
{
    char *out = tempdir(), *err;
    assert_int_equal(lockbench(&err, "run scenarios/seed-five-clients.json --out %s --no-plot "
                                     "--quiet --set expect.counter.actual=6", out), 1);
    assert_non_null(strstr(err, "counter.actual"));
    json_t *top = load_json(out, "summary.json");
    assert_true(json_is_false(json_object_get(top, "passed")));
    json_decref(top);
    free(err);
    rmtree(out);
    free(out);
}

static void repeats_and_set_overrides(void **state)
{
    char *out = tempdir();
    assert_int_equal(lockbench(NULL, "run scenarios/seed-five-clients.json --out %s --no-plot "
                                     "--quiet --repeat 2 --set clients.0.count=3 "
                                     "--set expect.counter.actual=3 --set expect.acquisitions=3",
                               out), 0);
    json_t *top = load_json(out, "summary.json");
    json_t *v = json_array_get(json_object_get(top, "variants"), 0);
    json_t *tp = json_object_get(json_object_get(v, "repeats"), "throughput_per_s");
    assert_int_equal(json_array_size(tp), 2);
    assert_int_equal(num(v, "clients"), 3);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/default/repeat-2", out);
    assert_int_equal(count_lines(dir, "acquisitions.csv"), 4);
    json_decref(top);
    rmtree(out);
    free(out);
}

/* Runs file on driver with inside_check on; every variant must count store_overlaps as given
 * and the figure named other as given too. */
static void store_overlaps_are(const char *file, const char *driver, double store,
                               const char *other, double other_want)
{
    char *out = tempdir();
    assert_int_equal(lockbench(NULL, "run %s --out %s --no-plot --quiet --driver %s "
                                     "--set workload.inside_check=true", file, out, driver), 0);
    json_t *top = load_json(out, "summary.json");
    json_t *vs = json_object_get(top, "variants");
    assert_true(json_array_size(vs) > 0);
    for (size_t i = 0; i < json_array_size(vs); i++) {
        json_t *v = json_array_get(vs, i);
        if (num(v, "store_overlaps") != store || num(v, other) != other_want)
            fail_msg("%s on %s, variant %zu: store_overlaps %g (want %g), %s %g (want %g)", file,
                     driver, i, num(v, "store_overlaps"), store, other, num(v, other),
                     other_want);
    }
    json_decref(top);
    rmtree(out);
    free(out);
}

/* workload.inside_check: gc-pause's one overlap (a client frozen past its lease while the other
 * takes the lock) is seen by the store too, clock-free, on both real drivers: store_overlaps 1
 * in each variant, as overlaps; off (the default), store_overlaps is 0. A client that crashes
 * inside (zombie-lock) is taken out of the count, so the waiters that take the lock after its
 * lease see nobody: store_overlaps 0 on all three drivers. */
static void the_store_sees_the_overlap(void **state)
{
    static const char *const drivers[] = {"loop", "threads", "sim"};
    for (size_t d = 0; d < 3; d++)
        store_overlaps_are("scenarios/faults/zombie-lock.json", drivers[d], 0, "crashed_clients", 1);
    for (size_t d = 0; d < 2; d++)
        store_overlaps_are("scenarios/faults/gc-pause.json", drivers[d], 1, "overlaps", 1);
    char *out = tempdir();
    assert_int_equal(lockbench(NULL, "run scenarios/faults/gc-pause.json --out %s --no-plot "
                                     "--quiet", out), 0);
    json_t *top = load_json(out, "summary.json");
    assert_int_equal(num(json_array_get(json_object_get(top, "variants"), 0), "store_overlaps"), 0);
    json_decref(top);
    rmtree(out);
    free(out);
}

/* With --redis: nothing is flushed and every key lockbench made is gone afterwards. */
static void external_server_is_left_as_found(void **state)
{
    char err[256], *out = tempdir();
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    redisContext *r = redisConnect("127.0.0.1", lb_server_port(s));
    freeReplyObject(redisCommand(r, "SET precious 1"));
    assert_int_equal(lockbench(NULL, "run scenarios/seed-five-clients.json --out %s --no-plot "
                                     "--quiet --redis %s", out, lb_server_url(s)), 0);
    redisReply *n = redisCommand(r, "DBSIZE");
    assert_int_equal(n->integer, 1);
    freeReplyObject(n);
    n = redisCommand(r, "GET precious");
    assert_string_equal(n->str, "1");
    freeReplyObject(n);
    redisFree(r);
    lb_server_stop(s);
    rmtree(out);
    free(out);
}

static long long connections_received(redisContext *r)
{
    redisReply *info = redisCommand(r, "INFO stats");
    assert_non_null(info);
    const char *at = strstr(info->str, "total_connections_received:");
    assert_non_null(at);
    long long n = atoll(at + strlen("total_connections_received:"));
    freeReplyObject(info);
    return n;
}

/* On the loop, a thread's clients share one connection to the protected store, and a critical
 * section of "none" opens none: 200 clients cost the store a handful of connections (lockbench's
 * own reads and clean-up included), not one each. */
static void the_store_sees_a_connection_per_loop_thread(void **state)
{
    char err[256], *out = tempdir();
    lb_server *locks = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    lb_server *store = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(locks);
    assert_non_null(store);
    redisContext *r = redisConnect("127.0.0.1", lb_server_port(store));
    assert_non_null(r);
    static const char *const sections[] = {"counter", "incr", "none"};
    for (int i = 0; i < 3; i++) {
        long long before = connections_received(r);
        assert_int_equal(lockbench(NULL, "run scenarios/throughput.json --out %s/%s --no-plot "
                                         "--quiet --redis %s --resource %s --set driver=loop "
                                         "--set clients.0.count=200 --set lock.keys=200 "
                                         "--set workload.duration_ms=300 "
                                         "--set workload.critical_section=%s",
                                   out, sections[i], lb_server_url(locks), lb_server_url(store),
                                   sections[i]), 0);
        long long used = connections_received(r) - before;
        print_message("critical section %s: %lld connections to the store\n", sections[i], used);
        assert_in_range(used, 0, 8);
    }
    redisFree(r);
    lb_server_stop(store);
    lb_server_stop(locks);
    rmtree(out);
    free(out);
}

static void variants_write_a_comparison(void **state)
{
    char *out = tempdir();
    assert_int_equal(lockbench(NULL, "run scenarios/algorithms.json --out %s --no-plot --quiet "
                                     "--set workload.iterations=3 --set expect.counter.actual=30 "
                                     "--set expect.acquisitions=30", out), 0);
    json_t *cmp = load_json(out, "comparison.json");
    assert_int_equal(json_array_size(cmp), 5);
    json_decref(cmp);
    assert_int_equal(count_lines(out, "comparison.csv"), 6);
    json_t *top = load_json(out, "summary.json");
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_array_get(json_object_get(top, "variants"), i);
        assert_int_equal(num(v, "overlaps"), 0);
        assert_int_equal(num(v, "counter.actual"), 30);
    }
    json_decref(top);
    rmtree(out);
    free(out);
}

/* No gnuplot on PATH: the run still succeeds, says the plots were skipped, and the page is
 * there with its table. */
static void without_gnuplot_the_run_still_succeeds(void **state)
{
    char *out = tempdir(), *err, bindir[1100], cmd[2400];
    snprintf(bindir, sizeof bindir, "%s/bin", out);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && ln -s \"$(command -v redis-server)\" %s/", bindir,
             bindir);
    assert_int_equal(system(cmd), 0);
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", bindir, 1);
    int rc = lockbench(&err, "run scenarios/seed-five-clients.json --out %s/r", out);
    if (path) {
        setenv("PATH", path, 1);
        free(path);
    }
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "plots skipped"));
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/r", out);
    assert_true(count_lines(dir, "index.html") > 10);
    free(err);
    rmtree(out);
    free(out);
}

/* --redis with a password and a database: the run works there, and leaves that database as it
 * found it; REDISCLI_AUTH supplies a missing password; a wrong one is exit 3, never printed. */
static void external_server_with_auth_and_db(void **state)
{
    char err[256], url[256], *out = tempdir(), *msg;
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    redisContext *r = redisConnect("127.0.0.1", lb_server_port(s));
    freeReplyObject(redisCommand(r, "CONFIG SET requirepass s3cr3t"));
    freeReplyObject(redisCommand(r, "AUTH s3cr3t"));
    snprintf(url, sizeof url, "redis://:s3cr3t@127.0.0.1:%d/2", lb_server_port(s));
    assert_int_equal(lockbench(NULL, "run scenarios/seed-five-clients.json --out %s/a --no-plot "
                                     "--quiet --redis %s", out, url), 0);
    redisReply *n = redisCommand(r, "SELECT 2");
    freeReplyObject(n);
    n = redisCommand(r, "DBSIZE");
    assert_int_equal(n->integer, 0);
    freeReplyObject(n);

    setenv("REDISCLI_AUTH", "s3cr3t", 1);
    assert_int_equal(lockbench(NULL, "run scenarios/seed-five-clients.json --out %s/b --no-plot "
                                     "--quiet --redis redis://127.0.0.1:%d", out,
                               lb_server_port(s)), 0);
    unsetenv("REDISCLI_AUTH");
    assert_int_equal(lockbench(&msg, "run scenarios/seed-five-clients.json --out %s/c --no-plot "
                                     "--quiet --redis redis://:wr0ngpass@127.0.0.1:%d", out,
                               lb_server_port(s)), 3);
    assert_null(strstr(msg, "wr0ngpass"));
    free(msg);
    assert_int_equal(lockbench(&msg, "run scenarios/seed-five-clients.json --redis localhost:1"), 2);
    assert_non_null(strstr(msg, "--redis"));
    free(msg);
    assert_int_equal(lockbench(&msg, "run scenarios/seed-five-clients.json --redis "
                                     "sentinel://:s3nt@127.0.0.1:1,127.0.0.1:x/m"), 2);
    assert_non_null(strstr(msg, "--redis: bad sentinel URL: host 2: bad port"));
    assert_null(strstr(msg, "s3nt"));
    free(msg);
    redisFree(r);
    lb_server_stop(s);
    rmtree(out);
    free(out);
}

/* Ctrl-C, SIGTERM or SIGHUP: the run stops cleanly, says so ("complete": false, exit 128 + the
 * signal's number) and deletes its keys. */
static void stop_with(int sig, const char *driver)
{
    char err[256], url[64], *out = tempdir(), dir[1100];
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    snprintf(url, sizeof url, "%s", lb_server_url(s));
    snprintf(dir, sizeof dir, "%s/r", out);
    char *args[] = {"run", "scenarios/throughput.json", "--out", dir, "--no-plot", "--redis", url,
                    "--set", "workload.duration_ms=20000", "--set", (char *)driver, NULL};
    pid_t pid = start_lockbench(args, NULL);
    redisContext *r = redisConnect("127.0.0.1", lb_server_port(s));
    wait_for_keys(r);
    kill(pid, sig);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("lockbench died of signal %d", WTERMSIG(status));
    assert_int_equal(WEXITSTATUS(status), 128 + sig);
    json_t *top = load_json(dir, "summary.json");
    assert_true(json_is_false(json_object_get(top, "complete")));
    json_t *v = json_array_get(json_object_get(top, "variants"), 0);
    assert_true(num(v, "elapsed_ms") < 15000);
    assert_true(json_is_false(json_object_get(v, "complete")));
    json_decref(top);
    /* the variant's own summary says it is incomplete and claims no passed expectations */
    v = load_json(dir, "default/summary.json");
    assert_true(json_is_false(json_object_get(v, "complete")));
    assert_false(json_is_true(json_object_get(json_object_get(v, "expect"), "passed")));
    json_decref(v);
    redisReply *n = redisCommand(r, "DBSIZE");
    assert_int_equal(n->integer, 0);
    freeReplyObject(n);
    redisFree(r);
    lb_server_stop(s);
    rmtree(out);
    free(out);
}

static void ctrl_c_writes_incomplete_results(void **state)
{
    stop_with(SIGINT, "driver=threads");
    stop_with(SIGINT, "driver=loop");
}

/* A supervisor's SIGTERM and a closed terminal's SIGHUP stop a run as Ctrl-C does: with
 * --redis, dying of them would leave the run's keys in a server lockbench does not own. */
static void sigterm_and_sighup_stop_like_ctrl_c(void **state)
{
    stop_with(SIGTERM, "driver=loop");
    stop_with(SIGHUP, "driver=threads");
}

/* ---- the results folder -------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *dir, const char *name)
{
    char path[2048];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0;
}

/* The entries of dir, sorted, joined by spaces. */
static char *listing(const char *dir)
{
    static char out[4096];
    struct dirent **e;
    int n = scandir(dir, &e, NULL, alphasort);
    out[0] = '\0';
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i]->d_name, ".") && strcmp(e[i]->d_name, ".."))
            snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", out[0] ? " " : "",
                     e[i]->d_name);
        free(e[i]);
    }
    free(e);
    return out;
}

/* A scenario that runs until it is stopped: 2 clients, no critical section, 20 s. */
static void write_long_scenario(const char *path, const char *name)
{
    char text[512];
    snprintf(text, sizeof text, "{\"name\": \"%s\", \"workload\": {\"duration_ms\": 20000, "
             "\"critical_section\": \"none\"}, \"clients\": [{\"name\": \"w\", \"count\": 2}]}\n",
             name);
    write_file(path, text);
}

/* A second run into a folder that holds results is refused unless --force, which removes the
 * earlier run's files (top-level, variant folders, repeats, charts) and nothing else. A rerun
 * killed at any point then leaves a summary that says it did not finish, never the old one. */
static void out_folder_is_replaced_only_with_force(void **state)
{
    char err[256], url[64], *out = tempdir(), scen[1100], longs[1100], dir[1100], path[1200];
    char *msg;
    snprintf(scen, sizeof scen, "%s/two.json", out);
    snprintf(longs, sizeof longs, "%s/long.json", out);
    snprintf(dir, sizeof dir, "%s/r", out);
    write_file(scen, "{\"name\": \"two\", \"workload\": {\"iterations\": 2}, \"clients\": "
                     "[{\"name\": \"w\", \"count\": 2}], \"variants\": [{\"name\": \"a\", "
                     "\"set\": {}}, {\"name\": \"b\", \"set\": {\"lock.wait\": \"notify\"}}]}\n");
    write_long_scenario(longs, "two");
    /* charts too, when gnuplot is there: --force must know every file a run writes */
    assert_int_equal(lockbench(NULL, "run %s --out %s --repeat 2 --quiet", scen, dir), 0);
    assert_true(exists(dir, "comparison.json") && exists(dir, "a/repeat-2/summary.json"));
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_file(path, "mine\n");
    snprintf(path, sizeof path, "%s/mine", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/mine/data.txt", dir);
    write_file(path, "mine\n");
    snprintf(path, sizeof path, "%s/a/my-notes.txt", dir);
    write_file(path, "mine\n");

    assert_int_equal(lockbench(&msg, "run %s --out %s --no-plot --quiet", scen, dir), 2);
    assert_non_null(strstr(msg, dir));
    assert_non_null(strstr(msg, "--force"));
    free(msg);
    json_t *top = load_json(dir, "summary.json");
    assert_true(json_is_true(json_object_get(top, "complete")));   /* untouched */
    json_decref(top);

    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    snprintf(url, sizeof url, "%s", lb_server_url(s));
    char *args[] = {"run", longs, "--out", dir, "--no-plot", "--force", "--redis", url, NULL};
    pid_t pid = start_lockbench(args, NULL);
    redisContext *r = redisConnect("127.0.0.1", lb_server_port(s));
    wait_for_keys(r);
    kill_hard(pid);
    /* what the user put there is all that is left of the old run, beside the new summary */
    assert_string_equal(listing(dir), "a mine notes.txt summary.json");
    assert_string_equal(listing(path_in(dir, "a")), "my-notes.txt");
    assert_string_equal(listing(path_in(dir, "mine")), "data.txt");
    top = load_json(dir, "summary.json");
    assert_true(json_is_false(json_object_get(top, "complete")));
    assert_true(json_is_false(json_object_get(top, "passed")));
    assert_int_equal(json_array_size(json_object_get(top, "variants")), 0);
    json_decref(top);
    redisFree(r);
    lb_server_stop(s);
    rmtree(out);
    free(out);
}

/* Without --out: results/<name>/latest moves to a run's folder when that run completes, and a
 * run killed half-way leaves it on the last one that did. Runs in a folder of its own. */
static void latest_moves_only_when_a_run_completes(void **state)
{
    char err[256], url[64], *cwd = tempdir(), longs[1100], base[1200], first[256], link[256];
    snprintf(longs, sizeof longs, "%s/long.json", cwd);
    write_long_scenario(longs, "lasting");
    snprintf(base, sizeof base, "%s/results/lasting", cwd);
    assert_int_equal(lockbench_in(cwd, NULL, "run %s --no-plot --quiet --set workload.duration_ms=50",
                                  longs), 0);
    ssize_t n = readlink(path_in(base, "latest"), first, sizeof first - 1);
    assert_true(n > 0);
    first[n] = '\0';
    assert_true(exists(base, first));

    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    snprintf(url, sizeof url, "%s", lb_server_url(s));
    char *args[] = {"run", longs, "--no-plot", "--redis", url, NULL};
    pid_t pid = start_lockbench(args, cwd);
    redisContext *r = redisConnect("127.0.0.1", lb_server_port(s));
    wait_for_keys(r);
    kill_hard(pid);
    n = readlink(path_in(base, "latest"), link, sizeof link - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, first);
    /* the killed run has a folder of its own (same second or not), saying it did not finish */
    char killed[256] = "";
    assert_int_equal(sscanf(listing(base), "%*s %255s latest", killed), 1);
    assert_string_not_equal(killed, first);
    json_t *top = load_json(path_in(base, killed), "summary.json");
    assert_true(json_is_false(json_object_get(top, "complete")));
    json_decref(top);
    redisFree(r);
    lb_server_stop(s);

    assert_int_equal(lockbench_in(cwd, NULL, "run %s --no-plot --quiet --set workload.duration_ms=50",
                                  longs), 0);
    n = readlink(path_in(base, "latest"), link, sizeof link - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_not_equal(link, first);
    assert_string_not_equal(link, killed);
    top = load_json(path_in(base, "latest"), "summary.json");
    assert_true(json_is_true(json_object_get(top, "complete")));
    json_decref(top);
    rmtree(cwd);
    free(cwd);
}

/* A results folder that cannot be made: one line with the path and the reason. A bad --out is
 * the user's (exit 2, before anything runs); a default folder that fails is the environment's
 * (exit 3). */
static void results_folder_errors_say_where_and_why(void **state)
{
    char *cwd = tempdir(), *msg, file[1100], repo[1024];
    snprintf(file, sizeof file, "%s/plain", cwd);
    write_file(file, "x\n");
    assert_int_equal(lockbench(&msg, "run scenarios/seed-five-clients.json --out %s/sub "
                                     "--no-plot --quiet", file), 2);
    assert_non_null(strstr(msg, file));
    assert_non_null(strstr(msg, strerror(ENOTDIR)));
    assert_int_equal(strchr(msg, '\n') - msg + 1, (long)strlen(msg));   /* one line */
    free(msg);

    write_file(path_in(cwd, "results"), "x\n");   /* where results/ should go */
    assert_int_equal(lockbench_in(cwd, &msg, "run %s/scenarios/seed-five-clients.json --no-plot "
                                             "--quiet", getcwd(repo, sizeof repo)), 3);
    assert_non_null(strstr(msg, "results/seed-five-clients"));
    assert_non_null(strstr(msg, strerror(ENOTDIR)));
    assert_int_equal(strchr(msg, '\n') - msg + 1, (long)strlen(msg));
    free(msg);
    rmtree(cwd);
    free(cwd);
}

/* Output that never reached stdout is an error: a message on stderr and exit 3, never 0. A run
 * with --quiet prints nothing there, so it has nothing to lose. */
static void stdout_write_errors_fail(void **state)
{
    static const char *const commands[] = {
        "--help", "--version", "validate scenarios/seed-five-clients.json",
        "run scenarios/seed-five-clients.json --out %s/r1 --no-plot",
        "gate harness/test/fixtures/gate/base.json harness/test/fixtures/gate/base.json"};
    char *out = tempdir(), *msg, cmd[1200];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        snprintf(cmd, sizeof cmd, commands[i], out);
        int rc = lockbench_to("/dev/full", &msg, "%s", cmd);
        if (rc != 3 || !strstr(msg, "lockbench: cannot write to standard output"))
            fail_msg("lockbench %s >/dev/full: exit %d, stderr: %s", cmd, rc, msg);
        free(msg);
    }
    assert_int_equal(lockbench_to("/dev/full", NULL, "run scenarios/seed-five-clients.json "
                                                     "--out %s/r2 --no-plot --quiet", out), 0);
    rmtree(out);
    free(out);
}

/* The same contended workloads on both drivers: each must be exact (the scenario's own
 * expectations: every acquisition counted once, no overlap, no lost update), and say which ran. */
static void both_drivers_are_correct(void **state)
{
    static const char *const drivers[] = {"threads", "loop"};
    for (int d = 0; d < 2; d++) {
        char *out = tempdir();
        assert_int_equal(lockbench(NULL, "run scenarios/algorithms.json --out %s --no-plot --quiet "
                                         "--set driver=%s --set workload.iterations=10 "
                                         "--set expect.counter.actual=100 "
                                         "--set expect.acquisitions=100",
                                   out, drivers[d]), 0);
        json_t *top = load_json(out, "summary.json");
        json_t *vs = json_object_get(top, "variants");
        assert_int_equal(json_array_size(vs), 5);
        for (size_t i = 0; i < json_array_size(vs); i++) {
            json_t *v = json_array_get(vs, i);
            assert_string_equal(json_string_value(json_object_get(v, "driver")), drivers[d]);
            assert_int_equal(num(v, "counter.actual"), 100);
            assert_int_equal(num(v, "overlaps"), 0);
        }
        json_decref(top);
        rmtree(out);
        free(out);
        /* incr and none, many keys, a deadline instead of a count */
        out = tempdir();
        assert_int_equal(lockbench(NULL, "run scenarios/throughput.json --out %s --no-plot --quiet "
                                         "--set driver=%s --set workload.duration_ms=300 "
                                         "--set clients.0.count=20 --set lock.keys=5 "
                                         "--set workload.critical_section=incr",
                                   out, drivers[d]), 0);
        json_t *v = load_json(out, "default/summary.json");
        assert_string_equal(json_string_value(json_object_get(v, "driver")), drivers[d]);
        assert_true(num(v, "acquisitions") > 100);
        assert_int_equal(num(v, "counter.actual"), num(v, "acquisitions"));
        assert_int_equal(num(v, "overlaps"), 0);
        assert_in_range((int64_t)num(v, "elapsed_ms"), 300, 2000);
        json_decref(v);
        rmtree(out);
        free(out);
        /* a group whose start lies past its deadline never starts, and does not hold the run */
        out = tempdir();
        char path[1100];
        snprintf(path, sizeof path, "%s/late.json", out);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("{\"name\": \"late\", \"workload\": {\"duration_ms\": 300, "
              "\"critical_section\": \"none\"}, \"clients\": [{\"name\": \"a\", \"count\": 2}, "
              "{\"name\": \"b\", \"count\": 2, \"start_ms\": 3000}]}\n", f);
        fclose(f);
        assert_int_equal(lockbench(NULL, "run %s --out %s/r --no-plot --quiet --set driver=%s",
                                   path, out, drivers[d]), 0);
        char rdir[1100];
        snprintf(rdir, sizeof rdir, "%s/r", out);
        v = load_json(rdir, "default/summary.json");
        assert_in_range((int64_t)num(v, "elapsed_ms"), 300, 1500);
        json_decref(v);
        rmtree(out);
        free(out);
    }
}

/* Runs lockbench on a terminal of its own (script(1) gives it a pty); what the terminal showed,
 * malloc'd. */
static char *on_a_terminal(const char *args)
{
    char cmd[4096], out[] = "/tmp/lockbench-tty-XXXXXX";
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "script -qec \"%s %s\" /dev/null >%s 2>&1 </dev/null", bin(), args,
             out);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(out);
    return text;
}

/* A long run on a terminal shows one line, rewritten in place: the variant, elapsed of planned
 * time, acquisitions/s, timeouts and errors; --quiet and a stderr that is no terminal show none. */
static void progress_line_on_a_terminal_only(void **state)
{
    char *out = tempdir(), args[1400];
    snprintf(args, sizeof args, "run scenarios/throughput.json --set workload.duration_ms=1800 "
             "--set clients.0.count=4 --out %s/a --no-plot", out);
    char *shown = on_a_terminal(args);
    const char *line = strstr(shown, "\r  default  ");
    if (!line)
        fail_msg("no progress line on the terminal:\n%s", shown);
    assert_non_null(strstr(line, " / 1.8 s  "));
    assert_non_null(strstr(line, " acquisitions/s  0 timeouts  0 errors  "));
    free(shown);

    snprintf(args, sizeof args, "run scenarios/throughput.json --set workload.duration_ms=1800 "
             "--set clients.0.count=4 --out %s/b --no-plot --quiet", out);
    shown = on_a_terminal(args);
    assert_null(strstr(shown, "acquisitions/s"));
    free(shown);

    char *err = NULL;
    assert_int_equal(lockbench(&err, "run scenarios/throughput.json --set workload.duration_ms=1800 "
                                     "--set clients.0.count=4 --out %s/c --no-plot", out), 0);
    assert_null(strstr(err, "acquisitions/s"));  /* stderr is a file */
    free(err);
    rmtree(out);
    free(out);
}

/* Whether a scenario's expect pins path for variant name (at the top or under its name). */
static bool pinned(json_t *scenario, const char *name, const char *path)
{
    json_t *ex = json_object_get(scenario, "expect");
    json_t *per = json_object_get(json_object_get(ex, "variants"), name);
    return json_object_get(ex, path) || json_object_get(per, path);
}

/* Whether a failed expectation is about time (latency, throughput, elapsed), which a machine
 * busy with sanitizers and other jobs may miss, rather than about what happened. */
static bool timing_only(json_t *variant)
{
    json_t *fails = json_object_get(json_object_get(variant, "expect"), "failures");
    static const char *const timing[] = {"acquire_ms.", "handoff_ms.", "timeout_ms.",
                                         "service_ms.", "schedule_lag_ms.",
                                         "throughput_per_s", "elapsed_ms"};
    for (size_t i = 0; i < json_array_size(fails); i++) {
        const char *path = json_string_value(json_object_get(json_array_get(fails, i), "path"));
        bool t = false;
        for (size_t k = 0; path && k < sizeof timing / sizeof *timing; k++)
            t |= strncmp(path, timing[k], strlen(timing[k])) == 0;
        if (!t)
            return false;
    }
    return true;
}

/* The scenario files of a folder, sorted; their count. */
static size_t scenario_files(const char *dir, char files[][600], size_t max)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        if (len > 5 && strcmp(names[i]->d_name + len - 5, ".json") == 0 && k < max)
            snprintf(files[k++], 600, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
    }
    free(names);
    return k;
}

/* Runs file on driver into a folder of its own: its top-level summary (out is the folder). A
 * run whose expectations all held exits 0; one that missed only timing ones (said, and
 * tolerated: faults.sh holds the default driver to every expectation) exits 1. */
static json_t *run_on(const char *file, const char *driver, char **out)
{
    *out = tempdir();
    char *err = NULL, rdir[1100];
    int rc = lockbench(&err, "run %s --out %s/r --no-plot --quiet --set driver=%s", file, *out,
                       driver);
    snprintf(rdir, sizeof rdir, "%s/r", *out);
    json_t *top = rc <= 1 ? load_json(rdir, "summary.json") : NULL;
    json_t *vs = json_object_get(top, "variants");
    for (size_t i = 0; rc == 1 && i < json_array_size(vs); i++)
        if (!timing_only(json_array_get(vs, i)))
            rc = -1;
    if (rc != 0 && rc != 1)
        fail_msg("%s on %s: exit %d\n%s", file, driver, rc, err ? err : "");
    if (rc == 1)
        print_message("%s on %s missed a timing expectation only:\n%s", file, driver, err);
    free(err);
    return top;
}

static bool redis_key(const json_t *sc, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(sc, "redis"), key)) > 0;
}

/* The simulator models replicas but not sentinels: a scenario with sentinels is refused on it
 * (exit 2) naming the key, never a run that silently differs. */
static void sim_refuses_sentinels(const char *file)
{
    const char *want = "redis.sentinels: the simulator does not model sentinels";
    char *err = NULL, *out = tempdir();
    int rc = lockbench(&err, "run %s --out %s/r --no-plot --quiet --set driver=sim", file, out);
    if (rc != 2 || !err || !strstr(err, want))
        fail_msg("%s on sim: exit %d, want 2 and \"%s\"\n%s", file, rc, want, err ? err : "");
    free(err);
    rmtree(out);
    free(out);
}

/* Every scenario the project ships, on both drivers: the correctness figures come out the same
 * -- overlaps, lost updates, stale writes rejected, crashed clients, and timeouts where the
 * scenario pins them -- and no expectation about what happened fails on either. A scenario with
 * sentinels runs on the real drivers only (sim_refuses_sentinels); one with replicas alone
 * (faults/failover.json) runs on the simulator too. */
static void every_scenario_agrees_on_both_drivers(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* Under a sanitizer, the fault scenarios, where the drivers' races would be: the plain
     * build runs them all, and CI's time is bounded. */
    static const char *const dirs[] = {"scenarios/faults"};
    const size_t ndirs = 1, least = 9;
#else
    static const char *const dirs[] = {"scenarios", "scenarios/faults"};
    const size_t ndirs = 2, least = 14;
#endif
    static const char *const same[] = {"overlaps", "counter.lost_updates",
                                       "counter.stale_writes_rejected", "crashed_clients"};
    /* the simulator too: the same machines against the modelled Redis, in virtual time (not
     * under ThreadSanitizer: the simulator is one thread, and its memory is ASan's to check) */
#if defined(__SANITIZE_THREAD__)
    static const char *const drivers[] = {"threads", "loop"};
    enum { ND = 2 };
#else
    static const char *const drivers[] = {"threads", "loop", "sim"};
    enum { ND = 3 };
#endif
    static char files[64][600];
    size_t n = 0;
    for (size_t d = 0; d < ndirs; d++)
        n += scenario_files(dirs[d], files + n, 64 - n);
    for (size_t f = 0; f < n; f++) {
        json_error_t je;
        json_t *sc = json_load_file(files[f], 0, &je);
        assert_non_null(sc);
        char *out[ND];
        json_t *top[ND];
        int nd = ND;
        if (redis_key(sc, "sentinels") && strcmp(drivers[ND - 1], "sim") == 0) {
            sim_refuses_sentinels(files[f]);
            nd--;
        }
        for (int k = 0; k < nd; k++)
            top[k] = run_on(files[f], drivers[k], &out[k]);
        json_t *vs0 = json_object_get(top[0], "variants");
        for (int d = 1; d < nd; d++) {
            json_t *vs1 = json_object_get(top[d], "variants");
            assert_int_equal(json_array_size(vs0), json_array_size(vs1));
            for (size_t i = 0; i < json_array_size(vs0); i++) {
                json_t *a = json_array_get(vs0, i), *b = json_array_get(vs1, i);
                const char *name = json_string_value(json_object_get(a, "name"));
                assert_string_equal(json_string_value(json_object_get(a, "driver")), "threads");
                assert_string_equal(json_string_value(json_object_get(b, "driver")), drivers[d]);
                for (size_t k = 0; k < sizeof same / sizeof *same; k++)
                    if (num(a, same[k]) != num(b, same[k]))
                        fail_msg("%s, variant %s: %s is %g on threads, %g on %s", files[f],
                                 name, same[k], num(a, same[k]), num(b, same[k]), drivers[d]);
                if (pinned(sc, name, "timeouts") && num(a, "timeouts") != num(b, "timeouts"))
                    fail_msg("%s, variant %s: timeouts differ on %s", files[f], name,
                             drivers[d]);
            }
        }
        for (int k = 0; k < nd; k++) {
            json_decref(top[k]);
            rmtree(out[k]);
            free(out[k]);
        }
        json_decref(sc);
    }
    print_message("%zu scenarios agree on the three drivers\n", n);
    assert_true(n >= least);
}

/* Two hundred clients need some 450 descriptors: lockbench raises its own soft limit rather
 * than fail under a small one (the usual default is 1024; a thousand clients need 2 000). */
static void many_clients_under_a_small_fd_limit(void **state)
{
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    small = saved;
    small.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &small), 0);
    char *out = tempdir();
    int rc = lockbench(NULL, "run scenarios/throughput.json --out %s --no-plot --quiet "
                             "--set clients.0.count=200 --set lock.keys=200 "
                             "--set workload.duration_ms=300", out);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(rc, 0);
    json_t *v = load_json(out, "default/summary.json");
    assert_int_equal(num(v, "clients"), 200);
    assert_int_equal(num(v, "errors"), 0);
    json_decref(v);
    rmtree(out);
    free(out);
}

/* A hard limit too low for the run: exit 3 at once, saying how many descriptors it needs, the
 * limit, and how to raise it -- not a run that fails part-way with "Too many open files". */
static void too_few_descriptors_is_said_up_front(void **state)
{
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    small = saved;
    small.rlim_cur = small.rlim_max = 300;
    char *out = tempdir(), *err = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {  /* a hard limit cannot be raised again: lower it in a child only */
        if (setrlimit(RLIMIT_NOFILE, &small) != 0)
            _exit(99);
        int rc = lockbench(&err, "run scenarios/throughput.json --out %s/r --no-plot --quiet "
                                 "--set clients.0.count=400 --set lock.keys=400 "
                                 "--set workload.duration_ms=300", out);
        char file[1100];
        snprintf(file, sizeof file, "%s/err", out);
        FILE *e = fopen(file, "w");
        if (e && err)
            fputs(err, e);
        if (e)
            fclose(e);
        _exit(rc);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    char path[1100];
    snprintf(path, sizeof path, "%s/err", out);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "file descriptors"));
    assert_non_null(strstr(text, "may open 300"));
    assert_non_null(strstr(text, "ulimit -Hn"));
    free(err);
    rmtree(out);
    free(out);
}

/* A loop client costs one descriptor (its lock connection): the acquisition logs and their spill
 * files belong to the loop threads. 200 clients fit under a hard limit of 300 (a spill file per
 * client made them need some 470), and the run is whole. */
static void a_loop_client_costs_one_descriptor(void **state)
{
    struct rlimit small;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &small), 0);
    small.rlim_cur = small.rlim_max = 300;
    char *out = tempdir();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {  /* a hard limit cannot be raised again: lower it in a child only */
        if (setrlimit(RLIMIT_NOFILE, &small) != 0)
            _exit(99);
        _exit(lockbench(NULL, "run scenarios/throughput.json --out %s/r --no-plot --quiet "
                              "--set clients.0.count=200 --set lock.keys=200 "
                              "--set workload.duration_ms=500", out));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/r", out);
    json_t *v = load_json(dir, "default/summary.json");
    assert_int_equal(num(v, "clients"), 200);
    assert_int_equal(num(v, "errors"), 0);
    assert_true(num(v, "acquisitions") > 200);
    assert_string_equal(json_string_value(json_object_get(v, "driver")), "loop");
    json_decref(v);
    rmtree(out);
    free(out);
}

/* ---- the simulator ------------------------------------------------------------------------ */

/* A seed replays bit for bit: the same seed gives the same acquisitions.csv, events.csv and
 * timeline.csv, byte for byte -- twenty clients racing for one key with jittered back-off,
 * notify waiting, a server pause and a crash with restart; another seed gives other jitter and
 * other rows. The summary says the run was simulated, with its model and its cost. */
static void a_simulated_run_replays_from_its_seed(void **state)
{
    static const char *const files[] = {"default/acquisitions.csv", "default/events.csv",
                                        "default/timeline.csv"};
    static const char scenario[] =
        "{\"name\": \"replay\", \"driver\": \"sim\",\n"
        " \"lock\": {\"key\": \"r\", \"ttl_ms\": 500, \"wait\": \"notify\",\n"
        "          \"backoff\": {\"policy\": \"full-jitter\", \"base_ms\": 1, \"cap_ms\": 50}},\n"
        " \"workload\": {\"duration_ms\": 600, \"hold_ms\": {\"uniform\": [1, 4]},\n"
        "              \"critical_section\": \"counter\"},\n"
        " \"clients\": [{\"name\": \"racer\", \"count\": 20}],\n"
        " \"events\": [{\"at_ms\": 100, \"do\": \"pause-server\", \"server\": 0, \"duration_ms\": 50},\n"
        "            {\"at_ms\": 200, \"do\": \"crash\", \"clients\": [3], \"restart_after_ms\": 40}]}\n";
    char *out = tempdir(), dir[1100], file[1100];
    snprintf(file, sizeof file, "%s/replay.json", out);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs(scenario, f);
    fclose(f);
    for (int r = 0; r < 3; r++) {
        snprintf(dir, sizeof dir, "%s/r%d", out, r);
        char *err = NULL;
        int rc = lockbench(&err, "run %s --out %s --no-plot --quiet --seed %d", file, dir,
                           r < 2 ? 5 : 6);
        if (rc != 0)
            fail_msg("exit %d: %s", rc, err ? err : "");
        free(err);
    }
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char a[1200], b[1200], c[1200];
        snprintf(a, sizeof a, "%s/r0/%s", out, files[k]);
        snprintf(b, sizeof b, "%s/r1/%s", out, files[k]);
        snprintf(c, sizeof c, "%s/r2/%s", out, files[k]);
        char *x = slurp(a), *y = slurp(b), *z = slurp(c);
        assert_non_null(x);
        assert_non_null(y);
        assert_non_null(z);
        assert_true(strlen(x) > 100);
        assert_string_equal(x, y);
        if (k == 0)
            assert_true(strcmp(x, z) != 0);  /* another seed, other jitter */
        free(x);
        free(y);
        free(z);
    }
    /* summary.json too, but for when the run started and how long it took in real time */
    json_t *sums[2];
    for (int r = 0; r < 2; r++) {
        snprintf(dir, sizeof dir, "%s/r%d", out, r);
        sums[r] = load_json(dir, "summary.json");
        json_object_del(sums[r], "started_at");
        json_t *v0 = json_array_get(json_object_get(sums[r], "variants"), 0);
        assert_non_null(json_object_get(json_object_get(v0, "sim"), "wall_ms"));
        json_object_del(json_object_get(v0, "sim"), "wall_ms");
    }
    assert_true(json_equal(sums[0], sums[1]));
    json_decref(sums[0]);
    json_decref(sums[1]);
    snprintf(dir, sizeof dir, "%s/r0", out);
    json_t *v = load_json(dir, "default/summary.json");
    assert_string_equal(json_string_value(json_object_get(v, "driver")), "sim");
    assert_true(num(v, "acquisitions") > 20);
    assert_int_equal(num(v, "overlaps"), 0);
    assert_int_equal(num(v, "counter.lost_updates"), 0);
    assert_int_equal(num(v, "faults_applied"), 2);
    json_t *sim = json_object_get(v, "sim");
    assert_non_null(sim);
    assert_true(num(sim, "events") > 100);
    assert_true(num(sim, "virtual_ms") >= num(v, "elapsed_ms"));
    assert_int_equal(num(sim, "rtt_us"), 50);
    json_decref(v);
    rmtree(out);
    free(out);
}

/* Every scenario in scenarios/sim passes its own expectations (the plain build; under a
 * sanitizer the crash-host one, as the others are scale). */
static void the_simulator_scenarios_pass(void **state)
{
    static char files[16][600];
    size_t n = scenario_files("scenarios/sim", files, 16);
    size_t ran = 0;
    for (size_t f = 0; f < n; f++) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        if (!strstr(files[f], "crash-host"))
            continue;
#endif
        if (strstr(files[f], "backoff-100000"))
            continue;   /* twelve minutes of simulation: make scale runs it */
        char *out = tempdir(), *err = NULL;
        int rc = lockbench(&err, "run %s --out %s/r --no-plot --quiet", files[f], out);
        if (rc != 0)
            fail_msg("%s: exit %d\n%s", files[f], rc, err ? err : "");
        free(err);
        rmtree(out);
        free(out);
        ran++;
    }
    print_message("%zu simulator scenarios pass\n", ran);
    assert_true(ran >= 1);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    assert_true(ran >= 3);
#endif
}

/* Fault corners where the simulator once differed from the real drivers, each run on threads
 * and on the sim:
 *   thaw       a holding pause (600 ms from the grant) ends while a scheduled pause (300 to
 *              1800 ms) still holds the client: it must not write until that one ends (its
 *              900 ms lease ran out meanwhile: a lost update); the holder starts at 50 ms, as
 *              in gc-pause.json, so the holding pause is armed before it gets there on a slow
 *              start (ThreadSanitizer);
 *   crash      a crash inside a scheduled pause does not end the pause: the restarted client
 *              waits for it, and the run lasts past it;
 *   reset      a reset while waiting in BLPOP is learnt at once, not after the wait slice and
 *              the command timeout: the waiter gets the lock at the release (600 ms);
 *   ghost      a SET NX PX delayed 1.5 s on the wire outlives its 1 s command timeout: the
 *              client closes the connection, but the SET still reaches Redis behind it and
 *              holds the lock for its 3 s TTL (the undo, on a new connection after the delay
 *              ended, came first and found nothing), so a client arriving at 1.8 s waits until
 *              about 4.55 s;
 *   unghost    the same with a reset at 1.2 s: the proxy drops the closed connection's SET it
 *              still holds, and the other client takes the lock at once. */
static void the_simulator_agrees_on_fault_corners(void **state)
{
    static const char *const files[] = {"thaw", "crash", "reset", "ghost", "unghost"};
    static const char *const text[] = {
        "{\"name\": \"thaw\", \"seed\": 9, \"lock\": {\"key\": \"th\", \"ttl_ms\": 900,"
        " \"wait_timeout_ms\": 4000, \"backoff\": {\"base_ms\": 1, \"cap_ms\": 20}},"
        " \"workload\": {\"iterations\": 1, \"hold_ms\": 0},"
        " \"clients\": [{\"name\": \"holder\", \"start_ms\": 50},"
        " {\"name\": \"other\", \"start_ms\": 100}],"
        " \"events\": [{\"at_ms\": 0, \"do\": \"pause\", \"when\": \"holding\", \"clients\": [0],"
        " \"duration_ms\": 600}, {\"at_ms\": 300, \"do\": \"pause\", \"clients\": [0],"
        " \"duration_ms\": 1500}]}",
        "{\"name\": \"crash\", \"seed\": 9, \"lock\": {\"key\": \"cp\", \"ttl_ms\": 100,"
        " \"wait_timeout_ms\": 3000}, \"workload\": {\"iterations\": 2, \"hold_ms\": 200,"
        " \"critical_section\": \"none\"}, \"clients\": [{\"name\": \"a\"}],"
        " \"events\": [{\"at_ms\": 50, \"do\": \"pause\", \"clients\": [0], \"duration_ms\": 1000},"
        " {\"at_ms\": 100, \"do\": \"crash\", \"clients\": [0], \"restart_after_ms\": 50}]}",
        "{\"name\": \"reset\", \"seed\": 5, \"lock\": {\"key\": \"rb\", \"ttl_ms\": 10000,"
        " \"wait_timeout_ms\": 5000, \"wait\": \"notify\"}, \"workload\": {\"iterations\": 1,"
        " \"hold_ms\": 10, \"critical_section\": \"none\"}, \"clients\": [{\"name\": \"holder\","
        " \"workload\": {\"hold_ms\": 600}}, {\"name\": \"waiter\", \"start_ms\": 100}],"
        " \"events\": [{\"at_ms\": 450, \"do\": \"reset\", \"clients\": [1]}]}",
        "{\"name\": \"ghost\", \"seed\": 3, \"lock\": {\"key\": \"gh\", \"ttl_ms\": 3000,"
        " \"wait_timeout_ms\": 0}, \"workload\": {\"iterations\": 1,"
        " \"critical_section\": \"none\"}, \"clients\": [{\"name\": \"ghost\", \"start_ms\": 50},"
        " {\"name\": \"other\","
        " \"start_ms\": 1800, \"lock\": {\"wait_timeout_ms\": 5000}}],"
        " \"events\": [{\"at_ms\": 0, \"do\": \"delay\", \"clients\": [0], \"latency_ms\": 1500,"
        " \"duration_ms\": 500}]}",
        "{\"name\": \"unghost\", \"seed\": 3, \"lock\": {\"key\": \"ug\", \"ttl_ms\": 3000,"
        " \"wait_timeout_ms\": 0}, \"workload\": {\"iterations\": 1,"
        " \"critical_section\": \"none\"}, \"clients\": [{\"name\": \"ghost\", \"start_ms\": 50},"
        " {\"name\": \"other\", \"start_ms\": 1800, \"lock\": {\"wait_timeout_ms\": 5000}}],"
        " \"events\": [{\"at_ms\": 0, \"do\": \"delay\", \"clients\": [0], \"latency_ms\": 1500,"
        " \"duration_ms\": 500}, {\"at_ms\": 1200, \"do\": \"reset\", \"clients\": [0]}]}"};
    static const char *const drivers[] = {"threads", "sim"};
    char *out = tempdir();
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char file[1100];
        snprintf(file, sizeof file, "%s/%s.json", out, files[f]);
        FILE *fp = fopen(file, "w");
        assert_non_null(fp);
        fputs(text[f], fp);
        fclose(fp);
        for (int d = 0; d < 2; d++) {
            char dir[1200], *err = NULL;
            snprintf(dir, sizeof dir, "%s/%s-%s", out, files[f], drivers[d]);
            int rc = lockbench(&err, "run %s --out %s --no-plot --quiet --driver %s", file, dir,
                               drivers[d]);
            if (rc != 0)
                fail_msg("%s on %s: exit %d: %s", files[f], drivers[d], rc, err ? err : "");
            free(err);
            json_t *v = load_json(dir, "default/summary.json");
            if (f == 0) {
                if (num(v, "counter.lost_updates") != 1 || num(v, "overlaps") != 1)
                    fail_msg("thaw on %s: %g lost updates, %g overlaps", drivers[d],
                             num(v, "counter.lost_updates"), num(v, "overlaps"));
            } else if (f == 1) {
                if (num(v, "elapsed_ms") < 1200 || num(v, "elapsed_ms") > 1600)
                    fail_msg("crash on %s: elapsed %g ms", drivers[d], num(v, "elapsed_ms"));
            } else if (f == 2) {
                if (num(v, "acquire_ms.max") > 700)
                    fail_msg("reset on %s: the waiter waited %g ms", drivers[d],
                             num(v, "acquire_ms.max"));
            } else if (f == 3) {
                if (num(v, "acquisitions") != 1 || num(v, "acquire_ms.max") < 2500 ||
                    num(v, "acquire_ms.max") > 3500)
                    fail_msg("ghost on %s: %g acquisitions, the other waited %g ms", drivers[d],
                             num(v, "acquisitions"), num(v, "acquire_ms.max"));
            } else if (num(v, "acquisitions") != 1 || num(v, "acquire_ms.max") > 500) {
                fail_msg("unghost on %s: %g acquisitions, the other waited %g ms", drivers[d],
                         num(v, "acquisitions"), num(v, "acquire_ms.max"));
            }
            json_decref(v);
        }
    }
    rmtree(out);
    free(out);
}

/* lockbench calibrate measures the model against a redis-server of its own and writes it; run
 * --calibration takes it for the sim keys a file does not set (the file's own win); a file
 * without a key, or with one out of range, is exit 2 naming it. */
static void calibration_feeds_the_simulator(void **state)
{
    static const char *const keys[] = {"rtt_us", "server_us_per_command", "script_us_per_call",
                                       "client_us_per_command", "client_cores", "server_hz",
                                       "cores"};
    char *out = tempdir(), *err = NULL, cal[1100], dir[1100];
    snprintf(cal, sizeof cal, "%s/cal.json", out);
    int rc = lockbench(&err, "calibrate --out %s", cal);
    if (rc != 0)
        fail_msg("calibrate: exit %d: %s", rc, err ? err : "");
    free(err);
    err = NULL;
    json_error_t je;
    json_t *c = json_load_file(cal, 0, &je);
    assert_non_null(c);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_true(json_is_integer(json_object_get(c, keys[i])));
    assert_true(num(c, "server_us_per_command") >= 1 && num(c, "server_us_per_command") < 1000);
    assert_true(num(c, "client_cores") >= 1);
    assert_int_equal(num(c, "cores"), sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(num(json_object_get(c, "measured"), "ping_rtt_us") > 0);
    snprintf(dir, sizeof dir, "%s/r", out);
    rc = lockbench(&err, "run scenarios/seed-five-clients.json --driver sim --calibration %s "
                         "--set sim.rtt_us=777 --out %s --no-plot --quiet", cal, dir);
    if (rc != 0)
        fail_msg("run: exit %d: %s", rc, err ? err : "");
    free(err);
    err = NULL;
    json_t *v = load_json(dir, "default/summary.json");
    json_t *sim = json_object_get(v, "sim");
    assert_int_equal(num(sim, "rtt_us"), 777);  /* the file's own (here --set) wins */
    assert_int_equal(num(sim, "server_us_per_command"), num(c, "server_us_per_command"));
    assert_int_equal(num(sim, "client_us_per_command"), num(c, "client_us_per_command"));
    assert_int_equal(num(sim, "cores"), num(c, "cores"));
    json_decref(v);
    json_object_del(c, "server_hz");
    json_dump_file(c, cal, 0);
    rc = lockbench(&err, "validate scenarios/seed-five-clients.json --calibration %s", cal);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "server_hz"));
    free(err);
    json_decref(c);
    rmtree(out);
    free(out);
}

/* Throughput of throughput.json on the simulator: 10 clients, servers servers (redlock when
 * more than one), the machine's cores shared or not (sim.cores 0). */
static double sim_throughput(const char *dir, int servers, int cores)
{
    char *err = NULL;
    int rc = lockbench(&err, "run scenarios/throughput.json --driver sim --set clients.0.count=10 "
                             "--set lock.keys=10 --set workload.duration_ms=300 "
                             "--set redis.servers=%d --set lock.algorithm=%s "
                             "--set sim.rtt_us=1 --set sim.server_us_per_command=13 "
                             "--set sim.client_us_per_command=11 --set sim.client_cores=1 "
                             "--set sim.cores=%d --out %s --force --no-plot --quiet",
                       servers, servers > 1 ? "redlock" : "token", cores, dir);
    if (rc != 0)
        fail_msg("run: exit %d: %s", rc, err ? err : "");
    free(err);
    json_t *v = load_json(dir, "default/summary.json");
    double tp = num(v, "throughput_per_s");
    assert_int_equal(num(json_object_get(v, "sim"), "cores"), cores);
    json_decref(v);
    return tp;
}

/* sim.cores: the client's thread and the servers share the machine's cores. One client thread
 * and one server on two cores have nothing to share; redlock's five servers on two do, and on one
 * core the client's and the servers' work take turns, so a lock cycle costs their sum. */
static void the_machines_cores_are_shared(void **state)
{
    char *out = tempdir(), dir[1100];
    snprintf(dir, sizeof dir, "%s/r", out);
    assert_true(sim_throughput(dir, 1, 2) == sim_throughput(dir, 1, 0));
    double own = sim_throughput(dir, 5, 0), two = sim_throughput(dir, 5, 2),
           one = sim_throughput(dir, 5, 1);
    print_message("redlock on 5 servers: %.0f cycles/s on cores of their own, %.0f on 2 shared, "
                  "%.0f on 1\n", own, two, one);
    assert_true(two < 0.95 * own && one < two);
    /* a cycle is 10 client commands (5 SET, 5 EVALSHA) of 11 us and 10 server commands of 13
     * us, plus a script's calls: on one core no more than 1e6 / 240 cycles a second */
    assert_true(one <= 1e6 / 240.0);
    assert_true(own > 1e6 / 240.0);
    rmtree(out);
    free(out);
}

/* The real drivers' cap on clients (50 000) does not bind the simulator, which has its own
 * (1 000 000): the same file validates with --driver sim and is refused on the loop, naming
 * the cap. (scenarios/sim/hundred-thousand.json runs 100 000 clients.) */
static void the_client_cap_binds_the_real_drivers_only(void **state)
{
    char *err = NULL;
    int rc = lockbench(&err, "validate scenarios/throughput.json --driver sim "
                             "--set clients.0.count=100000 --set lock.keys=100000");
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err ? err : "");
    free(err);
    err = NULL;
    rc = lockbench(&err, "validate scenarios/throughput.json --driver loop "
                         "--set clients.0.count=100000");
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "at most 50000"));
    free(err);
    err = NULL;
    rc = lockbench(&err, "validate scenarios/throughput.json --driver sim "
                         "--set clients.0.count=1000001");
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "1000000"));
    free(err);
}


/* Mean acquire wait (ms) of rows whose call falls in [from, to) ms. */
static double mean_wait(const char *csv, double from, double to)
{
    FILE *f = fopen(csv, "r");
    char line[512];
    double sum = 0;
    int n = 0;
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));  /* header */
    while (fgets(line, sizeof line, f)) {
        double call, wait;
        if (sscanf(line, "%*d,%*[^,],%*d,%lf,%*f,%lf", &call, &wait) == 2 && call >= from &&
            call < to) {
            sum += wait;
            n++;
        }
    }
    fclose(f);
    assert_true(n > 0);
    return sum / n;
}

/* A short delay inside a long one: when the short one ends the long one resumes, and when that
 * ends the link is direct again. Round trips: 60 ms under 30 ms one way, 20 ms under 10. */
static void overlapping_delays_stack(void **state)
{
    char *out = tempdir(), scen[1100], csv[1200];
    snprintf(scen, sizeof scen, "%s/delays.json", out);
    FILE *f = fopen(scen, "w");
    assert_non_null(f);
    fputs("{\"name\": \"delays\", \"workload\": {\"duration_ms\": 900, \"critical_section\": "
          "\"none\", \"think_ms\": 5}, \"clients\": [{\"name\": \"a\", \"count\": 1}], "
          "\"events\": [{\"at_ms\": 100, \"do\": \"delay\", \"clients\": [0], \"latency_ms\": 30, "
          "\"duration_ms\": 500}, {\"at_ms\": 200, \"do\": \"delay\", \"clients\": [0], "
          "\"latency_ms\": 10, \"duration_ms\": 100}]}\n", f);
    fclose(f);
    assert_int_equal(lockbench(NULL, "run %s --out %s/r --no-plot --quiet", scen, out), 0);
    snprintf(csv, sizeof csv, "%s/r/default/acquisitions.csv", out);
    assert_true(mean_wait(csv, 0, 90) < 10);
    assert_in_range((int64_t)mean_wait(csv, 220, 290), 18, 40);
    assert_in_range((int64_t)mean_wait(csv, 320, 580), 58, 90);   /* the long delay resumed */
    assert_true(mean_wait(csv, 650, 900) < 10);                     /* and ended */
    rmtree(out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_and_help),
        cmocka_unit_test(missing_file_is_bad_input),
        cmocka_unit_test(the_store_sees_the_overlap),
        cmocka_unit_test(invalid_scenarios_exit_2_with_their_message),
        cmocka_unit_test(seed_five_clients),
        cmocka_unit_test(seed_timeout),
        cmocka_unit_test(failed_expectation_exits_1_and_says_why),
        cmocka_unit_test(repeats_and_set_overrides),
        cmocka_unit_test(external_server_is_left_as_found),
        cmocka_unit_test(the_store_sees_a_connection_per_loop_thread),
        cmocka_unit_test(variants_write_a_comparison),
        cmocka_unit_test(without_gnuplot_the_run_still_succeeds),
        cmocka_unit_test(external_server_with_auth_and_db),
        cmocka_unit_test(ctrl_c_writes_incomplete_results),
        cmocka_unit_test(sigterm_and_sighup_stop_like_ctrl_c),
        cmocka_unit_test(out_folder_is_replaced_only_with_force),
        cmocka_unit_test(latest_moves_only_when_a_run_completes),
        cmocka_unit_test(results_folder_errors_say_where_and_why),
        cmocka_unit_test(stdout_write_errors_fail),
        cmocka_unit_test(overlapping_delays_stack),
        cmocka_unit_test(both_drivers_are_correct),
        cmocka_unit_test(every_scenario_agrees_on_both_drivers),
        cmocka_unit_test(progress_line_on_a_terminal_only),
        cmocka_unit_test(many_clients_under_a_small_fd_limit),
        cmocka_unit_test(too_few_descriptors_is_said_up_front),
        cmocka_unit_test(a_loop_client_costs_one_descriptor),
        cmocka_unit_test(a_simulated_run_replays_from_its_seed),
        cmocka_unit_test(the_client_cap_binds_the_real_drivers_only),
        cmocka_unit_test(calibration_feeds_the_simulator),
        cmocka_unit_test(the_machines_cores_are_shared),
        cmocka_unit_test(the_simulator_agrees_on_fault_corners),
        cmocka_unit_test(the_simulator_scenarios_pass),
    };
    return cmocka_run_group_tests_name("e2e", tests, NULL, NULL);
}
