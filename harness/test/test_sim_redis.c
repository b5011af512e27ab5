/* test_sim_redis.c -- the modelled Redis on its own: its timing (service time, iterations,
 * commands pipelined behind BLPOP, first-come wake-ups, BLPOP timeouts on time when busy and
 * at the cron tick when idle, pause; WAIT with no replica), kill and restart under each
 * persistence, a client's close (what it sent first still runs), WATCH/EXEC, the
 * script cache, and that it knows every command the lock core and the harness send.
 *
 * Each test plays the simulator's driver: it pushes commands at virtual times, runs the server
 * and asserts the replies and the times they leave. Replies are kept as text: +OK, :1, $v,
 * (nil), -ERR ..., [a,b]. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/redis.h"

#define MAX_REPLIES 256

typedef struct got {
    int owner;
    int64_t at_us;
    char text[256];
} got;

typedef struct fixture {
    sim_server *s;
    got r[MAX_REPLIES];
    int n;
    int owners[16];
} fixture;

static size_t fmt(char *out, size_t cap, const dlock_reply *r)
{
    switch (r->type) {
    case DLOCK_REPLY_STRING:
        return (size_t)snprintf(out, cap, "$%s", r->str);
    case DLOCK_REPLY_INTEGER:
        return (size_t)snprintf(out, cap, ":%lld", r->integer);
    case DLOCK_REPLY_NIL:
        return (size_t)snprintf(out, cap, "(nil)");
    case DLOCK_REPLY_STATUS:
        return (size_t)snprintf(out, cap, "+%s", r->str);
    case DLOCK_REPLY_ERROR:
        return (size_t)snprintf(out, cap, "-%s", r->str);
    case DLOCK_REPLY_ARRAY: {
        size_t n = (size_t)snprintf(out, cap, "[");
        for (size_t i = 0; i < r->elements && n < cap; i++) {
            if (i)
                n += (size_t)snprintf(out + n, cap - n, ",");
            if (n < cap)
                n += fmt(out + n, cap - n, &r->element[i]);
        }
        if (n < cap)
            n += (size_t)snprintf(out + n, cap - n, "]");
        return n;
    }
    }
    return 0;
}

static void on_reply(void *ctx, void *owner, int64_t at_us, const dlock_reply *r)
{
    fixture *f = ctx;
    assert_true(f->n < MAX_REPLIES);
    got *g = &f->r[f->n++];
    g->owner = *(int *)owner;
    g->at_us = at_us;
    fmt(g->text, sizeof g->text, r);
}

static fixture *make(lb_persistence p)
{
    fixture *f = calloc(1, sizeof *f);
    for (int i = 0; i < 16; i++)
        f->owners[i] = i;
    sim_server_params sp;
    sim_server_params_init(&sp);
    sp.persistence = p;
    f->s = sim_server_new(&sp, on_reply, f);
    assert_non_null(f->s);
    return f;
}

static void done(fixture *f)
{
    sim_server_free(f->s);
    free(f);
}

static sim_conn *conn(fixture *f, int owner)
{
    sim_conn *c = sim_conn_open(f->s, &f->owners[owner]);
    assert_non_null(c);
    return c;
}

/* Pushes "CMD arg arg" (split on spaces) at t. */
static void push(sim_conn *c, int64_t t, const char *line)
{
    char buf[512];
    const char *argv[32];
    size_t len[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *p = strtok(buf, " "); p && argc < 32; p = strtok(NULL, " ")) {
        argv[argc] = p;
        len[argc++] = strlen(p);
    }
    sim_conn_push(c, t, argc, argv, len);
}

/* Runs the server event by event up to t, as a driver would. */
static void run_to(fixture *f, int64_t t)
{
    for (int64_t next = sim_server_next_us(f->s); next <= t; next = sim_server_next_us(f->s))
        sim_server_run(f->s, next);
    sim_server_run(f->s, t);
}

/* The reply that came k-th (0-based) to owner; NULL when fewer came. */
static const got *nth(const fixture *f, int owner, int k)
{
    for (int i = 0; i < f->n; i++)
        if (f->r[i].owner == owner && k-- == 0)
            return &f->r[i];
    return NULL;
}

static void expect(const fixture *f, int owner, int k, int64_t at_us, const char *text)
{
    const got *g = nth(f, owner, k);
    if (!g)
        fail_msg("owner %d: no reply #%d (wanted %s at %lld)", owner, k, text, (long long)at_us);
    if (strcmp(g->text, text) != 0 || (at_us >= 0 && g->at_us != at_us))
        fail_msg("owner %d reply #%d: got %s at %lld, wanted %s at %lld", owner, k, g->text,
                 (long long)g->at_us, text, (long long)at_us);
}

static int count_for(const fixture *f, int owner)
{
    int n = 0;
    for (int i = 0; i < f->n; i++)
        n += f->r[i].owner == owner;
    return n;
}

/* ---- service time and iterations -------------------------------------------------------- */

static void a_command_takes_its_service_time(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0);
    push(a, 1000, "SET k v");
    assert_int_equal(sim_server_next_us(f->s), 1000);
    run_to(f, 5000);
    expect(f, 0, 0, 1008, "+OK");
    /* two commands in one write: one iteration, both replies at its end */
    push(a, 6000, "GET k");
    push(a, 6000, "PING");
    run_to(f, 9000);
    expect(f, 0, 1, 6016, "$v");
    expect(f, 0, 2, 6016, "+PONG");
    done(f);
}

static void commands_queue_for_the_single_thread(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *c[3] = {conn(f, 0), conn(f, 1), conn(f, 2)};
    for (int i = 0; i < 3; i++)
        push(c[i], 100, "INCR n");
    push(c[0], 105, "GET n");  /* arrives while the first iteration runs: the next one */
    run_to(f, 1000);
    expect(f, 0, 0, 124, ":1");
    expect(f, 1, 0, 124, ":2");
    expect(f, 2, 0, 124, ":3");
    expect(f, 0, 1, 132, "$3");
    done(f);
}

/* sim.cores: work ready at r goes to a core free by r (the one that came free last) or waits for
 * the first to come free. */
static void cores_book_the_best_fitting_core(void **state)
{
    sim_cores *p = sim_cores_new(2);
    assert_non_null(p);
    assert_int_equal(sim_cores_book(p, 0, 50), 50);     /* core 0 until 50 */
    assert_int_equal(sim_cores_start(p, 60), 60);
    assert_int_equal(sim_cores_book(p, 60, 10), 70);    /* core 0 again: core 1 stays free */
    assert_int_equal(sim_cores_book(p, 10, 5), 15);     /* core 1, idle since 0 */
    assert_int_equal(sim_cores_book(p, 12, 5), 20);     /* both busy: core 1 frees first */
    assert_int_equal(sim_cores_start(p, 0), 20);
    sim_cores_free(p);
    assert_null(sim_cores_new(0));
}

/* Two servers on one shared core take turns: the second's iteration waits for the first's, and
 * everything it does is timed from when it runs. On two cores they run side by side. */
static void servers_sharing_a_core_take_turns(void **state)
{
    for (int ncores = 1; ncores <= 2; ncores++) {
        fixture *f = make(LB_PERSIST_NONE);
        sim_cores *p = sim_cores_new(ncores);
        sim_server_params sp;
        sim_server_params_init(&sp);
        sp.cores = p;
        sim_server_free(f->s);
        f->s = sim_server_new(&sp, on_reply, f);
        sim_server *other = sim_server_new(&sp, on_reply, f);
        assert_non_null(other);
        sim_conn *a = conn(f, 0), *b = sim_conn_open(other, &f->owners[1]);
        push(a, 1000, "SET k v");
        push(a, 1000, "PING");
        push(b, 1000, "PING");
        push(b, 1002, "TIME");     /* arrives while b waits for the core: the next iteration */
        for (int64_t t = 0; t < 5000;) {  /* in time order, as the driver runs them */
            int64_t ta = sim_server_next_us(f->s), tb = sim_server_next_us(other);
            t = ta <= tb ? ta : tb;
            if (t < 5000)
                sim_server_run(ta <= tb ? f->s : other, t);
        }
        expect(f, 0, 0, 1016, "+OK");
        expect(f, 0, 1, 1016, "+PONG");
        expect(f, 1, 0, ncores == 1 ? 1024 : 1008, "+PONG");
        const got *g = nth(f, 1, 1);
        assert_non_null(g);
        assert_int_equal(g->at_us, ncores == 1 ? 1032 : 1016);
        sim_server_free(other);
        done(f);
        sim_cores_free(p);
    }
}

/* ---- BLPOP ------------------------------------------------------------------------------ */

/* The notify wait: a try pipelined behind BLPOP runs when the BLPOP returns, in the releasing
 * iteration, before the releaser's own next try can arrive. */
static void pipelined_commands_wait_behind_a_blocked_blpop(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *holder = conn(f, 0), *waiter = conn(f, 1);
    push(holder, 0, "SET lock h NX PX 30000");
    run_to(f, 100);
    push(waiter, 200, "BLPOP sig 10");
    push(waiter, 200, "SET lock w NX PX 30000");
    run_to(f, 1000);
    assert_int_equal(count_for(f, 1), 0);  /* the SET waits behind the BLPOP */
    push(holder, 5000, "DEL lock");
    push(holder, 5000, "RPUSH sig 1");
    push(holder, 5050, "SET lock h NX PX 30000");  /* its next try, a round trip later */
    run_to(f, 10000);
    expect(f, 0, 1, 5024, ":1");
    expect(f, 0, 2, 5024, ":1");
    expect(f, 1, 0, 5024, "[$sig,$1]");
    expect(f, 1, 1, 5024, "+OK");       /* ran in beforeSleep of the releasing iteration */
    expect(f, 0, 3, 5058, "(nil)");
    done(f);
}

static void blocked_clients_are_served_first_come(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *w[3] = {conn(f, 1), conn(f, 2), conn(f, 3)};
    sim_conn *p = conn(f, 0);
    push(w[1], 10, "BLPOP q 0");
    push(w[0], 20, "BLPOP q 0");
    push(w[2], 30, "BLPOP q 0");
    run_to(f, 100);
    push(p, 1000, "RPUSH q a b");
    run_to(f, 2000);
    expect(f, 0, 0, 1008, ":2");
    expect(f, 2, 0, 1008, "[$q,$a]");
    expect(f, 1, 0, 1008, "[$q,$b]");
    assert_int_equal(count_for(f, 3), 0);
    push(p, 3000, "LPUSH q c");
    run_to(f, 4000);
    expect(f, 3, 0, 3008, "[$q,$c]");
    push(p, 5000, "EXISTS q");
    run_to(f, 6000);
    expect(f, 0, 2, 5008, ":0");
    done(f);
}

/* Redis checks blocked clients' deadlines in beforeSleep: busy, every iteration does it; idle,
 * the server sleeps until the next cron tick (hz 10: every 100 ms). */
static void a_blpop_times_out_at_the_tick_when_idle(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *w = conn(f, 1);
    push(w, 0, "BLPOP q 0.05");  /* deadline 50 ms: due once now_ms > 50 */
    run_to(f, 99999);
    assert_int_equal(count_for(f, 1), 0);
    assert_int_equal(sim_server_next_us(f->s), 100000);
    run_to(f, 200000);
    expect(f, 1, 0, 100000, "(nil)");
    done(f);
}

static void a_blpop_times_out_on_time_when_busy(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *w = conn(f, 1), *busy = conn(f, 0);
    push(w, 0, "BLPOP q 0.05");
    for (int64_t t = 1000; t <= 99000; t += 1000)
        push(busy, t, "PING");
    run_to(f, 200000);
    expect(f, 1, 0, 51008, "(nil)");  /* the iteration at 51 ms, after its PING */
    done(f);
}

static void a_closed_waiter_is_abandoned(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *gone = conn(f, 1), *stays = conn(f, 2), *p = conn(f, 0);
    push(gone, 0, "BLPOP q 0");
    push(stays, 10, "BLPOP q 0");
    run_to(f, 100);
    sim_conn_close(gone, 200);
    push(p, 300, "RPUSH q x");
    run_to(f, 1000);
    expect(f, 2, 0, 308, "[$q,$x]");
    assert_int_equal(count_for(f, 1), 0);
    done(f);
}

static void blpop_inside_multi_does_not_block(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0);
    push(a, 0, "MULTI");
    push(a, 0, "BLPOP q 0");
    push(a, 0, "EXEC");
    push(a, 0, "EVAL return(redis.call('BLPOP','q','0')) 0");
    run_to(f, 1000);
    expect(f, 0, 2, -1, "[(nil)]");
    const got *g = nth(f, 0, 3);
    assert_non_null(g);
    assert_non_null(strstr(g->text, "not allowed from script"));
    done(f);
}

/* ---- WAIT --------------------------------------------------------------------------------- */

/* No replica is modelled, as on a primary with none (measured on redis-server 7.0.15): WAIT
 * for at least one blocks the client until its timeout, noticed at the tick when idle as a
 * BLPOP's, and answers 0; what is pipelined behind it waits. WAIT for none answers 0 at once,
 * as inside MULTI; a script may not call it. */
static void wait_blocks_until_its_timeout_with_no_replica(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *w = conn(f, 1), *a = conn(f, 0);
    push(w, 0, "SET k v");
    push(w, 0, "WAIT 1 50");
    push(w, 0, "GET k");
    run_to(f, 99999);
    assert_int_equal(count_for(f, 1), 1);  /* the SET; the GET waits behind the WAIT */
    run_to(f, 200000);
    expect(f, 1, 1, 100008, ":0");  /* at the tick; the iteration's replies leave at its end */
    expect(f, 1, 2, 100008, "$v");
    push(a, 200000, "WAIT 0 0");
    push(a, 200000, "WAIT -1 10");
    push(a, 200000, "MULTI");
    push(a, 200000, "WAIT 2 0");
    push(a, 200000, "EXEC");
    push(a, 200000, "WAIT 1 -1");
    push(a, 200000, "WAIT x 1");
    push(a, 200000, "WAIT 1 1.5");
    push(a, 200000, "EVAL return(redis.call('WAIT','1','10')) 0");
    run_to(f, 201000);
    expect(f, 0, 0, -1, ":0");
    expect(f, 0, 1, -1, ":0");
    expect(f, 0, 4, -1, "[:0]");
    expect(f, 0, 5, -1, "-ERR timeout is negative");
    expect(f, 0, 6, -1, "-ERR value is not an integer or out of range");
    expect(f, 0, 7, -1, "-ERR timeout is not an integer or out of range");
    const got *g = nth(f, 0, 8);
    assert_non_null(g);
    assert_non_null(strstr(g->text, "not allowed from script"));
    done(f);
}


/* ---- replication -------------------------------------------------------------------------- */

/* A write reaches each replica one link delay after its iteration ends, its ack one more later,
 * and WAIT answers when enough acks are in -- or at its timeout with how many were. */
static void replicas_apply_late_and_wait_counts_their_acks(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    assert_int_equal(sim_server_add_replicas(f->s, 2, 1000), 0);
    assert_int_equal(sim_server_nmembers(f->s), 3);
    sim_server *r1 = sim_server_member(f->s, 1), *r2 = sim_server_member(f->s, 2);
    assert_false(sim_server_is_primary(r1));
    sim_conn *a = conn(f, 0);
    push(a, 0, "SET k v PX 60000");
    push(a, 0, "WAIT 2 100");
    run_to(f, 1015);  /* the iteration ends at 16: the SET leaves then, 1 ms on the wire */
    expect(f, 0, 0, 16, "+OK");
    assert_null(sim_server_peek(r1, "k", 1015));
    run_to(f, 1016);
    assert_string_equal(sim_server_peek(r1, "k", 1016), "v");
    assert_string_equal(sim_server_peek(r2, "k", 1016), "v");
    assert_int_equal(sim_server_offset(r1), 1);
    assert_int_equal(count_for(f, 0), 1);  /* the acks are still on their way */
    run_to(f, 3000);
    expect(f, 0, 1, 2016, ":2");
    /* the TTL is absolute: the replica's copy expires when the primary's does */
    assert_null(sim_server_peek(r1, "k", 60001000));
    /* a delay on the links: WAIT times out at its tick, with none acknowledged */
    sim_server_repl_delay(f->s, 3000, 500000, true);
    push(a, 3000, "SET k2 w");
    push(a, 3000, "WAIT 1 10");
    run_to(f, 400000);
    expect(f, 0, 3, -1, ":0");
    assert_null(sim_server_peek(r1, "k2", 400000));
    /* already acknowledged: answered at once */
    run_to(f, 2000000);
    assert_string_equal(sim_server_peek(r2, "k2", 2000000), "w");
    push(a, 2000000, "WAIT 2 0");
    run_to(f, 2001000);
    expect(f, 0, 4, 2000008, ":2");
    /* a partition holds the stream until it heals; two overlapping ones until both have */
    sim_server_repl_delay(f->s, 2001000, 500000, false);
    sim_server_repl_hold(f->s, 2001000, true);
    sim_server_repl_hold(f->s, 2001000, true);
    push(a, 2001000, "SET k3 x");
    run_to(f, 3000000);
    sim_server_repl_hold(f->s, 3000000, false);
    run_to(f, 3001000);
    assert_null(sim_server_peek(r1, "k3", 3001000));
    sim_server_repl_hold(f->s, 3001000, false);
    run_to(f, 3002000);
    assert_string_equal(sim_server_peek(r1, "k3", 3002000), "x");
    done(f);
}

/* failover promotes the replica with the highest offset (the lowest on a tie); what was still
 * on the wire is lost, and a script's writes are replicated as their effects. */
static void failover_promotes_the_most_up_to_date_replica(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    assert_int_equal(sim_server_add_replicas(f->s, 2, 1000), 0);
    sim_server *old = f->s, *r1 = sim_server_member(old, 1), *r2 = sim_server_member(old, 2);
    sim_conn *a = conn(f, 0);
    push(a, 0, "EVAL redis.call('SET',KEYS[1],'1') 1 a");
    run_to(f, 5000);
    assert_string_equal(sim_server_peek(r2, "a", 5000), "1");
    sim_server_kill(r1, 5000, false);  /* r1 misses b */
    push(a, 5000, "SET b 2");
    run_to(f, 10000);
    assert_int_equal(sim_server_offset(r2), 2);
    sim_server_restart(r1, 10000);     /* resyncs: in step again */
    assert_int_equal(sim_server_offset(r1), 2);
    sim_server_repl_delay(old, 10000, 50000, true);
    push(a, 10000, "SET c 3");         /* on the wire at the failover */
    run_to(f, 20000);
    sim_server *np = sim_server_failover(old, 20000, false);
    assert_ptr_equal(np, r1);          /* r1 and r2 at offset 2: the lowest index */
    assert_true(sim_server_is_primary(np));
    assert_true(sim_server_is_down(old));
    assert_true(sim_conn_is_dead(a));
    assert_string_equal(sim_server_peek(np, "b", 20000), "2");
    assert_null(sim_server_peek(np, "c", 20000));
    f->s = np;
    run_to(f, 200000);
    assert_null(sim_server_peek(r2, "c", 200000));  /* from the old primary: dropped */
    sim_server_kill(r2, 200000, false);             /* the new primary's replica gone */
    sim_conn_close(a, 200000);
    a = conn(f, 0);
    push(a, 200000, "SET d 4");
    push(a, 200000, "WAIT 1 10");
    run_to(f, 400000);
    expect(f, 0, 4, -1, ":0");
    /* the killed old primary restarts empty, as a replica of the new one */
    sim_server_restart(r2, 400000);
    sim_server_restart(old, 400000);
    assert_false(sim_server_is_primary(old));
    assert_string_equal(sim_server_peek(old, "d", 400000), "4");
    /* a second failover: old and r2 are in step, and old is member 0 */
    push(a, 400000, "SET e 5");
    run_to(f, 500000);
    sim_server *np2 = sim_server_failover(np, 500000, true);  /* demote r1 */
    assert_ptr_equal(np2, old);
    assert_false(sim_server_is_primary(np));
    assert_false(sim_server_is_down(np));
    assert_string_equal(sim_server_peek(np, "e", 500000), "5");
    f->s = np2;
    sim_conn_close(a, 500000);
    done(f);
}

/* ---- pause -------------------------------------------------------------------------------- */

static void nothing_runs_while_paused(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0), *w = conn(f, 1);
    push(w, 0, "BLPOP q 0.01");
    push(a, 1000, "SET k v");
    sim_server_pause(f->s, 1004, 500000);  /* inside the SET's iteration */
    push(a, 2000, "GET k");
    run_to(f, 1000000);
    expect(f, 0, 0, 500004, "+OK");
    expect(f, 0, 1, 500012, "$v");
    expect(f, 1, 0, 500012, "(nil)");  /* overdue: answered at the first iteration after */
    done(f);
}

/* ---- kill and persistence --------------------------------------------------------------- */

static void get_after_restart(fixture *f, int64_t t, const char *key, const char *want)
{
    sim_server_restart(f->s, t);
    sim_conn *c = conn(f, 5);
    char line[64];
    snprintf(line, sizeof line, "GET %s", key);
    int before = count_for(f, 5);
    push(c, t + 1, line);
    run_to(f, t + 1000);
    expect(f, 5, before, -1, want);
    sim_conn_close(c, t + 1000);
}

static void a_kill_without_persistence_loses_everything(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0);
    push(a, 0, "SET k v");
    run_to(f, 1000);
    sim_server_kill(f->s, 2000, false);
    assert_true(sim_conn_is_dead(a));
    assert_null(sim_conn_open(f->s, &f->owners[1]));
    sim_conn_close(a, 2000);
    get_after_restart(f, 3000, "k", "(nil)");
    done(f);
}

static void aof_always_keeps_what_it_acknowledged(void **state)
{
    fixture *f = make(LB_PERSIST_AOF_ALWAYS);
    sim_conn *a = conn(f, 0);
    push(a, 0, "SET k v1");
    run_to(f, 1000);
    push(a, 2000, "SET k v2");
    sim_server_kill(f->s, 2004, true);  /* inside the second SET's iteration */
    assert_int_equal(count_for(f, 0), 1);  /* its reply never left */
    sim_conn_close(a, 3000);
    get_after_restart(f, 3000, "k", "$v1");
    done(f);
}

static void aof_everysec_keeps_written_on_kill_fsynced_on_crash(void **state)
{
    for (int host = 0; host <= 1; host++) {
        fixture *f = make(LB_PERSIST_AOF_EVERYSEC);
        sim_conn *a = conn(f, 0);
        push(a, 1200000, "SET k v1");   /* first write in second 1: fsynced at once */
        push(a, 1500000, "SET k v2");   /* second 1 again: waits for the next second */
        run_to(f, 1900000);
        assert_int_equal(count_for(f, 0), 2);
        sim_server_kill(f->s, 1900000, host);
        sim_conn_close(a, 1900000);
        get_after_restart(f, 2500000, "k", host ? "$v1" : "$v2");
        done(f);
    }
    /* an idle second boundary fsyncs too (at its cron tick) */
    fixture *f = make(LB_PERSIST_AOF_EVERYSEC);
    sim_conn *a = conn(f, 0);
    push(a, 1200000, "SET k v1");
    push(a, 1500000, "SET k v2");
    run_to(f, 2300000);
    sim_server_kill(f->s, 2300000, true);
    sim_conn_close(a, 2300000);
    get_after_restart(f, 2500000, "k", "$v2");
    done(f);
}

/* ---- a client's close (a FIN behind what it sent) ------------------------------------------ */

/* What the client sent before closing runs when the server gets to it -- here after a pause
 * -- with no reply to the owner, whose next connection sees only its own replies. Commands
 * pushed by reference are copied at the shutdown: the lock machine's argv change once it is
 * called again, which the driver does right after closing. */
static void what_a_client_sent_before_closing_still_runs(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0), *b = conn(f, 1);
    char val[] = "v1";
    const char *argv[] = {"SET", "k", val, "NX", "PX", "10000"};
    const size_t len[] = {3, 1, 2, 2, 2, 5};
    sim_server_pause(f->s, 0, 5000);
    sim_conn_push_ref(a, 1000, 6, argv, len);
    sim_conn_shutdown(a);
    memcpy(val, "xx", 2);
    push(a, 1500, "INCR n");  /* still on the wire at the close */
    sim_conn_fin(a, 2000);
    run_to(f, 6000);
    assert_string_equal(sim_server_peek(f->s, "k", 6000), "v1");
    assert_string_equal(sim_server_peek(f->s, "n", 6000), "1");
    /* closed while the iteration that runs its command is in progress */
    push(b, 7000, "SET m 1");
    run_to(f, 7000);
    sim_conn_shutdown(b);
    sim_conn_fin(b, 7004);
    run_to(f, 8000);
    assert_string_equal(sim_server_peek(f->s, "m", 8000), "1");
    assert_int_equal(count_for(f, 0) + count_for(f, 1), 0);
    sim_conn *again = conn(f, 0);
    push(again, 9000, "GET k");
    run_to(f, 10000);
    expect(f, 0, 0, 9008, "$v1");
    assert_int_equal(count_for(f, 0), 1);
    done(f);
}

/* The FIN frees a client blocked in BLPOP at once: the SET pipelined behind it never runs, and
 * the waiter leaves the list's queue, so a later LPUSH stays in the list. */
static void a_fin_frees_a_blocked_client_without_running_the_rest(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *w = conn(f, 1), *p = conn(f, 0);
    push(w, 0, "BLPOP q 0");
    push(w, 0, "SET after 1");
    run_to(f, 100);
    sim_conn_shutdown(w);
    sim_conn_fin(w, 200);
    push(p, 300, "LPUSH q x");
    push(p, 300, "GET after");
    push(p, 300, "LLEN q");
    run_to(f, 1000);
    expect(f, 0, 0, 324, ":1");
    expect(f, 0, 1, 324, "(nil)");
    expect(f, 0, 2, 324, ":1");
    assert_int_equal(count_for(f, 1), 0);
    done(f);
}

/* A kill cuts closing connections too: one whose FIN had come is freed by the server, one
 * still waiting for its FIN at the FIN; sim_server_free takes both kinds. (ASan checks the
 * frees.) */
static void a_kill_or_free_takes_closing_connections(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0), *b = conn(f, 1);
    sim_server_pause(f->s, 0, 5000);
    push(a, 100, "SET a 1");
    push(b, 100, "SET b 1");
    sim_conn_shutdown(a);
    sim_conn_shutdown(b);
    sim_conn_fin(b, 200);  /* its SET waits for the pause to end */
    sim_server_kill(f->s, 300, false);
    push(a, 400, "SET a 2");
    sim_conn_fin(a, 500);
    get_after_restart(f, 1000, "a", "(nil)");
    sim_conn *d = conn(f, 3), *e = conn(f, 4);
    sim_server_pause(f->s, 3000, 9000);
    push(d, 3100, "SET d 1");
    push(e, 3100, "SET e 1");
    sim_conn_shutdown(d);
    sim_conn_shutdown(e);
    sim_conn_fin(e, 3200);
    done(f);
}

static void expiry_follows_virtual_time(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0);
    push(a, 0, "SET k v PX 100");
    push(a, 50000, "PTTL k");
    push(a, 100500, "GET k");   /* now_ms 100: not yet (expires when now > 100) */
    push(a, 101000, "GET k");
    run_to(f, 200000);
    expect(f, 0, 1, -1, ":50");
    expect(f, 0, 2, -1, "$v");
    expect(f, 0, 3, -1, "(nil)");
    done(f);
}

static void exec_fails_after_a_watched_key_changes_or_expires(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0), *b = conn(f, 1);
    push(a, 0, "SET k 1 PX 100");
    push(a, 10, "WATCH k");
    push(b, 20, "SET k 2 KEEPTTL");
    push(a, 30, "MULTI");
    push(a, 30, "SET k 3");
    push(a, 30, "EXEC");
    push(a, 1000, "WATCH k");
    push(a, 2000, "MULTI");
    push(a, 2000, "SET k 4");
    push(a, 200000, "EXEC");  /* k expired meanwhile */
    push(a, 300000, "WATCH j");
    push(a, 300000, "MULTI");
    push(a, 300000, "SET j 5");
    push(a, 300000, "EXEC");
    run_to(f, 400000);
    expect(f, 0, 4, -1, "(nil)");
    expect(f, 0, 8, -1, "(nil)");
    expect(f, 0, 12, -1, "[+OK]");
    done(f);
}

static void scripts_are_cached_by_sha1(void **state)
{
    fixture *f = make(LB_PERSIST_NONE);
    sim_conn *a = conn(f, 0);
    /* sha1("return 1") */
    push(a, 0, "EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0");
    push(a, 0, "EVAL return 1");  /* numkeys 1, no key */
    push(a, 0, "SCRIPT LOAD return(1)");
    push(a, 0, "SCRIPT EXISTS e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    run_to(f, 1000);
    expect(f, 0, 0, -1, "-NOSCRIPT No matching script. Please use EVAL.");
    expect(f, 0, 1, -1, "-ERR Number of keys can't be greater than number of args");
    expect(f, 0, 2, -1, "$930269f31393d0be681588b6ab08dccee7d6bb67");
    expect(f, 0, 3, -1, "[:0]");
    push(a, 2000, "EVAL return(1) 0");
    push(a, 2000, "EVALSHA 930269F31393D0BE681588B6AB08DCCEE7D6BB67 0");
    push(a, 2000, "EVAL return 0");
    run_to(f, 3000);
    expect(f, 0, 4, -1, ":1");
    expect(f, 0, 5, -1, ":1");
    expect(f, 0, 6, -1, "(nil)");  /* body "return", no keys */
    done(f);
}

/* ---- the command set ------------------------------------------------------------------------ */

static bool ignored_word(const char *w)
{
    /* words in the sources' uppercase strings that are options, replies or names, not
     * commands (checked by hand when this list grows) */
    static const char *const words[] = {"NX", "PX", "OK", "PONG", "NOSCRIPT", "NOAUTH",
                                        "WRONGPASS", "NOPERM", "QUEUED", "ERR",
                                        "READONLY", "MASTERDOWN",
                                        /* core/sentinel.c: sent to sentinels, and ROLE to the
                                           primary they name, only for a sentinel:// URL,
                                           which no simulated client has */
                                        "SENTINEL", "ROLE", NULL};
    for (int i = 0; words[i]; i++)
        if (strcmp(w, words[i]) == 0)
            return true;
    return false;
}

static void check_word(const char *file, const char *w, int *checked)
{
    if (ignored_word(w))
        return;
    (*checked)++;
    if (!sim_server_knows(w))
        fail_msg("%s sends %s, which the modelled Redis (harness/sim) does not have", file, w);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got_n = fread(b, 1, (size_t)n, fp);
    b[got_n] = '\0';
    fclose(fp);
    return b;
}

/* C: every string literal that starts with an uppercase word of 2+ letters ("SET", "GET %s",
 * "EVALSHA"): its first word. */
static void scan_c(const char *path, int *checked)
{
    char *b = slurp(path);
    assert_non_null(b);
    for (char *p = b; (p = strchr(p, '"')) != NULL;) {
        char *q = p + 1;
        char w[32];
        size_t n = 0;
        while (isupper((unsigned char)*q) && n < sizeof w - 1)
            w[n++] = *q++;
        w[n] = '\0';
        if (n >= 2 && (*q == '"' || (*q == ' ' && q[1] != '(')))
            check_word(path, w, checked);
        char *end = strchr(p + 1, '"');  /* skip the literal */
        while (end && end[-1] == '\\')
            end = strchr(end + 1, '"');
        if (!end)
            break;
        p = end + 1;
    }
    free(b);
}

/* Lua: redis.call('NAME' / redis.pcall("NAME". */
static void scan_lua(const char *path, int *checked)
{
    char *b = slurp(path);
    assert_non_null(b);
    for (char *p = b; (p = strstr(p, "redis.")) != NULL; p++) {
        char *q = p + 6;
        if (strncmp(q, "call(", 5) == 0)
            q += 5;
        else if (strncmp(q, "pcall(", 6) == 0)
            q += 6;
        else
            continue;
        if (*q != '\'' && *q != '"')
            continue;
        char w[32];
        size_t n = 0;
        for (q++; isalpha((unsigned char)*q) && n < sizeof w - 1;)
            w[n++] = *q++;
        w[n] = '\0';
        check_word(path, w, checked);
    }
    free(b);
}

static void it_knows_every_command_the_core_and_harness_send(void **state)
{
    int checked = 0;
    DIR *d = opendir("core");
    assert_non_null(d);  /* run from the top of the repository, as make test does */
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n > 2 && strcmp(e->d_name + n - 2, ".c") == 0) {
            char path[512];
            snprintf(path, sizeof path, "core/%s", e->d_name);
            scan_c(path, &checked);
        }
    }
    closedir(d);
    d = opendir("core/scripts");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".lua") == 0) {
            char path[512];
            snprintf(path, sizeof path, "core/scripts/%s", e->d_name);
            scan_lua(path, &checked);
        }
    }
    closedir(d);
    static const char *const harness[] = {"harness/runner.c", "harness/runloop.c",
                                          "harness/health.c", "harness/workload.c", NULL};
    for (int i = 0; harness[i]; i++)
        scan_c(harness[i], &checked);
    assert_true(checked >= 30);  /* the scan found the commands at all */
    assert_false(sim_server_knows("NOSUCHCOMMAND"));
    assert_true(sim_server_knows("evalsha"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_command_takes_its_service_time),
        cmocka_unit_test(commands_queue_for_the_single_thread),
        cmocka_unit_test(cores_book_the_best_fitting_core),
        cmocka_unit_test(servers_sharing_a_core_take_turns),
        cmocka_unit_test(pipelined_commands_wait_behind_a_blocked_blpop),
        cmocka_unit_test(blocked_clients_are_served_first_come),
        cmocka_unit_test(a_blpop_times_out_at_the_tick_when_idle),
        cmocka_unit_test(a_blpop_times_out_on_time_when_busy),
        cmocka_unit_test(a_closed_waiter_is_abandoned),
        cmocka_unit_test(blpop_inside_multi_does_not_block),
        cmocka_unit_test(wait_blocks_until_its_timeout_with_no_replica),
        cmocka_unit_test(nothing_runs_while_paused),
        cmocka_unit_test(replicas_apply_late_and_wait_counts_their_acks),
        cmocka_unit_test(failover_promotes_the_most_up_to_date_replica),
        cmocka_unit_test(a_kill_without_persistence_loses_everything),
        cmocka_unit_test(aof_always_keeps_what_it_acknowledged),
        cmocka_unit_test(aof_everysec_keeps_written_on_kill_fsynced_on_crash),
        cmocka_unit_test(what_a_client_sent_before_closing_still_runs),
        cmocka_unit_test(a_fin_frees_a_blocked_client_without_running_the_rest),
        cmocka_unit_test(a_kill_or_free_takes_closing_connections),
        cmocka_unit_test(expiry_follows_virtual_time),
        cmocka_unit_test(exec_fails_after_a_watched_key_changes_or_expires),
        cmocka_unit_test(scripts_are_cached_by_sha1),
        cmocka_unit_test(it_knows_every_command_the_core_and_harness_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
