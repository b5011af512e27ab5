/* poll_driver.c -- a lock on a driver of one's own: the machines of dlock_machine.h driven with
 * poll(2) and non-blocking hiredis, as a guide for a driver on libuv, libevent or any loop.
 *
 *     poll_driver redis://host:port | unix:///path
 *
 * Two clients, A and B, one connection each, share one poll(2) loop. A takes the lock and holds
 * it 300 ms; B starts meanwhile, finds it held, and waits until A has released it.
 *
 * A machine does no I/O and reads no clock: each dlock_machine_next is handed the time and what
 * became of the last action, and answers the next one. The driver's whole job:
 *   SEND  write the commands (in order, one connection per server), then collect one reply per
 *         command until timeout_us has passed. A reply that has not come by then stays NULL and
 *         its connection is closed: its stream is out of step. reconnect: open anew first.
 *         (libuv: a uv_poll on the fd and a uv_timer; libevent: an fd event with a timeout.)
 *   WAIT  call the machine again at until_us (a timer; here, poll's timeout).
 *   DONE  rc; an acquire's lock is taken with dlock_machine_take_lock.
 * The replies go in as the machine's own type, converted from hiredis's here; the hiredis calls
 * used are alike in 0.14 and 1.x. Redlock's N servers would take a connection each. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "dlock_machine.h"

#define KEY "poll-driver:lock"
#define HOLD_US (300 * 1000)
#define MAX_BATCH 32  /* a batch for one server is a few commands */

typedef enum { IDLE, ACQUIRING, HOLDING, RELEASING, OVER } phase;

typedef struct client {
    char name;
    phase phase;
    dlock_machine *m;            /* the acquire, then the release */
    dlock_action a;              /* what m asked for last */
    redisContext *ctx;           /* NULL until a batch needs it (again) */
    redisReply *raw[MAX_BATCH];  /* the batch's replies, in order, as they come */
    int got;                     /* how many have come */
    int written;                 /* hiredis's output buffer is empty */
    int64_t due_us;              /* SEND: the replies' deadline; WAIT: its end; HOLDING: release */
    dlock *lock;
    bool ok;                     /* took the lock and released it */
    struct client *then;         /* starts acquiring once this one holds the lock */
} client;

static const char *url;
static int64_t start_us;

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

__attribute__((format(printf, 2, 3))) static void say(const client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%7.1f ms  %c: ", (double)(clock_us(CLOCK_MONOTONIC) - start_us) / 1000, c->name);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

/* Non-blocking: it may still be connecting when this returns, so the first write waits for
 * POLLOUT like any other. */
static redisContext *open_conn(void)
{
    char host[256];
    int port = 6379;
    redisContext *ctx = NULL;
    if (strncmp(url, "unix://", 7) == 0)
        ctx = redisConnectUnixNonBlock(url + 7);
    else if (sscanf(url, "redis://%255[^:/]:%d", host, &port) >= 1)
        ctx = redisConnectNonBlock(host, port);
    if (ctx && ctx->err) {
        redisFree(ctx);
        ctx = NULL;
    }
    return ctx;
}

static void drop(client *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
}

/* hiredis's reply as the machine reads it: the strings stay hiredis's, arrays get nodes of
 * their own. Only RESP2 is ever asked for: anything else reads as an error. */
static void convert(const redisReply *r, dlock_reply *to)
{
    static const char other[] = "ERR unexpected reply";
    *to = (dlock_reply){.integer = r->integer, .str = r->str, .len = r->len};
    switch (r->type) {
    case REDIS_REPLY_STRING:  to->type = DLOCK_REPLY_STRING; return;
    case REDIS_REPLY_INTEGER: to->type = DLOCK_REPLY_INTEGER; return;
    case REDIS_REPLY_NIL:     to->type = DLOCK_REPLY_NIL; return;
    case REDIS_REPLY_STATUS:  to->type = DLOCK_REPLY_STATUS; return;
    case REDIS_REPLY_ERROR:   to->type = DLOCK_REPLY_ERROR; return;
    }
    /* + 1: an empty array is no failure */
    dlock_reply *el = r->type == REDIS_REPLY_ARRAY ? calloc(r->elements + 1, sizeof *el) : NULL;
    if (!el) {  /* a RESP3 type, or no memory */
        *to = (dlock_reply){.type = DLOCK_REPLY_ERROR, .str = other, .len = sizeof other - 1};
        return;
    }
    *to = (dlock_reply){.type = DLOCK_REPLY_ARRAY, .elements = r->elements, .element = el};
    for (size_t i = 0; i < r->elements; i++)
        convert(r->element[i], &el[i]);
}

static void unconvert(const dlock_reply *r)
{
    for (size_t i = 0; i < r->elements; i++)
        unconvert(&r->element[i]);
    if (r->type == DLOCK_REPLY_ARRAY)
        free((void *)r->element);
}

static void done(client *c);

/* Hands the machine the time and the last batch's replies, then starts what it answers. */
static void next(client *c)
{
    dlock_reply conv[MAX_BATCH];
    const dlock_reply *replies[MAX_BATCH];
    int n = c->a.what == DLOCK_DO_SEND ? c->a.ncommands : 0;
    for (int i = 0; i < n; i++) {
        if (c->raw[i])
            convert(c->raw[i], &conv[i]);
        replies[i] = c->raw[i] ? &conv[i] : NULL;
    }
    /* A driver that can cancel passes its request in .interrupted, and drops it once an
     * action says interrupt_taken. */
    dlock_input in = {.now_us = clock_us(CLOCK_MONOTONIC), .replies = n ? replies : NULL};
    if (dlock_machine_reads_wall_clock(c->m))  /* legacy writes Unix time into the key */
        in.wall_ms = clock_us(CLOCK_REALTIME) / 1000;
    c->a = dlock_machine_next(c->m, &in);
    for (int i = 0; i < n; i++) {  /* the machine has kept what it needs */
        if (c->raw[i])
            unconvert(&conv[i]);
        freeReplyObject(c->raw[i]);
        c->raw[i] = NULL;
    }
    if (c->a.what == DLOCK_DO_DONE) {
        done(c);
    } else if (c->a.what == DLOCK_DO_WAIT) {
        c->due_us = c->a.until_us;
        say(c, "next try in %lld ms", (long long)(c->due_us - in.now_us + 999) / 1000);
    } else {
        if (c->a.ncommands > MAX_BATCH)
            abort();  /* more than a lock ever sends to one server */
        if (c->a.reconnect)
            drop(c);
        if (!c->ctx)
            c->ctx = open_conn();  /* NULL: the batch's replies stay NULL */
        for (int i = 0; c->ctx && i < c->a.ncommands; i++)
            redisAppendCommandArgv(c->ctx, c->a.commands[i].argc,
                                   (const char **)c->a.commands[i].argv, NULL);
        c->got = 0;
        c->written = 0;
        c->due_us = in.now_us + c->a.timeout_us;
    }
}

/* The fd is ready: write what is left of the batch, take the replies that have come. */
static bool on_io(client *c, short revents)
{
    void *r;
    if ((revents & POLLOUT) && redisBufferWrite(c->ctx, &c->written) != REDIS_OK)
        return false;
    if (!(revents & (POLLIN | POLLERR | POLLHUP)))
        return true;
    if (redisBufferRead(c->ctx) != REDIS_OK)
        return false;
    while (c->got < c->a.ncommands) {
        if (redisGetReplyFromReader(c->ctx, &r) != REDIS_OK)
            return false;
        if (!r)
            break;
        c->raw[c->got++] = r;
    }
    return true;
}

static void start_acquire(client *c)
{
    unsigned char rnd[16 + 8];  /* the token (a secret: getrandom), the back-off jitter's seed */
    uint64_t seed;
    char err[256];
    dlock_options o;
    dlock_options_init(&o);     /* token lock; poll waiting, exponential back-off */
    o.ttl_ms = 10000;
    o.wait_timeout_ms = 5000;
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        perror("getrandom");
        exit(1);
    }
    memcpy(&seed, rnd + 16, sizeof seed);
    if (!(c->m = dlock_machine_acquire(KEY, &o, 1, rnd, seed, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    c->phase = ACQUIRING;
    say(c, "acquiring " KEY);
    next(c);
}

static void done(client *c)
{
    if (c->phase == ACQUIRING) {
        long long tries = (long long)dlock_machine_tries(c->m);
        c->lock = dlock_machine_take_lock(c->m);
        if (c->lock)
            say(c, "took the lock (tries: %lld)", tries);
        else
            say(c, "no lock: %s: %s", dlock_strerror(c->a.rc), dlock_machine_error(c->m));
        c->phase = c->lock ? HOLDING : OVER;
        c->due_us = clock_us(CLOCK_MONOTONIC) + HOLD_US;
        if (c->lock && c->then)
            start_acquire(c->then);
    } else {
        say(c, "released the lock: %s", dlock_strerror(c->a.rc));
        c->ok = c->a.rc == DLOCK_OK;
        dlock_abandon(c->lock);  /* the release machine leaves freeing the lock to us */
        c->lock = NULL;
        c->phase = OVER;
    }
    dlock_machine_free(c->m);
    c->m = NULL;
}

/* Moves c on as far as it can go at this moment. */
static void step(client *c)
{
    int64_t now = clock_us(CLOCK_MONOTONIC);
    if (c->phase == HOLDING && now >= c->due_us) {
        if (!(c->m = dlock_machine_release(c->lock)))
            abort();  /* no memory */
        c->phase = RELEASING;
        next(c);
    }
    if (c->m && c->a.what == DLOCK_DO_SEND && c->ctx && c->got < c->a.ncommands &&
        now >= c->due_us) {
        say(c, "no reply in time: the connection is closed");
        drop(c);
    }
    while (c->m && (c->a.what == DLOCK_DO_WAIT ? clock_us(CLOCK_MONOTONIC) >= c->due_us
                                               : !c->ctx || c->got == c->a.ncommands))
        next(c);
}

static bool busy(const client *c)
{
    return c->phase != IDLE && c->phase != OVER;
}

/* One round: move every client on, then sleep in poll(2) until a connection is ready or the
 * first deadline (a batch's timeout, a wait's end, the end of A's hold) comes. */
static void round_once(client *cl, int ncl)
{
    struct pollfd fds[2];
    client *who[2];
    int n = 0;
    int64_t wake = INT64_MAX;
    for (int i = 0; i < ncl; i++)
        step(&cl[i]);
    for (int i = 0; i < ncl; i++) {
        client *c = &cl[i];
        if (c->m && c->a.what == DLOCK_DO_SEND && c->ctx) {
            fds[n] = (struct pollfd){.fd = c->ctx->fd, .events = POLLIN};
            if (!c->written)
                fds[n].events |= POLLOUT;
            who[n++] = c;
        }
        if (busy(c) && c->due_us < wake)
            wake = c->due_us;
    }
    if (wake == INT64_MAX)
        return;  /* all done */
    int64_t left = wake - clock_us(CLOCK_MONOTONIC);
    int ms = left <= 0 ? 0 : (int)((left + 999) / 1000);
    if (poll(fds, (nfds_t)n, ms) < 0 && errno != EINTR) {
        perror("poll");
        exit(1);
    }
    for (int i = 0; i < n; i++)
        if (fds[i].revents && !on_io(who[i], fds[i].revents))
            drop(who[i]);  /* failed mid-batch: the replies that did not come stay NULL */
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strncmp(argv[1], "unix://", 7) != 0 &&
                      strncmp(argv[1], "redis://", 8) != 0)) {
        fprintf(stderr, "usage: %s redis://host:port | unix:///path\n", argv[0]);
        return 2;
    }
    url = argv[1];
    signal(SIGPIPE, SIG_IGN);  /* a write to a closed connection fails with EPIPE instead */
    client cl[2] = {{.name = 'A', .then = &cl[1]}, {.name = 'B'}};
    start_us = clock_us(CLOCK_MONOTONIC);
    start_acquire(&cl[0]);
    while (busy(&cl[0]) || busy(&cl[1]))
        round_once(cl, 2);
    drop(&cl[0]);
    drop(&cl[1]);
    return cl[0].ok && cl[1].ok ? 0 : 1;
}
