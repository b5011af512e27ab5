/* driver.c -- the simulator's driver (sim.h): the workload and lock machines of every client,
 * the modelled servers, the network and the fault schedule, on one queue of events in virtual
 * time.
 *
 * It does what the loop driver (runloop.c) does with sockets and timers, with events instead:
 * a client's step is carried out, and what completes it later -- a timer, a batch's last reply
 * or its timeout -- is an event for that client. A batch's commands leave when the client's
 * core has done their CPU work, cross their link, and wait in the server's query buffer; the
 * server's replies cross back. Every event carries the time it happens and the order it was
 * made, so ties resolve the same way every run. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlock.h"
#include "dlock_machine.h"
#include "oracle.h"
#include "runner.h"
#include "runner_priv.h"  /* rn_fault_describe: the fault records as the real drivers make them */
#include "sim/redis.h"
#include "sim/sim.h"
#include "workload.h"

#define MAX_BATCH 32               /* the lock core's largest batch is 28 */
#define MAX_ARGC 16                /* and its longest command has 15 arguments */
#define MAX_DELAYS 16              /* delay events in effect on one client at once */
#define KEY_MAX 600                /* a key's name (the prefix, the scenario's key, its number) */
#define NONE INT64_MAX

typedef enum {
    EV_TIMER = 1,    /* a client's timer, released from a pause: aux = its generation */
    EV_TO_SERVER,    /* a command reaches a server: p = its argv, aux = to_server() */
    EV_TO_CLIENT,    /* a reply (or a lost connection, p NULL) reaches a client: p = the reply,
                        aux = to_client() */
    EV_SERVER,       /* a server has work: aux = its index */
    EV_FAULT,        /* aux = action index */
    EV_DEADLINE,     /* a group's deadline: aux = group */
    EV_FIN           /* a client's close reaches a server: p = the sim_conn it closed, aux =
                        to_client() of the connection */
} ev_kind;

typedef struct ev {
    int64_t t;
    uint64_t seq;
    void *p;
    uint64_t aux;
    uint32_t client;
    uint16_t kind;
    uint16_t lane;               /* the client's lane: 0 its own, 1 its renewer */
} ev;

/* What a command or a reply on the wire carries besides its payload, packed into an event's
 * aux: the connection (the server's index) and its epoch, and for a command its argc and
 * whether the event owns its argv. A command from a lock machine is not copied, on the wire
 * or in the server's query buffer (sim_conn_push_ref): its argv stays valid until the machine
 * is called again, and the machine is only called again once each command of its batch has
 * been answered (it has run) or its connection was closed -- a new epoch. A connection the
 * client closes (conn_close) still delivers what it sent: its commands still on the wire are
 * copied then (a closing record) and the server copies those in its query buffer. Of one that
 * was reset or cut (conn_abort), what is still on the wire is dropped unread. */
#define WIRE_OWNED (UINT64_C(1) << 56)

static uint64_t to_server(int conn, uint32_t epoch, int argc, bool owned)
{
    return epoch | (uint64_t)conn << 32 | (uint64_t)argc << 40 | (owned ? WIRE_OWNED : 0);
}

static uint64_t to_client(int conn, uint32_t epoch)
{
    return epoch | (uint64_t)conn << 32;
}

static int wire_conn(const ev *e)
{
    return (int)(e->aux >> 32 & 0xFF);
}

static uint32_t wire_epoch(const ev *e)
{
    return (uint32_t)e->aux;
}

static int wire_argc(const ev *e)
{
    return (int)(e->aux >> 40 & 0xFFFF);
}

typedef struct sclient sclient;

/* A client's connection to one server (index nservers: the protected store). */
typedef struct sconn {
    sclient *cl;
    sim_conn *c;                 /* NULL: closed */
    int64_t last_out, last_in;   /* in-order delivery on the link, each way */
    uint32_t epoch;              /* bumped when closed: replies still on the way are dropped */
    uint16_t server;
    uint16_t lane;
} sconn;

typedef enum {
    OP_NONE, OP_ACQUIRE, OP_RELEASE, OP_EXTEND, OP_READ, OP_WRITE, OP_INCR,
    OP_INSIDE,                   /* inside_check: INCR or DECR of <counter>:inside */
    OP_FENCED,                   /* a fenced write: a machine on the protected store */
    OP_FENCED_READ               /* a fenced read: likewise */
} op_kind;

/* A batch in flight, sized to its commands and the run's connections: a client in a run of a
 * million keeps one at a time. */
typedef struct bconn {
    int got;                     /* replies in on this connection */
    uint32_t epoch;              /* the connection's when the batch was sent */
} bconn;

typedef struct bcmd {
    const dlock_reply *reply;
    int server;
} bcmd;

typedef struct batch {
    int n, left;
    union {
        const dlock_command *sent;  /* a lock machine's: its commands, valid while it is in
                                       flight (for conn_close's copies); else NULL */
        struct batch *next_free;
    } u;
    bcmd cmd[];                  /* then nservers + 1 bconn: batch_conn */
} batch;

/* The batch's state on server k's connection. */
static bconn *batch_conn(const batch *b, int k)
{
    return (bconn *)(void *)(b->cmd + b->n) + k;
}

typedef enum { C_BUSY = 1, C_WAIT, C_DOWN, C_DONE } cstate;

/* An operation in flight, its timer and its connections. A client has two lanes, as a real
 * client has its own connections and its renewer's: lane 0 runs the workload's steps, lane 1
 * the lease renewals (lock.renew), each with its own batch and timer. */
typedef struct lane {
    dlock_machine *m;            /* the lock operation in progress */
    batch *b;                    /* the batch in flight */
    sconn *conns;                /* nconns: the lock servers, then the store if it is used */
    uint64_t timer_gen;          /* bumped at each set and stop: a timer released from a pause
                                    fires only if none came since */
    int64_t timer_at;            /* the armed timer, when heap_idx >= 0 */
    uint64_t timer_seq;          /* its order among events of the same time */
    int32_t heap_idx;            /* its place in the timer heap; -1: no timer armed */
    op_kind op;
    uint32_t op_commands;
    uint16_t idx;                /* 0 or 1: which of its client's lanes */
    uint16_t nconns;
} lane;

/* What faults leave on a client: made at the first fault event that names it. */
typedef struct sfaults {
    int paused, partitioned;
    ev *held;                    /* events held while paused or partitioned */
    uint32_t nheld, capheld;
    int crash_when_holding, pause_when_holding;
    int64_t pause_when_holding_us;
    int frozen_event;            /* a holding pause in effect: its event (index + 1) */
    int ndelays;
    int64_t frozen_at;
    int64_t restart_after_us;    /* -1: a crash is for good */
    int64_t skew_ms;
    const lb_event *delays[MAX_DELAYS];  /* delay events in effect, oldest first */
} sfaults;

struct sclient {
    int id;
    int keyidx;                  /* its key (key_name) */
    const lb_client_group *g;
    lb_wl wl;
    lb_client_result *out;
    uint64_t rng, netrng, tokrng;  /* hold and think; links; tokens: apart, as in real runs */
    lane ln[1];                  /* its own lane (c->ln) */
    struct renewer *rn;          /* lock.renew: the renewer's lane, NULL without */
    dlock *l;                    /* the lock held */
    bool renew;                  /* lock.renew: lane 1 extends the lease every ttl / 3 */
    bool renew_on;               /* renewals are running for the lock held */
    bool lease_lost;             /* a renewal found the lock lost */
    bool thinking;               /* lane 0's timer ends a think (a stop ends it at once) */
    cstate state;
    bool interrupt;              /* the group's deadline or a stop: the acquire stops */
    bool stopping;
    sfaults *f;                  /* NULL: no fault has touched it (see no_faults) */
};

static const sfaults no_faults = {.restart_after_us = -1};

/* The client's fault state, to read. */
static const sfaults *faults_of(const sclient *c)
{
    return c->f ? c->f : &no_faults;
}

/* The client's fault state, to change: made when first needed. */
static sfaults *faults(sclient *c)
{
    if (!c->f) {
        if (!(c->f = malloc(sizeof *c->f)))
            abort();  /* as for the event queue */
        *c->f = no_faults;
    }
    return c->f;
}

/* The lane of lock.renew's renewals, made for the clients of groups that renew. */
typedef struct renewer {
    lane L;                      /* idx 1 */
    sclient *c;
    int64_t lease_until;         /* renewals give up when they have not reached it by then */
    int64_t renew_started;       /* the extend in flight began */
} renewer;

/* The client a lane belongs to. */
static sclient *lane_client(lane *L)
{
    if (L->idx == 0)
        return (sclient *)(void *)((char *)L - offsetof(sclient, ln));
    return ((renewer *)(void *)((char *)L - offsetof(renewer, L)))->c;
}

/* Lane j (0: its own, 1: its renewer's) of c; NULL when it has none. */
static lane *lane_at(sclient *c, int j)
{
    return j == 0 ? c->ln : c->rn ? &c->rn->L : NULL;
}

typedef rn_action action;

typedef struct sim {
    const lb_scenario *sc;
    const lb_run_target *t;
    lb_run_result *out;
    int nservers;                /* lock servers; servers[nservers] is the protected store */
    sim_server **srv;            /* a group's primary, which runs its replicas' links too */
    sim_server **killed;         /* per event: the server a kill-server took down, to restart */
    int64_t *srv_wake;
    ev *heap;
    size_t nheap, capheap;
    uint64_t seq, events;
    int64_t now;
    size_t n;
    sclient *cl;
    size_t nkeys;
    uint32_t *key_client;        /* per key: a client of it, whose group and number name it */
    lb_oracle *oracle;
    int64_t *thread_free;        /* when each of the clients' client_cores threads is free */
    int nthreads;
    sim_cores *cores;            /* sim.cores: the machine's, shared with the servers; or NULL */
    action *acts;
    size_t nacts;
    int64_t *fired_start, *fired_end;
    int running;
    batch *free_batches[MAX_BATCH + 1];  /* reused, by their number of commands */
    lane **timers;               /* the armed timers, a heap by (timer_at, timer_seq) */
    struct closing **closings;   /* connections closed with commands on their way (a table) */
    size_t closings_cap, nclosings;
    sconn *conn_block;           /* every lane's connections, in one allocation */
    size_t ntimers, captimers;
    int64_t epoch_ms;            /* wall-clock ms at virtual time 0 */
    bool stopped;
    struct timespec wall0;
    int64_t next_progress_us;
    void *probe;                 /* read_counters's tally */
    uint64_t *key_slots;         /* during set-up, open addressing: key index + 1, 0 = empty */
    size_t key_mask;
    char err[256];
} sim;

static void carry(sim *S, sclient *c, lb_wl_step s);
static void feed(sim *S, sclient *c, lb_wl_input in);
static void machine_go(sim *S, sclient *c, lane *L, const dlock_reply *const *replies);
static void renew_done(sim *S, sclient *c, int rc);

/* ---- randomness: xorshift64*, from the scenario's seed ------------------------------------- */

static uint64_t next_u64(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static double uniform01(uint64_t *s)
{
    return (double)(next_u64(s) >> 11) * 0x1.0p-53;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a * 0x9E3779B97F4A7C15ULL ^ (b + 1) * 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 31;
    return z ? z : 1;
}

/* ---- the event queue ------------------------------------------------------------------------ */

static bool before(const ev *a, const ev *b)
{
    return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

static void push(sim *S, ev e)
{
    if (S->nheap == S->capheap) {
        size_t cap = S->capheap ? 2 * S->capheap : 1024;
        ev *h = realloc(S->heap, cap * sizeof *h);
        if (!h)
            abort();  /* the queue is the simulation: nothing sensible goes on without it */
        S->heap = h;
        S->capheap = cap;
    }
    e.seq = S->seq++;
    if (e.t < S->now)
        e.t = S->now;
    size_t i = S->nheap++;
    S->heap[i] = e;
    while (i > 0 && before(&S->heap[i], &S->heap[(i - 1) / 2])) {
        ev t = S->heap[i];
        S->heap[i] = S->heap[(i - 1) / 2];
        S->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static ev pop(sim *S)
{
    ev top = S->heap[0];
    S->heap[0] = S->heap[--S->nheap];
    for (size_t i = 0;;) {
        size_t k = 2 * i + 1, best = i;
        if (k < S->nheap && before(&S->heap[k], &S->heap[best]))
            best = k;
        if (k + 1 < S->nheap && before(&S->heap[k + 1], &S->heap[best]))
            best = k + 1;
        if (best == i)
            break;
        ev t = S->heap[i];
        S->heap[i] = S->heap[best];
        S->heap[best] = t;
        i = best;
    }
    return top;
}

/* ---- the clients' timers ---------------------------------------------------------------------
 * A heap of their own, by lane, so that a timer set again or stopped (a batch's timeout, once
 * its replies are in) leaves nothing behind. A timer keeps the order it was given when set, so
 * events of the same time come out as if every timer were in the one queue. */

static bool timer_before(const lane *a, const lane *b)
{
    return a->timer_at != b->timer_at ? a->timer_at < b->timer_at : a->timer_seq < b->timer_seq;
}

static void timer_place(sim *S, size_t i, lane *L)
{
    S->timers[i] = L;
    L->heap_idx = (int32_t)i;
}

static void timer_sift(sim *S, size_t i)
{
    lane *L = S->timers[i];
    while (i > 0 && timer_before(L, S->timers[(i - 1) / 2])) {
        timer_place(S, i, S->timers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t k = 2 * i + 1, best = k;
        if (k >= S->ntimers)
            break;
        if (k + 1 < S->ntimers && timer_before(S->timers[k + 1], S->timers[k]))
            best = k + 1;
        if (!timer_before(S->timers[best], L))
            break;
        timer_place(S, i, S->timers[best]);
        i = best;
    }
    timer_place(S, i, L);
}

static void timer_unarm(sim *S, lane *L)
{
    if (L->heap_idx < 0)
        return;
    size_t i = (size_t)L->heap_idx;
    lane *last = S->timers[--S->ntimers];
    L->heap_idx = -1;
    if (last != L) {
        timer_place(S, i, last);
        timer_sift(S, i);
    }
}

static void timer_arm(sim *S, lane *L)
{
    if (L->heap_idx >= 0) {
        timer_sift(S, (size_t)L->heap_idx);
        return;
    }
    if (S->ntimers == S->captimers) {
        size_t cap = S->captimers ? 2 * S->captimers : 1024;
        lane **h = realloc(S->timers, cap * sizeof *h);
        if (!h)
            abort();  /* as for the event queue */
        S->timers = h;
        S->captimers = cap;
    }
    timer_place(S, S->ntimers++, L);
    timer_sift(S, (size_t)L->heap_idx);
}

/* The earliest timer, as the event it stands for, when it comes before every queued event. */
static bool timer_due(sim *S, ev *out)
{
    if (S->ntimers == 0)
        return false;
    lane *L = S->timers[0];
    if (S->nheap > 0) {
        const ev *e = &S->heap[0];
        if (e->t != L->timer_at ? e->t < L->timer_at : e->seq < L->timer_seq)
            return false;
    }
    timer_unarm(S, L);
    *out = (ev){.t = L->timer_at, .seq = L->timer_seq, .kind = EV_TIMER, .aux = L->timer_gen,
                .client = (uint32_t)lane_client(L)->id, .lane = L->idx};
    return true;
}

/* ---- copies of replies and commands --------------------------------------------------------- */

/* An array's elements start at the next aligned address after whatever string came before
 * them (a nested array follows its sibling's string): each array may need padding. */
#define REPLY_ALIGN _Alignof(dlock_reply)

static size_t reply_size(const dlock_reply *r)
{
    size_t n = sizeof *r + (r->str ? r->len + 1 : 0) + (r->elements ? REPLY_ALIGN - 1 : 0);
    for (size_t i = 0; i < r->elements; i++)
        n += reply_size(&r->element[i]);
    return n;
}

/* Lays r out at *at (its elements first, then its string); returns the copy. */
static dlock_reply *reply_copy_into(const dlock_reply *r, dlock_reply *dst, char **at)
{
    *dst = *r;
    if (r->elements > 0) {
        *at += (REPLY_ALIGN - (uintptr_t)*at % REPLY_ALIGN) % REPLY_ALIGN;
        dlock_reply *el = (dlock_reply *)*at;
        *at += r->elements * sizeof *el;
        for (size_t i = 0; i < r->elements; i++)
            reply_copy_into(&r->element[i], &el[i], at);
        dst->element = el;
    }
    if (r->str) {
        memcpy(*at, r->str, r->len);
        (*at)[r->len] = '\0';
        dst->str = *at;
        *at += r->len + 1;
    }
    return dst;
}

static const dlock_reply *reply_copy(const dlock_reply *r)
{
    size_t n = reply_size(r);
    dlock_reply *root = malloc(n);
    if (!root)
        abort();
    char *at = (char *)(root + 1);
    reply_copy_into(r, root, &at);
    return root;
}

/* A command the driver makes itself (the protected store's GET, SET, INCR) is copied: its
 * strings are the caller's for this call only. The event owns the copy. */
static char **argv_copy(int argc, const char *const *argv)
{
    size_t bytes = (size_t)argc * sizeof(char *);
    for (int i = 0; i < argc; i++)
        bytes += strlen(argv[i]) + 1;
    char **v = malloc(bytes);
    if (!v)
        abort();
    char *at = (char *)(v + argc);
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]) + 1;
        memcpy(at, argv[i], n);
        v[i] = at;
        at += n;
    }
    return v;
}

/* What a dropped event still holds: a reply, or a command's copy. */
static void ev_free(const ev *e)
{
    if (e->kind == EV_TO_CLIENT || (e->kind == EV_TO_SERVER && (e->aux & WIRE_OWNED)))
        free(e->p);
}

/* ---- the network and the clients' cores ---------------------------------------------------- */

/* One way on a client's link to server k without its jitter, which goes in *jit. Network
 * settings and faults act on the links to the lock servers, as the fault proxy does; the
 * protected store is reached directly. */
static int64_t link_latency(const sim *S, const sclient *c, int k, int64_t *jit)
{
    *jit = 0;
    if (k == S->nservers)
        return S->sc->sim.rtt_us / 2;
    const sfaults *f = faults_of(c);
    const lb_event *d = f->ndelays ? f->delays[f->ndelays - 1] : NULL;
    int64_t lat = (d ? d->latency_ms : c->g->network.latency_ms) * 1000;
    *jit = (d ? d->jitter_ms : c->g->network.jitter_ms) * 1000;
    return S->sc->sim.rtt_us / 2 + lat;
}

/* One way on a client's link to server k. */
static int64_t link_delay(sim *S, sclient *c, int k)
{
    int64_t jit, one_way = link_latency(S, c, k, &jit);
    if (jit > 0)
        one_way += (int64_t)((2.0 * uniform01(&c->netrng) - 1.0) * (double)jit);
    return one_way > 0 ? one_way : 0;
}

/* When CPU work of cost_us (at least 1) that is ready now is done: on the client thread that
 * is free first, and, when the machine's cores are shared (sim.cores), on a core as well. */
static int64_t cpu_done(sim *S, int64_t cost_us)
{
    if (cost_us < 1)
        cost_us = 1;  /* a model of zero costs must still let virtual time move */
    int best = 0;
    for (int i = 1; i < S->nthreads; i++)
        if (S->thread_free[i] < S->thread_free[best])
            best = i;
    int64_t ready = S->thread_free[best] > S->now ? S->thread_free[best] : S->now;
    int64_t end = S->cores ? sim_cores_book(S->cores, ready, cost_us) : ready + cost_us;
    return S->thread_free[best] = end;
}

static void server_poke(sim *S, int k)
{
    int64_t next = sim_server_next_us(S->srv[k]);
    if (next == NONE || next >= S->srv_wake[k])
        return;
    S->srv_wake[k] = next < S->now ? S->now : next;
    push(S, (ev){.t = S->srv_wake[k], .kind = EV_SERVER, .aux = (uint64_t)k});
}

/* The connection is gone at once, with what is still on its way (a reset, a server that cut
 * it, a connection lost): the server drops its query buffer. */
static void conn_abort(sim *S, sconn *cn)
{
    if (cn->c)
        sim_conn_close(cn->c, S->now);
    cn->c = NULL;
    cn->epoch++;
    cn->last_out = 0;  /* the next connection's bytes do not queue behind this one's */
    server_poke(S, cn->server);
}

/* ---- connections a client closed with commands on their way ------------------------------
 * What a client sent before closing still reaches the server on the old connection, after the
 * lock machine that made it has moved on. Such a close leaves a record: the old connection and
 * copies of the batch's commands that may still be on their way, found by the events that carry
 * the originals (compared, never read again), and freed by the FIN behind them. Few at a time,
 * except under a fault on many clients: a chained table, by client, lane, server and epoch. */

typedef struct closing {
    struct closing *next;        /* in its slot */
    sim_conn *c;
    uint32_t client, epoch;
    uint16_t lane, server;
    int n;
    struct {
        const char *const *sent; /* the argv on the wire */
        char **copy;
    } cmd[];
} closing;

static closing **closing_slot(const sim *S, uint32_t cl, int ln, int k, uint32_t epoch)
{
    uint64_t h = mix((uint64_t)cl << 32 | epoch, (uint64_t)ln << 16 | (uint64_t)k);
    return &S->closings[h & (S->closings_cap - 1)];
}

/* The record of the closed connection e was sent on; NULL when none (one reset or cut). */
static closing *closing_find(const sim *S, const ev *e)
{
    if (S->nclosings == 0)
        return NULL;
    closing *r = *closing_slot(S, e->client, e->lane, wire_conn(e), wire_epoch(e));
    while (r && (r->client != e->client || r->lane != e->lane ||
                 r->server != wire_conn(e) || r->epoch != wire_epoch(e)))
        r = r->next;
    return r;
}

static void closing_add(sim *S, closing *r)
{
    if (S->nclosings >= S->closings_cap) {  /* a table twice as big */
        size_t n = S->closings_cap ? 2 * S->closings_cap : 64;
        closing **old = S->closings;
        size_t nold = S->closings_cap;
        if (!(S->closings = calloc(n, sizeof *S->closings)))
            abort();  /* as for the event queue */
        S->closings_cap = n;
        for (size_t i = 0; i < nold; i++) {
            for (closing *x = old[i], *next; x; x = next) {
                next = x->next;
                closing **slot = closing_slot(S, x->client, x->lane, x->server, x->epoch);
                x->next = *slot;
                *slot = x;
            }
        }
        free(old);
    }
    closing **slot = closing_slot(S, r->client, r->lane, r->server, r->epoch);
    r->next = *slot;
    *slot = r;
    S->nclosings++;
}

static void closing_free(closing *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->cmd[i].copy);
    free(r);
}

/* Where a command sent on a connection since closed goes, with *argv its copy: NULL when the
 * connection was reset or cut, and what was on its way is lost. */
static sim_conn *closed_conn(const sim *S, const ev *e, const char *const **argv)
{
    closing *r = closing_find(S, e);
    if (!r || (e->aux & WIRE_OWNED))
        return r ? r->c : NULL;
    for (int i = 0; i < r->n; i++) {
        if (r->cmd[i].sent == e->p) {
            *argv = (const char *const *)r->cmd[i].copy;
            return r->c;
        }
    }
    return NULL;
}

/* The FIN has come: nothing of the connection is on its way any more. */
static void closing_drop(sim *S, const ev *e)
{
    closing *r = closing_find(S, e);
    if (!r)
        return;
    closing **p = closing_slot(S, r->client, r->lane, r->server, r->epoch);
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    S->nclosings--;
    closing_free(r);
}

/* A reset: the proxy closes every connection of the client's links to the lock servers, those
 * the client has closed too, and what they still had on their way is lost. */
static void closing_reset(sim *S, const sclient *c)
{
    for (size_t i = 0; S->nclosings > 0 && i < S->closings_cap; i++) {
        for (closing *r = S->closings[i]; r; r = r->next) {
            if (r->client != (uint32_t)c->id || r->server >= S->nservers)
                continue;
            for (int j = 0; j < r->n; j++)
                free(r->cmd[j].copy);
            r->n = 0;  /* the FIN still comes: the proxy closes the server's side with one */
        }
    }
}

/* Whether a partition holds a command of cn's connection. */
static bool held_on(const sclient *c, const sconn *cn)
{
    for (uint32_t i = 0; c->f && i < c->f->nheld; i++) {
        const ev *e = &c->f->held[i];
        if (e->kind == EV_TO_SERVER && e->lane == cn->lane && wire_conn(e) == cn->server &&
            wire_epoch(e) == cn->epoch)
            return true;
    }
    return false;
}

/* The record of cn's connection, closing: copies of the commands of the lane's batch on it
 * that are not answered -- on the wire, held, or in the server's query buffer (which copies
 * its own: those copies go unused). */
static void closing_note(sim *S, sconn *cn)
{
    const lane *L = lane_at(cn->cl, cn->lane);
    const batch *b = L->b;
    int k = cn->server, n = 0;
    bool ours = b && b->u.sent && batch_conn(b, k)->epoch == cn->epoch;
    for (int i = 0; ours && i < b->n; i++)
        n += b->cmd[i].server == k;
    closing *r = malloc(sizeof *r + (size_t)n * sizeof r->cmd[0]);
    if (!r)
        abort();  /* as for the event queue */
    *r = (closing){.c = cn->c, .client = (uint32_t)cn->cl->id, .epoch = cn->epoch,
                   .lane = cn->lane, .server = (uint16_t)k};
    for (int i = 0, seen = 0; ours && i < b->n; i++) {
        if (b->cmd[i].server != k || seen++ < batch_conn(b, k)->got)
            continue;
        r->cmd[r->n].sent = b->u.sent[i].argv;
        r->cmd[r->n++].copy = argv_copy(b->u.sent[i].argc, b->u.sent[i].argv);
    }
    closing_add(S, r);
}

/* The client closes the connection: a FIN follows what it sent, which still reaches the server
 * and runs there (a SET NX sent just before a timeout takes the lock until its TTL), as TCP and
 * the fault proxy deliver it; replies go nowhere. The FIN arrives one way later, without a
 * jitter draw so that every other draw of the run stays as it was, and not before the last
 * command. */
static void conn_close(sim *S, sconn *cn)
{
    if (!cn->c || sim_conn_is_dead(cn->c)) {
        conn_abort(S, cn);
        return;
    }
    sclient *c = cn->cl;
    sim_conn_shutdown(cn->c);
    if (cn->last_out >= S->now || held_on(c, cn))  /* something may be on its way */
        closing_note(S, cn);
    int64_t jit, fin = S->now + link_latency(S, c, cn->server, &jit);
    if (fin < cn->last_out)
        fin = cn->last_out;
    push(S, (ev){.t = fin, .kind = EV_FIN, .p = cn->c, .aux = to_client(cn->server, cn->epoch),
                 .client = (uint32_t)c->id, .lane = cn->lane});
    cn->c = NULL;
    cn->epoch++;
    cn->last_out = 0;
}

/* A reply from a modelled server: it crosses the link back. */
typedef struct {
    int64_t sum;
    int left;
} counter_read;

static void on_reply(void *ctx, void *owner, int64_t at_us, const dlock_reply *r)
{
    sim *S = ctx;
    sconn *cn = owner;
    sclient *c = cn->cl;
    if (!c) {  /* the counters, read at the end (read_counters) */
        counter_read *cr = S->probe;
        if (r->type == DLOCK_REPLY_STRING)
            cr->sum += atoll(r->str);
        cr->left--;
        return;
    }
    int64_t at = at_us + link_delay(S, c, cn->server);
    if (at < cn->last_in)
        at = cn->last_in;
    cn->last_in = at;
    push(S, (ev){.t = at, .kind = EV_TO_CLIENT, .p = (void *)reply_copy(r),
                 .aux = to_client(cn->server, cn->epoch), .client = (uint32_t)c->id,
                 .lane = cn->lane});
}

/* The connection's replies still due will never come: the client learns it one way later.
 * epoch: the connection's before it was closed, the one its batch knows. */
static void conn_lost(sim *S, sclient *c, lane *L, int server, uint32_t epoch)
{
    sconn *cn = &L->conns[server];
    int64_t at = S->now + link_delay(S, c, server);
    if (at < cn->last_in)
        at = cn->last_in;
    cn->last_in = at;
    push(S, (ev){.t = at, .kind = EV_TO_CLIENT, .p = NULL, .aux = to_client(server, epoch),
                 .client = (uint32_t)c->id, .lane = cn->lane});
}

/* ---- batches -------------------------------------------------------------------------------- */

/* Whether the batch in flight still waits for a reply on server k's connection. */
static bool pending_on(const lane *L, int k)
{
    const batch *b = L->b;
    int sent = 0;
    for (int i = 0; b && i < b->n; i++)
        sent += b->cmd[i].server == k;
    return b && batch_conn(b, k)->got < sent;
}

static batch *batch_new(sim *S, int n)
{
    size_t nconn = (size_t)S->nservers + 1;
    batch *b = S->free_batches[n];
    if (b)
        S->free_batches[n] = b->u.next_free;
    else if (!(b = malloc(sizeof *b + (size_t)n * sizeof b->cmd[0] + nconn * sizeof(bconn))))
        abort();
    b->n = b->left = n;
    b->u.sent = NULL;
    memset(b->cmd, 0, (size_t)n * sizeof b->cmd[0]);
    memset(batch_conn(b, 0), 0, nconn * sizeof(bconn));
    return b;
}

static void batch_free(sim *S, batch *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->n; i++)
        free((void *)b->cmd[i].reply);
    b->u.next_free = S->free_batches[b->n];
    S->free_batches[b->n] = b;
}

static void timer_set(sim *S, lane *L, int64_t until)
{
    L->timer_gen++;
    L->timer_at = until < S->now ? S->now : until;
    L->timer_seq = S->seq++;
    timer_arm(S, L);
}

static void timer_stop(sim *S, lane *L)
{
    L->timer_gen++;
    timer_unarm(S, L);
}

/* Sends a batch: the commands leave once the client's core has done their work, each on its
 * server's connection (opened if need be); a server that is down refuses the connection, which
 * the client learns one link delay later. owned: argv are copies the events take over (else
 * they stay valid while the batch is out: see WIRE_OWNED). */
static void send_batch(sim *S, sclient *c, lane *L, int n, const int *server,
                       const char *const *const *argv, const int *argc, int64_t timeout_us,
                       bool reconnect, bool owned)
{
    batch *b = L->b = batch_new(S, n);
    int64_t depart = cpu_done(S, (int64_t)n * S->sc->sim.client_us_per_command);
    bool refused[LB_SCENARIO_MAX_SERVERS + 1] = {false}, fresh[LB_SCENARIO_MAX_SERVERS + 1] = {false};
    for (int i = 0; i < n; i++) {
        int k = server[i];
        sconn *cn = &L->conns[k];
        b->cmd[i].server = k;
        if (reconnect && !fresh[k]) {
            fresh[k] = true;
            conn_close(S, cn);
        }
        if (cn->c && sim_conn_is_dead(cn->c))
            conn_abort(S, cn);
        if (!cn->c && !refused[k] && !(cn->c = sim_conn_open(S->srv[k], cn))) {
            refused[k] = true;
            batch_conn(b, k)->epoch = cn->epoch;
        }
        if (refused[k]) {
            if (owned)
                free((void *)argv[i]);
            continue;
        }
        batch_conn(b, k)->epoch = cn->epoch;
        int64_t at = depart + link_delay(S, c, k);
        if (at < cn->last_out)
            at = cn->last_out;
        cn->last_out = at;
        push(S, (ev){.t = at, .kind = EV_TO_SERVER, .p = (void *)argv[i],
                     .aux = to_server(k, cn->epoch, argc[i], owned), .client = (uint32_t)c->id,
                     .lane = cn->lane});
    }
    for (int k = 0; k <= S->nservers; k++)
        if (refused[k])
            conn_lost(S, c, L, k, L->conns[k].epoch);
    timer_set(S, L, depart + timeout_us);  /* the batch's timeout runs from the writes */
}

/* The replies of a batch that is over, for its machine or its workload step; frees it. */
static void batch_done(sim *S, sclient *c, lane *L, bool timed_out)
{
    batch *b = L->b;
    const dlock_reply *r[MAX_BATCH];
    for (int i = 0; i < b->n; i++)
        r[i] = b->cmd[i].reply;
    L->b = NULL;
    if (L->m) {
        machine_go(S, c, L, r);
    } else {
        lb_wl_input in = {0};
        const dlock_reply *x = timed_out ? NULL : r[0];
        switch (timed_out ? OP_NONE : L->op) {
        case OP_READ:
            in.ok = x && (x->type == DLOCK_REPLY_STRING || x->type == DLOCK_REPLY_NIL);
            in.value = x && x->type == DLOCK_REPLY_STRING ? atoll(x->str) : 0;
            break;
        case OP_WRITE:
            in.rc = x && x->type == DLOCK_REPLY_STATUS ? DLOCK_OK : DLOCK_EIO;
            break;
        case OP_INCR:
        case OP_INSIDE:
            in.ok = x && x->type == DLOCK_REPLY_INTEGER;
            in.value = in.ok ? x->integer : 0;
            break;
        default:
            in.rc = timed_out ? DLOCK_EIO : DLOCK_OK;
            break;
        }
        L->op = OP_NONE;
        feed(S, c, in);
    }
    batch_free(S, b);
}

/* A reply (or, r NULL, the loss of the connection) on server k's connection of epoch. */
static void batch_reply(sim *S, sclient *c, lane *L, int k, uint32_t epoch, const dlock_reply *r)
{
    batch *b = L->b;
    if (!b || epoch != batch_conn(b, k)->epoch || !pending_on(L, k)) {
        free((void *)r);
        return;  /* a batch long over, or a connection since closed */
    }
    for (int i = 0, seen = 0; i < b->n; i++) {
        if (b->cmd[i].server != k)
            continue;
        if (seen++ < batch_conn(b, k)->got)
            continue;
        batch_conn(b, k)->got++;
        b->left--;
        b->cmd[i].reply = r;
        if (r)
            break;
        /* a lost connection: every reply still due on it is lost */
    }
    if (!r)
        conn_abort(S, &L->conns[k]);
    if (b->left > 0)
        return;
    timer_stop(S, L);
    batch_done(S, c, L, false);
}

/* The batch's time is up: what has not come will not; a connection out of step is closed. */
static void batch_timeout(sim *S, sclient *c, lane *L)
{
    for (int k = 0; k <= S->nservers; k++)
        if (pending_on(L, k))
            conn_close(S, &L->conns[k]);
    L->b->left = 0;
    batch_done(S, c, L, true);
}

/* ---- the lock machines ---------------------------------------------------------------------- */

static void machine_go(sim *S, sclient *c, lane *L, const dlock_reply *const *replies)
{
    dlock_input in = {.now_us = S->now, .wall_ms = S->epoch_ms + S->now / 1000 + faults_of(c)->skew_ms,
                      .interrupted = L == c->ln && c->interrupt, .replies = replies};
    dlock_action a = dlock_machine_next(L->m, &in);
    if (a.interrupt_taken)
        c->interrupt = false;
    switch (a.what) {
    case DLOCK_DO_SEND: {
        bool on_store = L->op == OP_FENCED || L->op == OP_FENCED_READ;
        int server[MAX_BATCH], argc[MAX_BATCH];
        const char *const *argv[MAX_BATCH];
        if (a.ncommands > MAX_BATCH)
            abort();  /* the core's largest batch is 28: a bigger one is a bug to see at once */
        int n = a.ncommands;
        for (int i = 0; i < n; i++) {
            server[i] = on_store ? S->nservers : a.commands[i].server;
            argv[i] = a.commands[i].argv;
            argc[i] = a.commands[i].argc;
        }
        if (!on_store) {  /* the lock core's commands, the renewer's included */
            L->op_commands += (uint32_t)n;
            c->out->commands += (uint64_t)n;
        }
        if (L == c->ln)
            c->state = C_BUSY;
        send_batch(S, c, L, n, server, argv, argc, a.timeout_us, a.reconnect, false);
        L->b->u.sent = a.commands;
        return;
    }
    case DLOCK_DO_WAIT:
        if (L == c->ln)
            c->state = C_WAIT;
        timer_set(S, L, a.until_us);
        return;
    case DLOCK_DO_DONE:
    default:
        break;
    }
    op_kind op = L->op;
    lb_wl_input win = {.rc = a.rc};
    if (op == OP_ACQUIRE) {
        win.attempts = (uint32_t)dlock_machine_tries(L->m);
        win.commands = L->op_commands;
        dlock *l = dlock_machine_take_lock(L->m);
        if (l) {
            if (c->l)
                dlock_abandon(c->l);
            c->l = l;
            win.fence = dlock_fencing_token(l);
        }
    }
    if (op == OP_FENCED_READ) {
        const char *v = dlock_machine_value(L->m);
        win.ok = a.rc == DLOCK_OK;
        win.value = v ? atoll(v) : 0;
    }
    dlock_machine_free(L->m);
    L->m = NULL;
    L->op = OP_NONE;
    if (op == OP_EXTEND) {
        renew_done(S, c, a.rc);
        return;
    }
    if (op == OP_RELEASE && c->lease_lost && win.rc == DLOCK_OK)
        win.rc = DLOCK_ENOTOWNER;
    if (op == OP_RELEASE && c->l) {  /* a release does not free its lock */
        dlock_abandon(c->l);
        c->l = NULL;
    }
    if (op == OP_ACQUIRE)
        c->lease_lost = false;
    if (op == OP_ACQUIRE && a.rc == DLOCK_OK && c->renew && c->g->lock.ttl_ms > 0) {
        c->renew_on = true;  /* the lease counts from the acquire's call at the latest */
        c->rn->lease_until = S->now + c->g->lock.ttl_ms * 1000;
        timer_set(S, &c->rn->L, S->now + c->g->lock.ttl_ms * 1000 / 3);
    }
    c->state = C_BUSY;
    feed(S, c, win);
}

static void start_machine(sim *S, sclient *c, lane *L, dlock_machine *m, op_kind op)
{
    L->m = m;
    L->op = op;
    L->op_commands = 0;
    machine_go(S, c, L, NULL);
}

/* ---- lease renewal (lock.renew) --------------------------------------------------------------
 * As the loop driver's renewer does: every ttl / 3 from the last extend's start, an extend on
 * the renewer's own connections; after one that could not reach the servers, again a quarter
 * period later; a lock found lost (notowner), or not reached before its lease ran out, is given
 * up. Renewals stop before the lock is released, kept or dropped, so no extend runs beside the
 * release on the same lock. */

static void renew_tick(sim *S, sclient *c)
{
    lane *R = &c->rn->L;
    if (!c->renew_on || !c->l || R->m)
        return;
    dlock_machine *m = dlock_machine_extend(c->l, c->g->lock.ttl_ms);
    if (!m) {
        c->renew_on = false;
        return;
    }
    c->rn->renew_started = S->now;  /* the next period counts from here */
    start_machine(S, c, R, m, OP_EXTEND);
}

static void renew_done(sim *S, sclient *c, int rc)
{
    lane *R = &c->rn->L;
    int64_t period = c->g->lock.ttl_ms * 1000 / 3, started = c->rn->renew_started;
    if (!c->renew_on)
        return;
    if (rc == DLOCK_OK) {
        c->rn->lease_until = started + c->g->lock.ttl_ms * 1000;
        timer_set(S, R, started + period);
    } else if (rc == DLOCK_ENOTOWNER || S->now >= c->rn->lease_until) {
        c->renew_on = false;  /* lost: its release says so, as the watchdog's lock does */
        c->lease_lost = true;
    } else {
        timer_set(S, R, S->now + period / 4);
    }
}

static void renew_stop(sim *S, sclient *c)
{
    c->renew_on = false;
    if (!c->rn)
        return;
    lane *R = &c->rn->L;
    timer_stop(S, R);
    for (int k = 0; k < R->nconns; k++)  /* before the machine goes: see conn_close */
        conn_close(S, &R->conns[k]);
    if (R->m)
        dlock_machine_free(R->m);
    R->m = NULL;
    R->op = OP_NONE;
    batch_free(S, R->b);
    R->b = NULL;
}

/* ---- the workload --------------------------------------------------------------------------- */

static void close_lanes(sim *S, sclient *c)
{
    for (int j = 0; j < 2 && lane_at(c, j); j++) {
        lane *L = lane_at(c, j);
        timer_stop(S, L);
        for (int k = 0; k < L->nconns; k++)  /* a FIN on each, as the kernel sends for a
                                                process that dies; before the machine goes */
            conn_close(S, &L->conns[k]);
        if (L->m)
            dlock_machine_free(L->m);
        L->m = NULL;
        L->op = OP_NONE;
        batch_free(S, L->b);
        L->b = NULL;
    }
    c->renew_on = false;
}

static void drop_held(sclient *c, bool all);

static void end_client(sim *S, sclient *c)
{
    if (c->state == C_DONE)
        return;
    close_lanes(S, c);
    drop_held(c, false);
    c->state = C_DONE;
    c->out->end_us = S->now;
    S->running--;
}

static void down(sim *S, sclient *c)
{
    close_lanes(S, c);
    drop_held(c, false);
    if (c->l)
        dlock_abandon(c->l);
    c->l = NULL;
    c->out->crashes++;
    c->out->crashed = true;
    if (faults_of(c)->frozen_event) {  /* a holding pause ends with the crash; scheduled pauses go on */
        c->f->paused--;
        c->f->frozen_event = 0;
    }
    if (c->stopping || faults_of(c)->restart_after_us < 0) {
        end_client(S, c);
        return;
    }
    c->state = C_DOWN;
    timer_set(S, c->ln, S->now + c->f->restart_after_us);
}

static void fired(sim *S, int event, int64_t start, int64_t end)
{
    if (S->fired_start[event] < 0 || start < S->fired_start[event])
        S->fired_start[event] = start;
    if (end > S->fired_end[event])
        S->fired_end[event] = end;
}

/* Key k's name, made when needed rather than kept: a run may have a million keys. */
static void key_name(const sim *S, size_t k, char *buf, size_t len)
{
    const sclient *c = &S->cl[S->key_client[k]];
    rn_key_name(buf, len, S->t->prefix, &c->g->lock, c->id);
}

/* Key k's counter in the protected store: <key>:counter. */
static void counter_key(const sim *S, size_t k, char *buf, size_t len)
{
    char name[KEY_MAX];
    key_name(S, k, name, sizeof name);
    snprintf(buf, len, "%s:counter", name);
}

static void send_resource(sim *S, sclient *c, op_kind op, const char *cmd, const char *arg2)
{
    char key[KEY_MAX + 16];
    counter_key(S, (size_t)c->keyidx, key, sizeof key);
    if (op == OP_INSIDE)
        strcat(key, ":inside");
    const char *argv[4] = {cmd, key, arg2, NULL};
    int server[1] = {S->nservers}, argc[1] = {arg2 ? 3 : 2};
    const char *const *av[1] = {(const char *const *)argv_copy(argc[0], argv)};
    c->ln[0].op = op;
    c->state = C_BUSY;
    send_batch(S, c, c->ln, 1, server, av, argc, c->g->lock.command_timeout_ms * 1000, false,
               true);
}

static void carry(sim *S, sclient *c, lb_wl_step s)
{
    char err[160], buf[32];
    lane *L = c->ln;
    for (;;) {
        lb_wl_input in = {0};
        switch (s.what) {
        case LB_WL_ACQUIRE: {
            unsigned char token[16];
            for (int i = 0; i < 16; i += 8) {
                uint64_t v = next_u64(&c->tokrng);
                memcpy(token + i, &v, 8);
            }
            dlock_options o;  /* made again for each acquire: a million clients share a group's */
            rn_lock_options(&c->g->lock, S->sc->seed, c->id, &o);
            char key[KEY_MAX];
            key_name(S, (size_t)c->keyidx, key, sizeof key);
            dlock_machine *m = dlock_machine_acquire(key, &o, S->nservers, token, 0,
                                                     err, sizeof err);
            if (!m) {
                in.rc = DLOCK_EINVAL;
                break;
            }
            start_machine(S, c, L, m, OP_ACQUIRE);
            return;
        }
        case LB_WL_READ: {
            if (s.fence == 0) {
                send_resource(S, c, OP_READ, "GET", NULL);
                return;
            }
            char key[KEY_MAX + 16];
            counter_key(S, (size_t)c->keyidx, key, sizeof key);
            dlock_machine *rm = dlock_machine_fenced_read(key, c->l);
            if (!rm) {
                in.rc = DLOCK_ENOMEM;
                break;
            }
            start_machine(S, c, L, rm, OP_FENCED_READ);
            return;
        }
        case LB_WL_WRITE: {
            snprintf(buf, sizeof buf, "%lld", s.value);
            if (s.fence == 0) {
                send_resource(S, c, OP_WRITE, "SET", buf);
                return;
            }
            char key[KEY_MAX + 16];
            counter_key(S, (size_t)c->keyidx, key, sizeof key);
            dlock_machine *fm = dlock_machine_fenced_write(key, c->l, buf);
            if (!fm) {
                in.rc = DLOCK_ENOMEM;
                break;
            }
            start_machine(S, c, L, fm, OP_FENCED);
            return;
        }
        case LB_WL_INCR:
            send_resource(S, c, OP_INCR, "INCR", NULL);
            return;
        case LB_WL_ENTER:
        case LB_WL_EXIT:
            send_resource(S, c, OP_INSIDE, s.what == LB_WL_ENTER ? "INCR" : "DECR", NULL);
            return;
        case LB_WL_HOLDING: {
            int crash = faults_of(c)->crash_when_holding, pause = faults_of(c)->pause_when_holding;
            if (crash || pause)
                c->f->crash_when_holding = c->f->pause_when_holding = 0;
            if (crash) {
                fired(S, crash - 1, S->now, S->now);
                in.crashed = true;
                break;
            }
            if (pause) {  /* the whole client stops, its renewer too */
                c->f->frozen_event = pause;
                c->f->frozen_at = S->now;
                c->f->paused++;
                c->state = C_WAIT;
                timer_set(S, L, S->now + c->f->pause_when_holding_us);
                return;
            }
            break;
        }
        case LB_WL_HOLD:
        case LB_WL_THINK:
            c->state = C_WAIT;
            c->thinking = s.what == LB_WL_THINK;
            timer_set(S, L, s.until_us);
            return;
        case LB_WL_RELEASE: {
            renew_stop(S, c);
            dlock_machine *m = c->l ? dlock_machine_release(c->l) : NULL;
            if (!m) {
                in.rc = DLOCK_EINVAL;
                break;
            }
            start_machine(S, c, L, m, OP_RELEASE);
            return;
        }
        case LB_WL_KEEP:
            renew_stop(S, c);
            if (c->l)
                dlock_abandon(c->l);
            c->l = NULL;
            break;
        case LB_WL_CRASHED:
            down(S, c);
            return;
        case LB_WL_DONE:
        default:
            end_client(S, c);
            return;
        }
        in.now_us = S->now;
        in.stop = S->stopped;
        s = lb_wl_next(&c->wl, &in);
    }
}

/* What became of the client's last step. */
static void feed(sim *S, sclient *c, lb_wl_input in)
{
    in.now_us = S->now;
    in.stop = S->stopped;
    lb_wl_step s = lb_wl_next(&c->wl, &in);
    carry(S, c, s);
}

/* ---- client events -------------------------------------------------------------------------- */

static void release_held(sim *S, sclient *c);
static void drop_held(sclient *c, bool all);

static void on_timer(sim *S, sclient *c, lane *L)
{
    if (L != c->ln) {  /* the renewer: a batch's timeout, a back-off, or the next period */
        if (L->b)
            batch_timeout(S, c, L);
        else if (L->m)
            machine_go(S, c, L, NULL);
        else
            renew_tick(S, c);
        return;
    }
    switch (c->state) {
    case C_DOWN: {  /* back from a crash */
        c->state = C_BUSY;
        if (c->f)
            c->f->restart_after_us = -1;
        if (c->stopping || S->stopped) {
            end_client(S, c);
            return;
        }
        c->out->crashed = false;
        lb_wl_input in = {.now_us = S->now, .stop = S->stopped};
        carry(S, c, lb_wl_restart(&c->wl, &in));
        return;
    }
    case C_BUSY:  /* a batch's timeout */
        if (L->b)
            batch_timeout(S, c, L);
        return;
    case C_WAIT:
        c->state = C_BUSY;
        c->thinking = false;
        if (L->m) {
            machine_go(S, c, L, NULL);
        } else {
            feed(S, c, (lb_wl_input){0});
        }
        return;
    default:
        return;
    }
}

/* A paused client does nothing: its events wait until it resumes (the end of a holding pause
 * is the one that comes through). A partitioned one's traffic to the lock servers waits until
 * the partition heals. */
static bool held(sim *S, sclient *c, const ev *e)
{
    sfaults *f = c->f;
    if (!f)
        return false;
    bool sent = e->kind == EV_TO_SERVER || e->kind == EV_FIN;  /* out of the client already */
    bool net = (sent || e->kind == EV_TO_CLIENT) &&
               wire_conn(e) < S->nservers;  /* the store is direct */
    bool thaw = f->frozen_event && e->kind == EV_TIMER && e->lane == 0 &&
                e->aux == c->ln[0].timer_gen;
    bool hold = (f->paused > 0 && !sent && !thaw) || (f->partitioned > 0 && net);
    if (!hold)
        return false;
    if (f->nheld == f->capheld) {
        uint32_t cap = f->capheld ? 2 * f->capheld : 8;
        ev *h = realloc(f->held, cap * sizeof *h);
        if (!h)
            abort();
        f->held = h;
        f->capheld = cap;
    }
    f->held[f->nheld++] = *e;
    return true;
}

/* Held events of a client that crashed or ended belong to a dead incarnation, but for what it
 * sent: the partition holds those bytes, and its FINs behind them, until it heals. all: those
 * too (the run is over). */
static void drop_held(sclient *c, bool all)
{
    sfaults *f = c->f;
    if (!f)
        return;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < f->nheld; i++) {
        if (!all && (f->held[i].kind == EV_TO_SERVER || f->held[i].kind == EV_FIN))
            f->held[kept++] = f->held[i];
        else
            ev_free(&f->held[i]);
    }
    f->nheld = kept;
    if (kept == 0) {
        free(f->held);
        f->held = NULL;
        f->capheld = 0;
    }
}

static void release_held(sim *S, sclient *c)
{
    sfaults *f = faults(c);
    size_t n = f->nheld;
    ev *h = f->held;
    f->held = NULL;
    f->nheld = f->capheld = 0;
    for (size_t i = 0; i < n; i++) {
        ev e = h[i];
        e.t = S->now;
        push(S, e);
    }
    free(h);
}

static void client_event(sim *S, const ev *e)
{
    sclient *c = &S->cl[e->client];
    lane *L = lane_at(c, (int)e->lane);
    if (e->kind == EV_TIMER && (e->aux != L->timer_gen || c->state == C_DONE))
        return;
    if (held(S, c, e))
        return;
    switch (e->kind) {
    case EV_TIMER:
        if (faults_of(c)->frozen_event && L == c->ln) {  /* a holding pause ends: the client goes on */
            sfaults *f = c->f;
            fired(S, f->frozen_event - 1, f->frozen_at, S->now);
            f->frozen_event = 0;
            c->state = C_BUSY;
            if (f->paused > 0 && --f->paused == 0) {
                release_held(S, c);
            } else if (f->paused > 0) {  /* a scheduled pause still holds the client */
                c->state = C_WAIT;
                timer_set(S, L, S->now);  /* held until it ends, then the client goes on */
                break;
            }
            feed(S, c, (lb_wl_input){0});
            break;
        }
        on_timer(S, c, L);
        break;
    case EV_TO_SERVER: {
        int k = wire_conn(e), argc = wire_argc(e);
        sconn *cn = &L->conns[k];
        const char *const *argv = e->p;
        sim_conn *to = cn->c && c->state != C_DONE ? cn->c : NULL;
        bool owned = e->aux & WIRE_OWNED;
        if (wire_epoch(e) != cn->epoch) {  /* a closed connection's: see conn_close */
            to = closed_conn(S, e, &argv);
            owned = true;
        }
        if (to) {
            size_t lens[MAX_ARGC];
            if (argc > MAX_ARGC)
                abort();  /* the core's longest command has 15 arguments */
            for (int i = 0; i < argc; i++)
                lens[i] = strlen(argv[i]);
            if (owned)
                sim_conn_push(to, S->now, argc, argv, lens);  /* freed below, or by the FIN */
            else
                sim_conn_push_ref(to, S->now, argc, argv, lens);  /* see WIRE_OWNED */
            server_poke(S, k);
        }
        ev_free(e);
        break;
    }
    case EV_FIN:
        closing_drop(S, e);
        sim_conn_fin(e->p, S->now);
        server_poke(S, wire_conn(e));
        break;
    case EV_TO_CLIENT:
        if (c->state == C_DONE || c->state == C_DOWN)
            ev_free(e);
        else
            batch_reply(S, c, L, wire_conn(e), wire_epoch(e), e->p);
        break;
    default:
        break;
    }
}

/* ---- faults --------------------------------------------------------------------------------- */


static void crash_now(sim *S, sclient *c)
{
    lb_wl_input in = {.crashed = true, .rc = DLOCK_ECANCELED};
    lane *L = c->ln;
    if (L->m && L->op == OP_ACQUIRE) {  /* what the acquire did before it was cut short */
        in.attempts = (uint32_t)dlock_machine_tries(L->m);
        in.commands = L->op_commands;
    }
    close_lanes(S, c);
    drop_held(c, false);
    c->state = C_BUSY;
    feed(S, c, in);
}

/* A client event: false when the client is not one (it cannot fail otherwise). */
static void apply_client(sim *S, sclient *c, const lb_event *e, size_t idx, bool ending)
{
    sfaults *f = e->action == LB_EV_RESET ? NULL : faults(c);
    switch (e->action) {
    case LB_EV_CRASH:
        f->restart_after_us = e->restart_after_ms >= 0 ? e->restart_after_ms * 1000 : -1;
        if (e->when_holding) {
            f->crash_when_holding = (int)idx + 1;
        } else if (c->state == C_DOWN) {
            if (f->restart_after_us < 0)
                end_client(S, c);
            else
                timer_set(S, c->ln, S->now + f->restart_after_us);  /* the count starts again */
        } else if (c->state != C_DONE) {
            crash_now(S, c);
        }
        break;
    case LB_EV_PAUSE:
        if (e->when_holding) {
            f->pause_when_holding = (int)idx + 1;
            f->pause_when_holding_us = e->duration_ms * 1000;
        } else if (!ending) {
            f->paused++;
        } else if (f->paused > 0 && --f->paused == 0) {
            release_held(S, c);
        }
        break;
    case LB_EV_CLOCK_SKEW:
        f->skew_ms = e->offset_ms;
        break;
    case LB_EV_DELAY:
        if (!ending && f->ndelays < MAX_DELAYS) {
            f->delays[f->ndelays++] = e;
        } else {
            for (int i = 0; i < f->ndelays; i++) {
                if (f->delays[i] == e) {
                    memmove(&f->delays[i], &f->delays[i + 1],
                            (size_t)(f->ndelays - i - 1) * sizeof f->delays[0]);
                    f->ndelays--;
                    break;
                }
            }
        }
        break;
    case LB_EV_PARTITION:
        if (!ending) {
            f->partitioned++;
        } else if (f->partitioned > 0 && --f->partitioned == 0) {
            release_held(S, c);
        }
        break;
    case LB_EV_RESET:
        closing_reset(S, c);
        for (int j = 0; j < 2 && lane_at(c, j); j++) {
            for (int k = 0; k < S->nservers; k++) {
                lane *L = lane_at(c, j);
                sconn *cn = &L->conns[k];
                bool pending = cn->c && pending_on(L, k);
                uint32_t epoch = cn->epoch;
                conn_abort(S, cn);
                if (pending)
                    conn_lost(S, c, L, k, epoch);
            }
        }
        break;
    default:
        break;
    }
}

/* Every client connection to server k is cut, and clients waiting on one learn it one link
 * delay later, as from a reset. */
static void cut_clients(sim *S, int k)
{
    for (size_t i = 0; i < S->n; i++) {
        sclient *c = &S->cl[i];
        for (int j = 0; j < 2 && lane_at(c, j); j++) {
            lane *L = lane_at(c, j);
            sconn *cn = &L->conns[k];
            if (!cn->c)
                continue;
            bool pending = pending_on(L, k);
            uint32_t epoch = cn->epoch;
            conn_abort(S, cn);
            if (pending)
                conn_lost(S, c, L, k, epoch);
        }
    }
}

/* A server dies (kill-server, crash-host): its connections are cut. */
static void server_down(sim *S, int k, bool host)
{
    sim_server_kill(S->srv[k], S->now, host);
    cut_clients(S, k);
}

/* failover: a replica is promoted; the clients' connections to server k are reset and they
 * reconnect to the new primary, as the real driver's front link does. */
static bool failover(sim *S, size_t idx, int k, bool demote)
{
    sim_server *old = S->srv[k];
    sim_server *np = sim_server_failover(old, S->now, demote);
    if (!np)
        return false;
    if (!demote)
        S->killed[idx] = old;  /* restart_after_ms: it comes back as a replica of np */
    cut_clients(S, k);
    S->srv[k] = np;
    S->srv_wake[k] = NONE;
    return true;
}

static bool apply(sim *S, size_t idx, bool ending)
{
    const lb_event *e = &S->sc->events[idx];
    switch (e->action) {
    case LB_EV_KILL_SERVER:
    case LB_EV_CRASH_HOST:  /* the process, or its machine: what persistence kept differs */
        if (e->server < 0 || e->server >= S->nservers)
            return false;
        if (!ending) {
            S->killed[idx] = S->srv[e->server];
            server_down(S, e->server, e->action == LB_EV_CRASH_HOST);
        } else if (S->killed[idx]) {  /* the very server killed, even if a failover replaced it */
            sim_server_restart(S->killed[idx], S->now);
        }
        server_poke(S, e->server);
        return true;
    case LB_EV_PAUSE_SERVER:
        if (e->server < 0 || e->server >= S->nservers)
            return false;
        if (!ending)
            sim_server_pause(S->srv[e->server], S->now, S->now + e->duration_ms * 1000);
        server_poke(S, e->server);
        return true;
    case LB_EV_FAILOVER:
    case LB_EV_DELAY_REPLICATION:
    case LB_EV_PARTITION_REPLICATION: {
        if (e->server < 0 || e->server >= S->nservers || S->sc->redis.replicas == 0)
            return false;
        bool ok = true;
        if (e->action == LB_EV_FAILOVER && !ending)
            ok = failover(S, idx, e->server, e->old == LB_OLD_DEMOTE);
        else if (e->action == LB_EV_FAILOVER && S->killed[idx])
            sim_server_restart(S->killed[idx], S->now);
        else if (e->action == LB_EV_DELAY_REPLICATION)
            sim_server_repl_delay(S->srv[e->server], S->now, e->latency_ms * 1000, !ending);
        else
            sim_server_repl_hold(S->srv[e->server], S->now, !ending);
        server_poke(S, e->server);
        return ok;
    }
    default:
        for (size_t i = 0; i < e->nclients; i++)
            if (e->clients[i] >= 0 && (size_t)e->clients[i] < S->n)
                apply_client(S, &S->cl[e->clients[i]], e, idx, ending);
        return true;
    }
}

static void on_fault(sim *S, size_t a)
{
    const action *act = &S->acts[a];
    lb_fault_record *f = &S->out->faults[act->event];
    bool ok = apply(S, act->event, act->ending);
    if (!act->ending) {
        f->applied = ok;
        f->start_us = ok ? S->now : -1;
        S->out->faults_applied += ok;
    } else if (f->applied) {
        f->end_us = S->now;
    }
}

/* A group's deadline (or a stop, for every group): waits in progress are abandoned, and no new
 * iteration starts. */
static void stop_group(sim *S, size_t g)
{
    for (size_t i = 0; i < S->n; i++) {
        sclient *c = &S->cl[i];
        if (g != SIZE_MAX && (size_t)(c->g - S->sc->groups) != g)
            continue;
        c->stopping = true;
        if (c->ln[0].m && c->ln[0].op == OP_ACQUIRE) {
            c->interrupt = true;
            if (c->state == C_WAIT && !faults_of(c)->frozen_event)
                timer_set(S, c->ln, S->now);
        }
        if (c->state == C_DOWN)
            end_client(S, c);
        else if (g == SIZE_MAX && c->state == C_WAIT && c->thinking)
            timer_set(S, c->ln, S->now);  /* a stop ends a think at once */
    }
}

/* ---- set-up ----------------------------------------------------------------------------------- */

static uint64_t hash_str(const char *p)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* Client c's key index: clients with the same key name share it. */
static int intern_key(sim *S, const sclient *c)
{
    char name[KEY_MAX], other[KEY_MAX];
    rn_key_name(name, sizeof name, S->t->prefix, &c->g->lock, c->id);
    size_t i = (size_t)hash_str(name) & S->key_mask;
    for (; S->key_slots[i]; i = (i + 1) & S->key_mask) {
        key_name(S, S->key_slots[i] - 1, other, sizeof other);
        if (strcmp(other, name) == 0)
            return (int)(S->key_slots[i] - 1);
    }
    S->key_client[S->nkeys] = (uint32_t)c->id;
    S->key_slots[i] = ++S->nkeys;
    return (int)(S->nkeys - 1);
}

static int setup(sim *S, const lb_scenario *sc, const lb_run_target *t, lb_run_result *out)
{
    S->sc = sc;
    S->t = t;
    S->out = out;
    S->n = sc->nclients;
    S->nservers = sc->redis.servers;
    S->epoch_ms = INT64_C(1700000000000);
    S->nthreads = (int)sc->sim.client_cores;
    memset(out, 0, sizeof *out);
    out->driver = LB_DRIVER_SIM;
    out->clients = calloc(S->n + 1, sizeof *out->clients);
    out->faults = calloc(sc->nevents + 1, sizeof *out->faults);
    out->meters = calloc(1, sizeof *out->meters);
    S->cl = calloc(S->n + 1, sizeof *S->cl);
    S->key_client = calloc(S->n + 1, sizeof *S->key_client);
    for (S->key_mask = 1; S->key_mask < 2 * (S->n + 1); S->key_mask *= 2)
        ;
    S->key_slots = calloc(S->key_mask, sizeof *S->key_slots);
    S->key_mask--;
    S->srv = calloc((size_t)S->nservers + 1, sizeof *S->srv);
    S->srv_wake = calloc((size_t)S->nservers + 1, sizeof *S->srv_wake);
    S->killed = calloc(sc->nevents + 1, sizeof *S->killed);
    S->thread_free = calloc((size_t)S->nthreads, sizeof *S->thread_free);
    S->cores = sc->sim.cores > 0 ? sim_cores_new((int)sc->sim.cores) : NULL;
    S->acts = calloc(2 * sc->nevents + 1, sizeof *S->acts);
    S->fired_start = calloc(sc->nevents + 1, sizeof *S->fired_start);
    S->fired_end = calloc(sc->nevents + 1, sizeof *S->fired_end);
    if (!out->clients || !out->faults || !out->meters || !S->cl || !S->key_client || !S->key_slots ||
        !S->srv || !S->killed ||
        !S->srv_wake || !S->thread_free || (sc->sim.cores > 0 && !S->cores) || !S->acts || !S->fired_start || !S->fired_end) {
        snprintf(S->err, sizeof S->err, "out of memory");
        return -1;
    }
    out->nclients = S->n;
    out->nfaults = sc->nevents;
    for (size_t g = 0; g < sc->ngroups; g++)
        out->open_loop |= sc->groups[g].workload.arrival.on;
    if (lb_meter_init(&out->meters[0], S->n, out->open_loop) < 0) {
        snprintf(S->err, sizeof S->err, "out of memory");
        return -1;
    }
    out->nmeters = 1;
    sim_server_params p;
    sim_server_params_init(&p);
    p.us_per_command = sc->sim.server_us_per_command;
    p.us_per_script = sc->sim.script_us_per_call;
    p.hz = (int)sc->sim.server_hz;
    p.persistence = sc->redis.persistence;
    p.unix_epoch_us = S->epoch_ms * 1000;
    p.cores = S->cores;
    for (int k = 0; k <= S->nservers; k++) {
        S->srv_wake[k] = NONE;
        if (!(S->srv[k] = sim_server_new(&p, on_reply, S))) {
            snprintf(S->err, sizeof S->err, "the modelled server %d could not start", k);
            return -1;
        }
        if (k < S->nservers &&
            sim_server_add_replicas(S->srv[k], (int)sc->redis.replicas, sc->sim.rtt_us / 2) < 0) {
            snprintf(S->err, sizeof S->err, "the replicas of modelled server %d could not start",
                     k);
            return -1;
        }
    }
    for (size_t i = 0; i < sc->nevents; i++) {
        rn_fault_describe(&sc->events[i], &out->faults[i]);
        S->fired_start[i] = S->fired_end[i] = -1;
    }
    S->nacts = rn_fault_actions(sc, S->acts);
    size_t id = 0;
    size_t nconn = 0;
    for (size_t g = 0; g < sc->ngroups; g++) {
        const lb_client_group *gr = &sc->groups[g];
        size_t per = (size_t)S->nservers * (gr->lock.renew ? 2 : 1) +
                     (gr->workload.critical_section != LB_CS_NONE);
        nconn += (size_t)gr->count * per;
    }
    if (!(S->conn_block = calloc(nconn + 1, sizeof *S->conn_block))) {
        snprintf(S->err, sizeof S->err, "out of memory");
        return -1;
    }
    sconn *next_conn = S->conn_block;
    for (size_t g = 0; g < sc->ngroups; g++) {
        const lb_client_group *gr = &sc->groups[g];
        for (int64_t k = 0; k < gr->count; k++, id++) {
            sclient *c = &S->cl[id];
            c->id = (int)id;
            c->g = gr;
            c->out = &out->clients[id];
            c->out->client = (int)id;
            c->out->group = g;
            c->rng = rn_client_rng(sc->seed, id);
            c->netrng = mix(sc->seed ^ 0x6E6574ULL, id);
            c->tokrng = mix(sc->seed ^ 0x746F6BULL, id);
            c->keyidx = intern_key(S, c);
            if (gr->lock.renew && !(c->rn = calloc(1, sizeof *c->rn))) {
                snprintf(S->err, sizeof S->err, "out of memory");
                return -1;
            }
            if (c->rn) {
                c->rn->c = c;
                c->rn->L.idx = 1;
            }
            for (int j = 0; j < 2 && lane_at(c, j); j++) {
                lane *L = lane_at(c, j);
                L->heap_idx = -1;
                /* the protected store: only the own lane of a client with a critical section */
                bool store = j == 0 && gr->workload.critical_section != LB_CS_NONE;
                L->nconns = (uint16_t)(S->nservers + store);
                L->conns = next_conn;
                next_conn += L->nconns;
                for (int s = 0; s < L->nconns; s++)
                    L->conns[s] = (sconn){.cl = c, .server = (uint16_t)s, .lane = (uint16_t)j};
            }
            c->renew = gr->lock.renew;
        }
    }
    out->nkeys = (int64_t)S->nkeys;
    free(S->key_slots);  /* the names are interned: the table is not needed again */
    S->key_slots = NULL;
    if (!(S->oracle = lb_oracle_new(S->nkeys))) {
        snprintf(S->err, sizeof S->err, "out of memory");
        return -1;
    }
    for (size_t i = 0, member = 0; i < S->n; i++) {
        sclient *c = &S->cl[i];
        member = i > 0 && c->g == S->cl[i - 1].g ? member + 1 : 0;
        int64_t d = c->g->workload.duration_ms;
        lb_wl_setup st = {.g = c->g, .member = (int)member, .key = c->keyidx, .out = c->out,
                          .meter = &out->meters[0], .oracle = S->oracle, .rng = &c->rng,
                          .tally = NULL, .deadline_us = d >= 0 ? d * 1000 : INT64_MAX};
        if (lb_wl_init(&c->wl, &st) < 0) {
            snprintf(S->err, sizeof S->err, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void teardown(sim *S)
{
    for (size_t i = 0; S->cl && i < S->n; i++) {
        sclient *c = &S->cl[i];
        for (int j = 0; j < 2 && lane_at(c, j); j++) {
            lane *L = lane_at(c, j);
            if (L->m)
                dlock_machine_free(L->m);
            batch_free(S, L->b);
        }
        free(c->rn);
        if (c->l)
            dlock_abandon(c->l);
        drop_held(c, true);
        free(c->f);
        lb_wl_free(&c->wl);
    }
    for (int k = 0; S->srv && k <= S->nservers; k++)
        sim_server_free(S->srv[k]);  /* frees the connections too */
    while (S->nheap > 0) {
        ev e = pop(S);
        ev_free(&e);
    }
    for (int n = 0; n <= MAX_BATCH; n++) {
        for (batch *b = S->free_batches[n], *next; b; b = next) {
            next = b->u.next_free;
            free(b);
        }
    }
    for (size_t i = 0; i < S->closings_cap; i++) {
        for (closing *r = S->closings[i], *next; r; r = next) {
            next = r->next;
            closing_free(r);
        }
    }
    free(S->closings);
    free(S->timers);
    free(S->conn_block);
    free(S->key_client);
    free(S->key_slots);
    free(S->heap);
    free(S->cl);
    free(S->srv);
    free(S->srv_wake);
    free(S->killed);
    free(S->thread_free);
    sim_cores_free(S->cores);
    free(S->acts);
    free(S->fired_start);
    free(S->fired_end);
    lb_oracle_free(S->oracle);
}

/* ---- the counters, read from the modelled store at the end ---------------------------------- */

static int64_t read_counters(sim *S)
{
    counter_read cr = {0};
    sconn probe = {.cl = NULL, .server = (uint16_t)S->nservers};
    sim_server *st = S->srv[S->nservers];
    int64_t t = S->now;
    S->probe = &cr;
    sim_conn *c = sim_conn_open(st, &probe);
    for (size_t k = 0; c && k < S->nkeys; k++) {
        char key[KEY_MAX + 16];
        counter_key(S, k, key, sizeof key);
        const char *argv[2] = {"GET", key};
        size_t lens[2] = {3, strlen(key)};
        sim_conn_push(c, t, 2, argv, lens);
        cr.left++;
    }
    while (cr.left > 0) {
        int64_t next = sim_server_next_us(st);
        if (next == NONE)
            break;
        t = next > t ? next : t;
        sim_server_run(st, t);
    }
    sim_conn_close(c, t);
    S->probe = NULL;
    return cr.sum;
}

/* ---- the run -------------------------------------------------------------------------------- */

static int64_t wall_us_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t0->tv_sec) * 1000000 + (now.tv_nsec - t0->tv_nsec) / 1000;
}

static void progress(sim *S)
{
    int64_t wall = wall_us_since(&S->wall0);
    if (!S->t->progress || wall < S->next_progress_us)
        return;
    S->next_progress_us = wall + 250000;
    if (wall < 1000000)
        return;
    long long acq = 0, timeouts = 0, errors = 0;
    for (size_t i = 0; i < S->n; i++) {
        acq += S->cl[i].out->acquisitions;  /* one thread: the counts themselves */
        timeouts += S->cl[i].out->timeouts;
        errors += S->cl[i].out->errors;
    }
    double v = (double)S->now / 1e6;
    char total[32] = "";
    int64_t planned = rn_planned_us(S->sc);
    if (planned > 0)
        snprintf(total, sizeof total, " / %.1f", (double)planned / 1e6);
    fprintf(stderr, "\r  %s  virtual %.1f%s s  %.0f acquisitions/s  %lld timeouts  %lld errors  "
            "(%.1f s wall)\033[K", S->t->label ? S->t->label : "", v, total,
            v > 0 ? (double)acq / v : 0.0, timeouts, errors, (double)wall / 1e6);
}

int lb_sim_run(const lb_scenario *sc, const lb_run_target *t, lb_run_result *out,
               lb_sim_stats *stats, char *err, size_t errlen)
{
    sim S = {0};
    clock_gettime(CLOCK_MONOTONIC, &S.wall0);
    if (setup(&S, sc, t, out) < 0) {
        snprintf(err, errlen, "%s", S.err);
        teardown(&S);
        lb_run_result_free(out);
        return -1;
    }
    S.running = (int)S.n;
    for (size_t a = 0; a < S.nacts; a++)
        push(&S, (ev){.t = S.acts[a].at_us, .kind = EV_FAULT, .aux = a});
    for (size_t g = 0; g < sc->ngroups; g++)
        if (sc->groups[g].workload.duration_ms >= 0)
            push(&S, (ev){.t = sc->groups[g].workload.duration_ms * 1000, .kind = EV_DEADLINE,
                          .aux = g});
    for (size_t i = 0; i < S.n; i++) {  /* every client starts at the barrier, time 0 */
        sclient *c = &S.cl[i];
        c->state = C_BUSY;
        lb_wl_input in = {.now_us = 0};
        carry(&S, c, lb_wl_next(&c->wl, &in));
    }
    size_t next_fault = 0;
    while ((S.nheap > 0 || S.ntimers > 0) && S.running > 0) {
        ev e;
        if (!timer_due(&S, &e))
            e = pop(&S);
        S.now = e.t;
        S.events++;
        if ((S.events & 1023) == 0) {
            progress(&S);
            if (!S.stopped && lb_runner_stopped()) {
                S.stopped = true;
                stop_group(&S, SIZE_MAX);
            }
        }
        switch (e.kind) {
        case EV_SERVER:
            if (S.srv_wake[e.aux] != e.t)
                break;  /* superseded by an earlier wake */
            S.srv_wake[e.aux] = NONE;
            sim_server_run(S.srv[e.aux], e.t);
            server_poke(&S, (int)e.aux);
            break;
        case EV_FAULT:
            on_fault(&S, e.aux);
            next_fault = e.aux + 1;
            break;
        case EV_DEADLINE:
            stop_group(&S, e.aux);
            break;
        default:
            client_event(&S, &e);
            break;
        }
    }
    /* faults still open when the clients finished end with the run */
    for (size_t a = next_fault; a < S.nacts; a++)
        if (S.acts[a].ending && out->faults[S.acts[a].event].applied)
            out->faults[S.acts[a].event].end_us = S.now;
    if (t->progress && wall_us_since(&S.wall0) >= 1000000)
        fputc('\n', stderr);
    for (size_t i = 0; i < S.n; i++)
        if (out->clients[i].end_us > out->elapsed_us)
            out->elapsed_us = out->clients[i].end_us;
    rn_fault_windows_of(sc, S.fired_start, S.fired_end, out);
    out->complete = !S.stopped;
    out->overlaps = lb_oracle_overlaps(S.oracle);
    out->counter_actual = read_counters(&S);
    *stats = (lb_sim_stats){.virtual_us = S.now, .wall_us = wall_us_since(&S.wall0),
                            .events = S.events};
    teardown(&S);
    return 0;
}
