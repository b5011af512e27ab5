/* test_unanswered.c -- lockbench against servers that never answer: a wrong password or none,
 * a stopped redis-server (before the run, and in the middle of it, on both drivers), a black
 * hole (a socket that listens and never accepts), and a server the scenario itself pauses.
 *
 * Every run must end: exit 3 within the command timeout plus a few seconds, a message naming
 * the server (and never the password), and a summary.json that says "complete": false. A
 * server the scenario's own events pause is the experiment, not a failure. Each run is bounded:
 * one still going past its bound is killed and the test fails. $LOCKBENCH names the binary. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "servers.h"

/* The command timeout these runs set, and how long past it a run may take to end. */
#define CMD_TIMEOUT_MS 500
#define SET_CMD_TIMEOUT "lock.command_timeout_ms=500"
#define GRACE_MS 6000
#define PASSWORD "s3cr3t-pw"

static const char *bin(void)
{
    const char *b = getenv("LOCKBENCH");
    return b && *b ? b : "build/lockbench";
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000};
    nanosleep(&ts, NULL);
}

/* A run in the background: its process, folder and stderr file. */
typedef struct run {
    pid_t pid;
    char out[64];       /* --out */
    char errfile[64];
} run;

/* Starts lockbench run SCENARIO --out DIR --no-plot --quiet with the extra args
 * (NULL-terminated), stdout to /dev/null, stderr to a file. */
static void start(run *r, const char *scenario, ...)
{
    snprintf(r->out, sizeof r->out, "/tmp/lockbench-unanswered-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(r->out));
    snprintf(r->out + strlen(r->out), sizeof r->out - strlen(r->out), "/r");
    char *argv[40] = {(char *)bin(), "run", (char *)scenario, "--out", r->out, "--no-plot",
                      "--quiet"};
    int argc = 7;
    va_list ap;
    va_start(ap, scenario);
    for (char *a = va_arg(ap, char *); a && argc < 39; a = va_arg(ap, char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    snprintf(r->errfile, sizeof r->errfile, "/tmp/lockbench-unanswered-err-XXXXXX");
    int fd = mkstemp(r->errfile);
    assert_true(fd >= 0);
    close(fd);
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, r->errfile, O_WRONLY, 0), 0);
    assert_int_equal(posix_spawn(&r->pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
}

/* Waits for the run to end, polling until deadline_ms (monotonic); past it the run is killed
 * and the test fails. Its exit code. */
static int finish_by(run *r, int64_t deadline_ms)
{
    int status;
    pid_t got;
    while ((got = waitpid(r->pid, &status, WNOHANG)) == 0 && now_ms() < deadline_ms)
        nap_ms(10);
    if (got == 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, &status, 0);
        fail_msg("lockbench still running %lld ms past its bound",
                 (long long)(now_ms() - deadline_ms));
    }
    assert_int_equal(got, r->pid);
    if (!WIFEXITED(status))
        fail_msg("lockbench died of signal %d", WTERMSIG(status));
    return WEXITSTATUS(status);
}

/* What the run wrote on stderr (malloc'd). */
static char *stderr_of(const run *r)
{
    char *text = calloc(1, 65536);
    FILE *f = fopen(r->errfile, "r");
    assert_non_null(text);
    if (f) {
        size_t n = fread(text, 1, 65535, f);
        text[n] = '\0';
        fclose(f);
    }
    return text;
}

/* The run exited 3 saying which server (by "server N (host:port)"), with want in its message,
 * never the password, and its summary says it did not complete. Cleans the run up. */
static void assert_failed_on(run *r, int rc, int server, int port, const char *want)
{
    char *err = stderr_of(r), name[64], path[128];
    snprintf(name, sizeof name, "server %d (127.0.0.1:%d)", server, port);
    if (rc != 3 || !strstr(err, name) || !strstr(err, want) || strstr(err, PASSWORD) ||
        strstr(err, "wr0ng"))
        fail_msg("exit %d, stderr: %s(wanted exit 3, \"%s\", \"%s\")", rc, err, name, want);
    free(err);
    snprintf(path, sizeof path, "%s/summary.json", r->out);
    json_error_t je;
    json_t *top = json_load_file(path, 0, &je);
    if (!top)
        fail_msg("%s: %s", path, je.text);
    assert_true(json_is_false(json_object_get(top, "complete")));
    assert_true(json_is_false(json_object_get(top, "passed")));
    json_decref(top);
    char cmd[200];
    *strrchr(r->out, '/') = '\0';
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", r->out, r->errfile);
    assert_int_equal(system(cmd), 0);
}

/* A redis-server of this test's own, with a password, and a connection to it (authenticated). */
static lb_server *server_with_password(redisContext **admin, char *url, size_t len)
{
    char err[256];
    lb_server *s = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
    assert_non_null(s);
    *admin = redisConnect("127.0.0.1", lb_server_port(s));
    assert_non_null(*admin);
    freeReplyObject(redisCommand(*admin, "CONFIG SET requirepass " PASSWORD));
    redisReply *ok = redisCommand(*admin, "AUTH " PASSWORD);
    assert_true(ok && ok->type == REDIS_REPLY_STATUS);
    freeReplyObject(ok);
    snprintf(url, len, "redis://:" PASSWORD "@127.0.0.1:%d", lb_server_port(s));
    return s;
}

/* The bound a run that fails on a silent server must end within, from when it fell silent. */
static int64_t bound_from(int64_t t_ms)
{
    return t_ms + CMD_TIMEOUT_MS + GRACE_MS;
}

/* ---- refused ------------------------------------------------------------------------------ */

/* A wrong password, and none at all for a server that wants one (NOAUTH on every command: the
 * report's run, that retried for ever): exit 3 at once, naming the server. */
static void refused_credentials_exit_3_at_once(void **state)
{
    redisContext *admin;
    char url[128], wrong[128], none[128];
    lb_server *s = server_with_password(&admin, url, sizeof url);
    int port = lb_server_port(s);
    snprintf(wrong, sizeof wrong, "redis://:wr0ngpass@127.0.0.1:%d", port);
    snprintf(none, sizeof none, "redis://127.0.0.1:%d", port);
    const char *urls[] = {wrong, none}, *answers[] = {"WRONGPASS", "NOAUTH"};
    for (int i = 0; i < 2; i++) {
        run r;
        start(&r, "scenarios/seed-five-clients.json", "--redis", urls[i], NULL);
        assert_failed_on(&r, finish_by(&r, now_ms() + 5000), 0, port, answers[i]);
    }
    redisFree(admin);
    lb_server_stop(s);
}

/* ---- silent ------------------------------------------------------------------------------- */

/* A server stopped before the run: the servers' check (and the calibration) fails within the
 * bound, before any client starts. */
static void a_stopped_server_fails_the_check(void **state)
{
    redisContext *admin;
    char url[128];
    lb_server *s = server_with_password(&admin, url, sizeof url);
    assert_int_equal(lb_server_pause(s), 0);
    run r;
    int64_t t0 = now_ms();
    start(&r, "scenarios/seed-five-clients.json", "--redis", url, "--set",
          SET_CMD_TIMEOUT, NULL);
    assert_failed_on(&r, finish_by(&r, bound_from(t0)), 0, lb_server_port(s), "did not answer");
    assert_int_equal(lb_server_resume(s), 0);
    redisFree(admin);
    lb_server_stop(s);
}

/* Polls the server until the run's keys exist: its clients are running. */
static void wait_for_keys(redisContext *admin)
{
    int64_t deadline = now_ms() + 20000;
    long long keys = 0;
    while (keys == 0 && now_ms() < deadline) {
        redisReply *n = redisCommand(admin, "DBSIZE");
        keys = n && n->type == REDIS_REPLY_INTEGER ? n->integer : 0;
        freeReplyObject(n);
        if (keys == 0)
            nap_ms(10);
    }
    assert_true(keys > 0);
}

/* A server stopped in the middle of a 20 s run, on each driver: the watch finds it silent and
 * the run ends, its clients stopped wherever they were. */
static void a_server_stopped_mid_run_fails_the_run(void **state)
{
    static const char *const drivers[] = {"driver=loop", "driver=threads"};
    for (int d = 0; d < 2; d++) {
        redisContext *admin;
        char url[128];
        lb_server *s = server_with_password(&admin, url, sizeof url);
        run r;
        start(&r, "scenarios/throughput.json", "--redis", url, "--set", drivers[d], "--set",
              "workload.duration_ms=20000", "--set", SET_CMD_TIMEOUT, NULL);
        wait_for_keys(admin);
        int64_t t0 = now_ms();
        assert_int_equal(lb_server_pause(s), 0);
        int rc = finish_by(&r, bound_from(t0));
        print_message("%s: exit %d %lld ms after the stop\n", drivers[d], rc,
                      (long long)(now_ms() - t0));
        assert_failed_on(&r, rc, 0, lb_server_port(s), "stopped answering");
        assert_int_equal(lb_server_resume(s), 0);
        redisFree(admin);
        lb_server_stop(s);
    }
}

/* A socket that listens and never accepts: connections complete in its backlog, and nothing
 * is ever read or answered. Its port. */
static int black_hole(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(*fd, 128), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* A black hole alone, and as the third of three redlock servers: the message names it. */
static void a_black_hole_fails_the_check(void **state)
{
    int fd, port = black_hole(&fd);
    char hole[128];
    snprintf(hole, sizeof hole, "redis://:" PASSWORD "@127.0.0.1:%d", port);
    run r;
    int64_t t0 = now_ms();
    start(&r, "scenarios/seed-five-clients.json", "--redis", hole, "--set",
          SET_CMD_TIMEOUT, NULL);
    assert_failed_on(&r, finish_by(&r, bound_from(t0)), 0, port, "did not answer");

    redisContext *admin[2];
    char url[2][128];
    lb_server *s[2];
    for (int i = 0; i < 2; i++)
        s[i] = server_with_password(&admin[i], url[i], sizeof url[i]);
    t0 = now_ms();
    start(&r, "scenarios/seed-five-clients.json", "--redis", url[0], "--redis", url[1],
          "--redis", hole, "--set", "redis.servers=3", "--set", "lock.algorithm=redlock", "--set",
          SET_CMD_TIMEOUT, NULL);
    assert_failed_on(&r, finish_by(&r, bound_from(t0)), 2, port, "did not answer");
    for (int i = 0; i < 2; i++) {
        redisFree(admin[i]);
        lb_server_stop(s[i]);
    }
    close(fd);
}

/* ---- the scenario's own silence ----------------------------------------------------------- */

/* A pause-server event longer than the command timeout and the grace together: the paused
 * server is the experiment, and the run completes. */
static void a_server_the_scenario_pauses_is_the_experiment(void **state)
{
    char dir[] = "/tmp/lockbench-unanswered-scn-XXXXXX", path[128], cmd[200];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/paused.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"name\": \"paused\", \"lock\": {\"command_timeout_ms\": 200, "
               "\"wait_timeout_ms\": 500}, \"workload\": {\"duration_ms\": 3500, "
               "\"critical_section\": \"none\", \"think_ms\": 5}, "
               "\"clients\": [{\"name\": \"w\", \"count\": 2}], "
               "\"events\": [{\"at_ms\": 200, \"do\": \"pause-server\", \"server\": 0, "
               "\"duration_ms\": %d}]}\n", 200 + 2000 + 1000);
    fclose(f);
    run r;
    int64_t t0 = now_ms();
    start(&r, path, NULL);
    int rc = finish_by(&r, t0 + 30000);
    char *err = stderr_of(&r);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    free(err);
    snprintf(cmd, sizeof cmd, "%s/summary.json", r.out);
    json_error_t je;
    json_t *top = json_load_file(cmd, 0, &je);
    assert_non_null(top);
    assert_true(json_is_true(json_object_get(top, "complete")));
    json_decref(top);
    *strrchr(r.out, '/') = '\0';
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", r.out, r.errfile, dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_credentials_exit_3_at_once),
        cmocka_unit_test(a_stopped_server_fails_the_check),
        cmocka_unit_test(a_server_stopped_mid_run_fails_the_run),
        cmocka_unit_test(a_black_hole_fails_the_check),
        cmocka_unit_test(a_server_the_scenario_pauses_is_the_experiment),
    };
    return cmocka_run_group_tests_name("unanswered", tests, NULL, NULL);
}
