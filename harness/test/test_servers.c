/* test_servers.c -- managed redis-server processes: start, kill, restart with and without
 * persistence, pause, stop; a server with replicas: sync, the replication faults, failover.
 * Every test keeps its servers in the fixture state so the teardown stops them even when an
 * assertion fails mid-way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "replicas.h"
#include "servers.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FIXTURE_SERVERS 4
#define MAX_GROUP_CONNS     8
#define TEST_TIME_LIMIT_S   120

typedef struct {
    lb_server *servers[MAX_FIXTURE_SERVERS];
    redisContext *conns[MAX_FIXTURE_SERVERS];
    lb_group *group;
    redisContext *gconns[MAX_GROUP_CONNS];
    char err[512];
    char tmp[64];          /* a TMPDIR of the test's own, removed by the teardown */
    char *saved_tmpdir;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < MAX_FIXTURE_SERVERS; i++) {
        if (f->conns[i] != NULL)
            redisFree(f->conns[i]);
        lb_server_stop(f->servers[i]);
    }
    for (int i = 0; i < MAX_GROUP_CONNS; i++)
        if (f->gconns[i] != NULL)
            redisFree(f->gconns[i]);
    lb_group_stop(f->group);
    if (f->tmp[0] != '\0') {
        if (f->saved_tmpdir != NULL)
            setenv("TMPDIR", f->saved_tmpdir, 1);
        else
            unsetenv("TMPDIR");
        free(f->saved_tmpdir);
        nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(f);
    return 0;
}

/* Points TMPDIR at a fresh directory, so a test sees only the server directories it made. */
static const char *own_tmpdir(fixture *f)
{
    const char *old = getenv("TMPDIR");
    snprintf(f->tmp, sizeof f->tmp, "/tmp/lockbench-servers-test-XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    f->saved_tmpdir = old != NULL ? strdup(old) : NULL;
    setenv("TMPDIR", f->tmp, 1);
    return f->tmp;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static lb_server *start_server(fixture *f, int i, lb_persistence p)
{
    f->servers[i] = lb_server_start(p, f->err, sizeof f->err);
    if (f->servers[i] == NULL)
        fail_msg("lb_server_start: %s", f->err);
    return f->servers[i];
}

/* A fresh connection with a command timeout; NULL-safe to inspect c->err. */
static redisContext *connect_to(const lb_server *s, int timeout_ms)
{
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", lb_server_port(s), tv);
    assert_non_null(c);
    if (c->err == 0)
        assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

static redisContext *connect_slot(fixture *f, int i, int timeout_ms)
{
    if (f->conns[i] != NULL)
        redisFree(f->conns[i]);
    f->conns[i] = connect_to(f->servers[i], timeout_ms);
    if (f->conns[i]->err != 0)
        fail_msg("connect to port %d: %s", lb_server_port(f->servers[i]), f->conns[i]->errstr);
    return f->conns[i];
}

static void expect_status(redisContext *c, const char *want, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    if (r == NULL)
        fail_msg("%s: no reply: %s", cmd, c->errstr);
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, want) != 0) {
        int type = r->type;
        freeReplyObject(r);
        fail_msg("%s: reply type %d, want status %s", cmd, type, want);
    }
    freeReplyObject(r);
}

/* GET key; returns 1 and copies the value, 0 for nil. */
static int get_key(redisContext *c, const char *key, char *out, size_t outlen)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    if (r == NULL)
        fail_msg("GET %s: no reply: %s", key, c->errstr);
    int found = r->type == REDIS_REPLY_STRING;
    if (found)
        snprintf(out, outlen, "%s", r->str);
    else if (r->type != REDIS_REPLY_NIL)
        fail_msg("GET %s: unexpected reply type %d", key, r->type);
    freeReplyObject(r);
    return found;
}

static bool dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_start_answers_ping_and_set(void **state)
{
    fixture *f = *state;
    lb_server *s = start_server(f, 0, LB_PERSIST_NONE);
    char want[64], val[64];
    snprintf(want, sizeof want, "redis://127.0.0.1:%d", lb_server_port(s));
    assert_string_equal(lb_server_url(s), want);
    assert_true(lb_server_pid(s) > 0);
    assert_true(lb_server_is_running(s));
    assert_false(lb_server_is_paused(s));
    assert_true(dir_exists(lb_server_dir(s)));

    redisContext *c = connect_slot(f, 0, 1000);
    expect_status(c, "PONG", "PING");
    expect_status(c, "OK", "SET lb:test hello");
    assert_int_equal(get_key(c, "lb:test", val, sizeof val), 1);
    assert_string_equal(val, "hello");
}

static void test_kill_refuses_connections(void **state)
{
    fixture *f = *state;
    lb_server *s = start_server(f, 0, LB_PERSIST_NONE);
    pid_t pid = lb_server_pid(s);
    assert_int_equal(lb_server_kill(s), 0);
    assert_int_equal(lb_server_pid(s), 0);
    assert_false(lb_server_is_running(s));
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_true(dir_exists(lb_server_dir(s)));   /* files stay for a restart */

    redisContext *c = connect_to(s, 500);
    f->conns[0] = c;
    assert_int_equal(c->err, REDIS_ERR_IO);
    assert_non_null(strstr(c->errstr, "refused"));
    assert_int_equal(lb_server_kill(s), -1);     /* nothing left to kill */
}

static void restart_after_set(fixture *f, lb_persistence p, char *val, size_t vallen, int *found)
{
    lb_server *s = start_server(f, 0, p);
    int port = lb_server_port(s);
    expect_status(connect_slot(f, 0, 1000), "OK", "SET lb:persist survived");
    assert_int_equal(lb_server_kill(s), 0);
    if (lb_server_restart(s, f->err, sizeof f->err) != 0)
        fail_msg("lb_server_restart: %s", f->err);
    assert_int_equal(lb_server_port(s), port);
    assert_true(lb_server_pid(s) > 0);
    *found = get_key(connect_slot(f, 0, 1000), "lb:persist", val, vallen);
}

static void test_restart_aof_always_keeps_key(void **state)
{
    char val[64] = "";
    int found = 0;
    restart_after_set(*state, LB_PERSIST_AOF_ALWAYS, val, sizeof val, &found);
    assert_int_equal(found, 1);
    assert_string_equal(val, "survived");
}

static void test_restart_none_loses_key(void **state)
{
    char val[64] = "";
    int found = 1;
    restart_after_set(*state, LB_PERSIST_NONE, val, sizeof val, &found);
    assert_int_equal(found, 0);
}

static void test_restart_while_running(void **state)
{
    fixture *f = *state;
    lb_server *s = start_server(f, 0, LB_PERSIST_NONE);
    pid_t old = lb_server_pid(s);
    if (lb_server_restart(s, f->err, sizeof f->err) != 0)
        fail_msg("lb_server_restart: %s", f->err);
    assert_int_not_equal(lb_server_pid(s), old);
    expect_status(connect_slot(f, 0, 1000), "PONG", "PING");
}

static void test_pause_times_out_resume_answers(void **state)
{
    fixture *f = *state;
    lb_server *s = start_server(f, 0, LB_PERSIST_NONE);
    redisContext *c = connect_slot(f, 0, 200);
    expect_status(c, "PONG", "PING");

    assert_int_equal(lb_server_pause(s), 0);
    assert_true(lb_server_is_paused(s));
    assert_true(lb_server_is_running(s));
    int64_t t0 = now_ms();
    redisReply *r = redisCommand(c, "PING");
    int64_t waited = now_ms() - t0;
    bool answered = r != NULL;
    freeReplyObject(r);
    assert_false(answered);
    assert_int_equal(c->err, REDIS_ERR_IO);
    assert_in_range(waited, 150, 2000);

    assert_int_equal(lb_server_resume(s), 0);
    assert_false(lb_server_is_paused(s));
    expect_status(connect_slot(f, 0, 1000), "PONG", "PING");
}

static void test_two_servers_differ(void **state)
{
    fixture *f = *state;
    lb_server *a = start_server(f, 0, LB_PERSIST_NONE);
    lb_server *b = start_server(f, 1, LB_PERSIST_AOF_EVERYSEC);
    assert_int_not_equal(lb_server_port(a), lb_server_port(b));
    assert_int_not_equal(lb_server_pid(a), lb_server_pid(b));
    assert_string_not_equal(lb_server_dir(a), lb_server_dir(b));
    assert_string_not_equal(lb_server_url(a), lb_server_url(b));
    expect_status(connect_slot(f, 0, 1000), "PONG", "PING");
    expect_status(connect_slot(f, 1, 1000), "PONG", "PING");
}

static void expect_stopped(pid_t pid, const char *dir)
{
    errno = 0;
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_false(dir_exists(dir));
}

static void test_stop_removes_process_and_dir(void **state)
{
    fixture *f = *state;
    lb_server *s = start_server(f, 0, LB_PERSIST_AOF_ALWAYS);
    expect_status(connect_slot(f, 0, 1000), "OK", "SET lb:stop x");  /* AOF files in a subdir */
    pid_t pid = lb_server_pid(s);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", lb_server_dir(s));
    assert_true(dir_exists(dir));

    f->servers[0] = NULL;
    lb_server_stop(s);
    expect_stopped(pid, dir);
    lb_server_stop(NULL);
}

static void test_stop_paused_server(void **state)
{
    fixture *f = *state;
    lb_server *s = start_server(f, 0, LB_PERSIST_NONE);
    pid_t pid = lb_server_pid(s);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", lb_server_dir(s));
    assert_int_equal(lb_server_pause(s), 0);

    int64_t t0 = now_ms();
    f->servers[0] = NULL;
    lb_server_stop(s);
    assert_in_range(now_ms() - t0, 0, 1500);     /* SIGCONT let it act on SIGTERM */
    expect_stopped(pid, dir);
}

/* Starts a server with PATH pointing at a directory holding only a redis-server shell script
 * with the given body; the real PATH is in $REAL_PATH for a script that execs the real one. */
static lb_server *start_with_fake_redis(fixture *f, const char *body)
{
    char bindir[] = "/tmp/lockbench-fake-XXXXXX", script[600], count[600];
    assert_non_null(mkdtemp(bindir));
    snprintf(script, sizeof script, "%s/redis-server", bindir);
    snprintf(count, sizeof count, "%s/count", bindir);
    FILE *fp = fopen(script, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\nCOUNT='%s'\n%s", count, body);
    fclose(fp);
    chmod(script, 0755);

    char *saved = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("REAL_PATH", saved, 1);
    setenv("PATH", bindir, 1);
    lb_server *s = lb_server_start(LB_PERSIST_NONE, f->err, sizeof f->err);
    setenv("PATH", saved, 1);
    free(saved);
    f->servers[0] = s;
    unlink(script);
    unlink(count);
    rmdir(bindir);
    return s;
}

/* A redis-server that dies at once: the error must carry its last log lines. */
static void test_start_failure_reports_log(void **state)
{
    fixture *f = *state;
    lb_server *s = start_with_fake_redis(f, "echo 'fatal: fake server refuses to start' >&2\n"
                                            "exit 1\n");
    assert_null(s);
    assert_non_null(strstr(f->err, "fake server refuses to start"));
}

/* Another process taking the probed port before redis binds it: start tries a new port. */
static void test_port_race_retries(void **state)
{
    fixture *f = *state;
    lb_server *s = start_with_fake_redis(f,
        "n=0; [ -f \"$COUNT\" ] && read n < \"$COUNT\"\n"   /* builtins only: PATH is bare */
        "echo $((n + 1)) > \"$COUNT\"\n"
        "if [ \"$n\" -lt 2 ]; then\n"
        "  echo 'Could not create server TCP listening socket: Address already in use' >&2\n"
        "  exit 1\n"
        "fi\n"
        "PATH=\"$REAL_PATH\" exec redis-server \"$@\"\n");
    if (s == NULL)
        fail_msg("lb_server_start: %s", f->err);
    expect_status(connect_slot(f, 0, 1000), "PONG", "PING");
}

static void test_start_without_redis_in_path(void **state)
{
    fixture *f = *state;
    char *saved = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", "/nonexistent-lockbench-dir", 1);
    lb_server *s = lb_server_start(LB_PERSIST_NONE, f->err, sizeof f->err);
    setenv("PATH", saved, 1);
    free(saved);
    f->servers[0] = s;
    assert_null(s);
    assert_non_null(strstr(f->err, "redis-server"));
}

/* ---- directories a killed lockbench left --------------------------------------------------- */

typedef struct {
    long pid;
    unsigned long long start, pidns;
    char boot[48];
} owner;

static void read_owner(const char *dir, owner *o)
{
    char path[600];
    snprintf(path, sizeof path, "%s/lockbench-owner", dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int n = fscanf(fp, "pid %ld start %llu boot %47s pidns %llu", &o->pid, &o->start, o->boot,
                   &o->pidns);
    fclose(fp);
    assert_int_equal(n, 4);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* tmp/name, a directory with some server files and, unless o is NULL, an owner file. */
static void fake_dir(const char *tmp, const char *name, const owner *o)
{
    char dir[600], sub[700], text[256];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(dir, "redis.log", "log\n");
    snprintf(sub, sizeof sub, "%s/appendonlydir", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(sub, "appendonly.aof.1.incr.aof", "*1\r\n");
    if (o == NULL)
        return;
    snprintf(text, sizeof text, "pid %ld\nstart %llu\nboot %s\npidns %llu\n", o->pid, o->start,
             o->boot, o->pidns);
    write_file(dir, "lockbench-owner", text);
}

static bool in_tmp(const char *tmp, const char *name)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    return lstat(path, &st) == 0;
}

/* A pid no process has now (that of a child already reaped). */
static long dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    return (long)pid;
}

/* A start removes the directories whose owner is dead (no such pid, the pid reused by a later
 * process, a boot ago) and nothing else: not a live owner's, not one it cannot judge (another
 * pid namespace, no or a garbled owner file), not what lockbench did not make. */
static void test_start_sweeps_dead_owners_only(void **state)
{
    fixture *f = *state;
    const char *tmp = own_tmpdir(f);
    lb_server *live = start_server(f, 0, LB_PERSIST_NONE);
    owner me, o;
    read_owner(lb_server_dir(live), &me);
    assert_int_equal(me.pid, (long)getpid());

    o = me, o.pid = dead_pid();
    fake_dir(tmp, "lockbench-redis-dead", &o);
    o = me, o.start = me.start + 1;                  /* our pid, another process's start */
    fake_dir(tmp, "lockbench-redis-reused", &o);
    o = me, snprintf(o.boot, sizeof o.boot, "00000000-0000-0000-0000-000000000000");
    fake_dir(tmp, "lockbench-redis-rebooted", &o);
    o = me, o.pid = dead_pid(), o.pidns = me.pidns + 1;
    fake_dir(tmp, "lockbench-redis-otherns", &o);
    fake_dir(tmp, "lockbench-redis-noowner", NULL);
    fake_dir(tmp, "lockbench-redis-garbled", NULL);
    write_file(tmp, "lockbench-redis-garbled/lockbench-owner", "pid 1x\n");
    o = me, o.pid = dead_pid();
    fake_dir(tmp, "not-lockbench", &o);
    char link[600];
    snprintf(link, sizeof link, "%s/lockbench-redis-link", tmp);
    assert_int_equal(symlink("not-lockbench", link), 0);
    write_file(tmp, "lockbench-redis-file", "pid 1\n");

    start_server(f, 1, LB_PERSIST_NONE);
    assert_false(in_tmp(tmp, "lockbench-redis-dead"));
    assert_false(in_tmp(tmp, "lockbench-redis-reused"));
    assert_false(in_tmp(tmp, "lockbench-redis-rebooted"));
    assert_true(in_tmp(tmp, "lockbench-redis-otherns"));
    assert_true(in_tmp(tmp, "lockbench-redis-noowner"));
    assert_true(in_tmp(tmp, "lockbench-redis-garbled/lockbench-owner"));
    assert_true(in_tmp(tmp, "not-lockbench/appendonlydir/appendonly.aof.1.incr.aof"));
    assert_true(in_tmp(tmp, "lockbench-redis-link"));
    assert_true(in_tmp(tmp, "lockbench-redis-file"));
    assert_true(dir_exists(lb_server_dir(live)));
    expect_status(connect_slot(f, 0, 1000), "PONG", "PING");
}

/* The case itself: a process killed with SIGKILL cannot remove its directory, and the next
 * process that starts a server does. */
static void test_sigkilled_owner_dir_swept(void **state)
{
    fixture *f = *state;
    own_tmpdir(f);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {                     /* starts a server, says where, waits to be killed */
        char err[256];
        lb_server *s = lb_server_start(LB_PERSIST_AOF_ALWAYS, err, sizeof err);
        if (s == NULL)
            _exit(1);
        ssize_t ignored = write(fds[1], lb_server_dir(s), strlen(lb_server_dir(s)) + 1);
        (void)ignored;
        for (;;)
            pause();
    }
    close(fds[1]);
    char dir[512] = "";
    ssize_t n = read(fds[0], dir, sizeof dir - 1);   /* EOF if the child failed */
    close(fds[0]);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_true(n > 1);
    assert_true(dir_exists(dir));         /* nothing of the child ran after SIGKILL */

    start_server(f, 0, LB_PERSIST_NONE);
    assert_false(dir_exists(dir));
    assert_true(dir_exists(lb_server_dir(f->servers[0])));
}

/* ---- a server with replicas --------------------------------------------------------------- */

static lb_group *start_group(fixture *f, lb_persistence p, int replicas)
{
    f->group = lb_group_start(p, replicas, f->err, sizeof f->err);
    if (f->group == NULL)
        fail_msg("lb_group_start: %s", f->err);
    return f->group;
}

/* A connection to a port, kept in the fixture's slot i. */
static redisContext *connect_port(fixture *f, int i, int port)
{
    struct timeval tv = {.tv_sec = 1};
    if (f->gconns[i] != NULL)
        redisFree(f->gconns[i]);
    f->gconns[i] = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_non_null(f->gconns[i]);
    if (f->gconns[i]->err != 0)
        fail_msg("connect to port %d: %s", port, f->gconns[i]->errstr);
    assert_int_equal(redisSetTimeout(f->gconns[i], tv), REDIS_OK);
    return f->gconns[i];
}

/* Through the front link, as the clients connect. */
static redisContext *connect_front(fixture *f, int i)
{
    int port = 0;
    assert_int_equal(sscanf(lb_group_url(f->group), "redis://127.0.0.1:%d", &port), 1);
    return connect_port(f, i, port);
}

static redisContext *connect_node(fixture *f, int i, int node)
{
    return connect_port(f, i, lb_server_port(lb_group_node(f->group, node)));
}

/* INFO replication of the connection's server, copied into out. */
static void info_replication(redisContext *c, char *out, size_t outlen)
{
    redisReply *r = redisCommand(c, "INFO replication");
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        fail_msg("INFO replication: %s", r ? "not a string" : c->errstr);
    snprintf(out, outlen, "%s", r->str);
    freeReplyObject(r);
}

static void sync_group(fixture *f)
{
    if (lb_group_wait_sync(f->group, 5000, f->err, sizeof f->err) != 0)
        fail_msg("lb_group_wait_sync: %s", f->err);
}

/* Every replica replicates through its primary's ingress link and announces its own, and is in
 * sync when the start returns. */
static void test_replicas_sync_through_announced_links(void **state)
{
    fixture *f = *state;
    lb_group *g = start_group(f, LB_PERSIST_NONE, 2);
    char info[2048], want[64], val[64];
    assert_int_equal(lb_group_nodes(g), 3);
    assert_int_equal(lb_group_primary(g), 0);
    assert_string_not_equal(lb_group_url(g), lb_server_url(lb_group_node(g, 0)));
    info_replication(connect_node(f, 0, 0), info, sizeof info);
    assert_non_null(strstr(info, "connected_slaves:2"));
    for (int k = 1; k <= 2; k++) {
        snprintf(want, sizeof want, "ip=127.0.0.1,port=%d,", lb_group_ingress_port(g, k));
        assert_non_null(strstr(info, want));
    }
    info_replication(connect_node(f, 1, 2), info, sizeof info);
    snprintf(want, sizeof want, "master_port:%d\r\n", lb_group_ingress_port(g, 0));
    assert_non_null(strstr(info, want));
    assert_non_null(strstr(info, "master_link_status:up"));

    expect_status(connect_front(f, 2), "OK", "SET lb:written hello");
    sync_group(f);
    for (int k = 1; k <= 2; k++) {
        assert_int_equal(get_key(connect_node(f, 3, k), "lb:written", val, sizeof val), 1);
        assert_string_equal(val, "hello");
    }
}

/* Polls until node's offset reaches the primary's. */
static void wait_offset(fixture *f, int node)
{
    int64_t deadline = now_ms() + 5000;
    while (lb_group_offset(f->group, node) < lb_group_offset(f->group, lb_group_primary(f->group)))
        if (now_ms() > deadline)
            fail_msg("node %d did not reach the primary's offset", node);
}

/* Node 1 stops replicating before a write that node 2 gets: the failover promotes node 2,
 * re-points node 1 to it, resets the clients' connections and sends new ones to node 2. The
 * killed old primary restarts empty (persistence none) and comes back as node 2's replica. */
static void test_failover_promotes_most_up_to_date(void **state)
{
    fixture *f = *state;
    lb_group *g = start_group(f, LB_PERSIST_NONE, 2);
    char val[64], info[2048];
    expect_status(connect_front(f, 0), "OK", "SET lb:a 1");
    sync_group(f);
    expect_status(connect_node(f, 1, 1), "OK", "REPLICAOF NO ONE");
    expect_status(f->gconns[0], "OK", "SET lb:b 2");
    wait_offset(f, 2);
    assert_true(lb_group_offset(g, 1) < lb_group_offset(g, 2));

    assert_int_equal(lb_group_failover(g, true, f->err, sizeof f->err), 2);
    assert_int_equal(lb_group_primary(g), 2);
    assert_false(lb_server_is_running(lb_group_node(g, 0)));
    redisReply *r = redisCommand(f->gconns[0], "PING");
    assert_null(r);                                   /* the failover dropped the connection */
    redisContext *c = connect_front(f, 0);
    assert_int_equal(get_key(c, "lb:b", val, sizeof val), 1);
    expect_status(c, "OK", "SET lb:c 3");             /* writable: a primary */
    info_replication(c, info, sizeof info);
    assert_non_null(strstr(info, "role:master"));
    sync_group(f);                                    /* node 1 follows node 2 */
    assert_int_equal(get_key(connect_node(f, 1, 1), "lb:c", val, sizeof val), 1);

    if (lb_group_restart(g, 0, f->err, sizeof f->err) != 0)
        fail_msg("lb_group_restart: %s", f->err);
    assert_true(lb_server_is_running(lb_group_node(g, 0)));
    sync_group(f);
    c = connect_node(f, 2, 0);
    info_replication(c, info, sizeof info);
    assert_non_null(strstr(info, "role:slave"));
    assert_int_equal(get_key(c, "lb:c", val, sizeof val), 1);
    assert_int_equal(lb_group_primary(g), 2);
}

/* A write still held in a delayed replication link is lost by a failover that demotes the old
 * primary: the promoted replica never had it, and the demoted one discards it in its sync. */
static void test_failover_demote_loses_delayed_write(void **state)
{
    fixture *f = *state;
    lb_group *g = start_group(f, LB_PERSIST_NONE, 1);
    char val[64], info[2048];
    assert_int_equal(lb_group_repl_delay(g, 500000, true), 0);
    expect_status(connect_front(f, 0), "OK", "SET lb:late 1");
    assert_int_equal(lb_group_failover(g, false, f->err, sizeof f->err), 1);
    assert_int_equal(lb_group_repl_delay(g, 500000, false), 0);
    assert_true(lb_server_is_running(lb_group_node(g, 0)));
    sync_group(f);
    assert_int_equal(get_key(connect_front(f, 0), "lb:late", val, sizeof val), 0);
    info_replication(connect_node(f, 1, 0), info, sizeof info);
    assert_non_null(strstr(info, "role:slave"));
    assert_int_equal(get_key(f->gconns[1], "lb:late", val, sizeof val), 0);
}

/* A partitioned replication link holds the stream; on heal the replica catches up. */
static void test_partition_replication_holds_then_heals(void **state)
{
    fixture *f = *state;
    lb_group *g = start_group(f, LB_PERSIST_NONE, 1);
    char val[64];
    assert_int_equal(lb_group_repl_partition(g, true), 0);
    expect_status(connect_front(f, 0), "OK", "SET lb:held 1");
    int64_t until = now_ms() + 200;
    while (now_ms() < until)   /* absent over a window: no write gets through */
        assert_int_equal(get_key(connect_node(f, 1, 1), "lb:held", val, sizeof val), 0);
    assert_int_equal(lb_group_repl_partition(g, false), 0);
    sync_group(f);
    assert_int_equal(get_key(connect_node(f, 1, 1), "lb:held", val, sizeof val), 1);
}

static void test_failover_without_replicas_fails(void **state)
{
    fixture *f = *state;
    lb_group *g = start_group(f, LB_PERSIST_NONE, 0);
    assert_string_equal(lb_group_url(g), lb_server_url(lb_group_node(g, 0)));
    assert_int_equal(lb_group_failover(g, true, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "no replicas"));
    assert_true(lb_server_is_running(lb_group_node(g, 0)));
}

/* A failover whose replicas are all down promotes nothing and kills nothing: the primary (here
 * node 1, promoted by the first failover, with node 0 killed) runs on. */
static void test_failover_with_every_replica_down_leaves_the_primary(void **state)
{
    fixture *f = *state;
    lb_group *g = start_group(f, LB_PERSIST_NONE, 1);
    assert_int_equal(lb_group_failover(g, true, f->err, sizeof f->err), 1);
    assert_int_equal(lb_group_failover(g, true, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "nothing to promote"));
    assert_int_equal(lb_group_primary(g), 1);
    assert_true(lb_server_is_running(lb_group_node(g, 1)));
    assert_int_equal(lb_group_restart(g, 1, f->err, sizeof f->err), -1);   /* not down */
    assert_int_equal(lb_group_restart(g, 0, f->err, sizeof f->err), 0);
    assert_true(lb_server_is_running(lb_group_node(g, 0)));
}

int main(void)
{
    alarm(TEST_TIME_LIMIT_S);   /* a hang fails the run; PR_SET_PDEATHSIG takes the servers */
    signal(SIGPIPE, SIG_IGN);   /* a failover resets connections that the tests then write on */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_answers_ping_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_refuses_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_aof_always_keeps_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_none_loses_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_times_out_resume_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_servers_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_removes_process_and_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_paused_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_failure_reports_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_race_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_without_redis_in_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_sweeps_dead_owners_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkilled_owner_dir_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replicas_sync_through_announced_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_promotes_most_up_to_date, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_demote_loses_delayed_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_replication_holds_then_heals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_with_every_replica_down_leaves_the_primary,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_without_replicas_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
