/* servers.h -- managed redis-server processes.
 *
 * lockbench's embedded default, and the fixture of every integration test: a redis-server on a
 * free loopback port, in a temporary directory of its own, started from the calling (main)
 * thread so PR_SET_PDEATHSIG takes it down if the process dies, killed and its directory removed
 * on lb_server_stop, at exit, and on SIGINT/SIGTERM.
 *
 * The directory is $TMPDIR/lockbench-redis-XXXXXX (/tmp without TMPDIR). Its file
 * lockbench-owner names the process that made it, one "key value" per line:
 *     pid 1234 / start <field 22 of /proc/PID/stat> / boot <boot_id> / pidns <inode>
 * and every lb_server_start first removes the directories whose owner is dead (after a SIGKILL
 * nothing of the owner runs to do it). */
#ifndef LB_SERVERS_H
#define LB_SERVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef enum {
    LB_PERSIST_NONE,          /* no RDB, no AOF: a restart comes back empty */
    LB_PERSIST_AOF_EVERYSEC,  /* appendonly yes, appendfsync everysec */
    LB_PERSIST_AOF_ALWAYS     /* appendonly yes, appendfsync always */
} lb_persistence;

typedef struct lb_server lb_server;

/* Starts a server and waits (polling PING to a deadline) until it answers. NULL on failure,
 * with the reason in err. */
lb_server  *lb_server_start(lb_persistence persistence, char *err, size_t errlen);
/* The same for a sentinel: redis-server --sentinel, its config file the usual lines (port,
 * dir, log) followed by sentinel_conf ("sentinel monitor ..." lines; the sentinel rewrites the
 * file as it learns). harness/sentinels.c builds on it. */
lb_server  *lb_server_start_sentinel(const char *sentinel_conf, char *err, size_t errlen);
/* SIGTERM, then SIGKILL after a grace period; reaps it, removes its directory, frees s.
 * Accepts NULL. */
void        lb_server_stop(lb_server *s);

const char *lb_server_url(const lb_server *s);    /* "redis://127.0.0.1:PORT" (see below) */

/* Where the servers started from now on listen, for lockbench-mpi, whose other ranks may be on
 * other hosts: addr (an IPv4 address or a host name, not a wildcard: it goes into the URL) and,
 * when password is not NULL, requirepass password (then the URL is redis://:PASSWORD@ADDR:PORT
 * and this module's own PINGs authenticate). The default is 127.0.0.1 with no password. Call it
 * before the first server starts. */
#define LB_SERVER_URL_MAX 192
void        lb_servers_listen(const char *addr, const char *password);
int         lb_server_port(const lb_server *s);
const char *lb_server_dir(const lb_server *s);    /* its working directory (AOF files live here) */
pid_t       lb_server_pid(const lb_server *s);    /* 0 while killed */
bool        lb_server_is_running(const lb_server *s);

/* Fault actions. kill = SIGKILL and reap; restart = start again on the same port with the same
 * directory and persistence files, waiting until it answers (0 ok, -1 with err filled);
 * pause/resume = SIGSTOP/SIGCONT. Each returns 0 on success, -1 otherwise. */
int lb_server_kill(lb_server *s);
int lb_server_restart(lb_server *s, char *err, size_t errlen);
int lb_server_pause(lb_server *s);
int lb_server_resume(lb_server *s);

/* True between lb_server_pause and lb_server_resume (or a kill). */
bool lb_server_is_paused(const lb_server *s);

/* Sleeps ms on the monotonic clock, a signal notwithstanding: for the polls to a deadline that
 * the managed processes need (a server, a replica's sync, a sentinel's view). */
void lb_sleep_ms(int64_t ms);

#endif
