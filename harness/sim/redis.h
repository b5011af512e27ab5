/* redis.h -- a modelled Redis 7 server in virtual time, for the simulator.
 *
 * One sim_server per modelled server: single-threaded, with a CPU cost per command, keys that
 * expire on the virtual clock, and the commands the lock core and the harness send (the list is
 * the command table in commands.c; test_sim_knows checks it against the sources). Scripts are
 * the core's own Lua files, run by Lua 5.1 as Redis runs them.
 *
 * Time is int64 microseconds of virtual time. The server is an event loop as Redis's ae.c is:
 * an iteration starts when input is waiting (or a cron tick is due that has work), reads every
 * connection that has input, runs its commands one after another (us_per_command each), runs
 * serverCron when due, and then beforeSleep: blocked clients whose timeout passed get nil,
 * clients unblocked in this iteration run the commands pipelined behind their BLPOP, and every
 * reply of the iteration leaves at its end. An idle server sleeps until the next cron tick, so
 * a BLPOP times out on time while the server is busy and at the next tick (1000/hz ms) when it
 * is idle, as in Redis.
 *
 * The driver's contract: calls come in non-decreasing now_us; a command pushed at now_us is seen
 * by the first iteration that starts at or after now_us, so push everything that arrives at T
 * before sim_server_run(s, T). Replies go to the sim_reply_fn given at creation, from inside
 * sim_server_run (and from sim_server_pause/kill, which first catch up to now_us). */
#ifndef SIM_REDIS_H
#define SIM_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlock_machine.h"  /* dlock_reply */
#include "servers.h"        /* lb_persistence */
#include "sim/cores.h"

typedef struct sim_server sim_server;
typedef struct sim_conn sim_conn;

typedef struct sim_server_params {
    int64_t us_per_command;    /* server CPU time per command (e.g. 8) */
    int64_t us_per_script;     /* extra per redis.call (or pcall) a script makes */
    int hz;                    /* serverCron frequency (10) */
    /* Added to the interface: */
    bool dynamic_hz;           /* Redis's dynamic-hz (on by default there): hz doubles, up to
                                  500, while there are more than 200 clients per tick */
    lb_persistence persistence;  /* what a kill keeps (see sim_server_kill) */
    int64_t unix_epoch_us;     /* Unix time at virtual time 0: what TIME answers */
    const char *requirepass;   /* NULL: no password, as a default redis-server */
    sim_cores *cores;          /* the machine's cores it shares with others (cores.h); NULL:
                                  a core of its own */
} sim_server_params;

/* The defaults: 8 us a command, 10 us more a script, hz 10 with dynamic hz, no persistence,
 * epoch 2023-11-14T22:13:20Z (1 700 000 000 s), no password. */
void sim_server_params_init(sim_server_params *p);

/* A reply leaves the server at at_us on a connection; r is valid only during the call. owner is
 * what sim_conn_open was given. */
typedef void (*sim_reply_fn)(void *ctx, void *owner, int64_t at_us, const dlock_reply *r);

/* NULL when out of memory or when Lua cannot start. */
sim_server *sim_server_new(const sim_server_params *p, sim_reply_fn fn, void *ctx);
void        sim_server_free(sim_server *s);  /* accepts NULL; frees its connections too */

/* A new connection (NULL while the server is down after a kill, or out of memory). */
sim_conn   *sim_conn_open(sim_server *s, void *owner);
/* The client is gone: its queued commands are dropped, a blocked BLPOP is abandoned (its pop
 * never happens), replies not yet out are not delivered. Frees c; accepts NULL. */
void        sim_conn_close(sim_conn *c, int64_t now_us);
/* The client closes c, as TCP does, with a FIN behind what it sent: from now on no reply goes
 * to the owner (which may give its owner pointer to a new connection at once), and commands
 * pushed by reference are copied (their argv may go now). What was sent before the FIN is
 * still pushed on c as it arrives, then sim_conn_fin. */
void        sim_conn_shutdown(sim_conn *c);
/* The FIN arrives at now_us: what c has queued runs (not behind a blocked BLPOP, which the EOF
 * abandons), then the server frees c -- the caller must not use it again. */
void        sim_conn_fin(sim_conn *c, int64_t now_us);
/* A command arrives in c's query buffer at now_us (argv is copied). Dropped on a connection
 * that a kill cut. */
void        sim_conn_push(sim_conn *c, int64_t now_us, int argc, const char *const *argv,
                          const size_t *argvlen);
/* The same without the copy: argv (NUL-terminated strings) must stay as they are until the
 * command has run -- its reply is out -- or c is closed or shut down. The simulator's driver passes a lock
 * machine's commands so: a hundred thousand clients' commands may queue at one server. */
void        sim_conn_push_ref(sim_conn *c, int64_t now_us, int argc, const char *const *argv,
                              const size_t *argvlen);
/* Whether a kill cut c (then it only waits for sim_conn_close). */
bool        sim_conn_is_dead(const sim_conn *c);

/* Does all the work due by now_us (iterations, BLPOP timeouts, cron ticks); replies go to fn. */
void        sim_server_run(sim_server *s, int64_t now_us);
/* When the server next has something to do: the end of the iteration in progress (its replies
 * go out then), the next iteration's start, or the cron tick at which a blocked client times
 * out; INT64_MAX when nothing. */
int64_t     sim_server_next_us(const sim_server *s);

/* SIGSTOP at now_us, SIGCONT at until_us: nothing runs in between (an iteration in progress
 * ends that much later); at until_us an iteration runs at once (cron, timeouts, input). */
void        sim_server_pause(sim_server *s, int64_t now_us, int64_t until_us);

/* The process dies (kill-server, host false) or its machine does (crash-host, host true) at
 * now_us. Every connection is cut (sim_conn_is_dead; owners learn it from the driver); the
 * iteration in progress never finishes and its replies never leave; the script cache is gone.
 * The data kept depends on params.persistence: none keeps nothing; aof-always keeps every write
 * it acknowledged; aof-everysec keeps, on a kill, everything written (what the OS has), and on a
 * host crash the state as of the last fsync (the first iteration end in a new second after a
 * write: up to a second of acknowledged writes lost). The server is down until restart. */
void        sim_server_kill(sim_server *s, int64_t now_us, bool host);
void        sim_server_restart(sim_server *s, int64_t now_us);
bool        sim_server_is_down(const sim_server *s);

/* ---- replication (redis.replicas) ---------------------------------------------------------
 * A primary and its replicas are a group. The primary replicates the effects of each write it
 * runs (a script's too, as Redis 7 does; TTLs as absolute times) to every replica: they leave
 * at the end of the iteration that ran them and cross a link of one_way_us (plus a delay's
 * latency) in order; a replica applies them on arrival and acknowledges its offset over the same
 * link. WAIT n timeout answers once n replicas acknowledged the primary's offset as of the WAIT,
 * or at the timeout with how many did. The group's links are run by sim_server_run and
 * sim_server_next_us of its primary (whatever its state), and sim_server_free of the primary
 * frees the group. */

/* Gives primary n replicas (same params, empty, in sync). 0, or -1 when out of memory. */
int         sim_server_add_replicas(sim_server *primary, int n, int64_t one_way_us);
/* Promotes the replica with the highest offset (ties: the lowest index); the others copy its
 * data (a full resync); the old primary is killed (demote false: see sim_server_kill) or made a
 * replica of the new one (its connections cut, its unreplicated writes lost). Effects in flight
 * from the old primary are dropped. The new primary, or NULL when no replica is up. */
sim_server *sim_server_failover(sim_server *primary, int64_t now_us, bool demote);
/* A delay-replication event's latency on every link begins (on) or ends, or a partition: what
 * is not yet delivered is held both ways until it heals, then delivered. Overlapping events
 * stack as on the real drivers: the latest delay in effect applies; a partition lasts until the
 * last one ends. */
void        sim_server_repl_delay(sim_server *primary, int64_t now_us, int64_t latency_us, bool on);
void        sim_server_repl_hold(sim_server *primary, int64_t now_us, bool on);
int         sim_server_nmembers(const sim_server *s);      /* 1 + replicas; 1 without */
sim_server *sim_server_member(const sim_server *s, int i);  /* the member i (0: the first primary) */
bool        sim_server_is_primary(const sim_server *s);
uint64_t    sim_server_offset(const sim_server *s);
/* A key's string value in db 0 (NULL: absent, expired or not a string), for tests. */
const char *sim_server_peek(sim_server *s, const char *key, int64_t now_us);

/* Whether the model has a command of this name (any case). */
bool        sim_server_knows(const char *name);

/* Counters for the summary and tests. */
typedef struct sim_server_stats {
    uint64_t commands;     /* commands run (a script counts once) */
    uint64_t iterations;   /* event-loop iterations */
    uint64_t keys;         /* keys in db 0 now (expired ones not yet removed included) */
} sim_server_stats;
void sim_server_get_stats(const sim_server *s, sim_server_stats *out);

#endif
