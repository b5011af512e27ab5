/* client.c -- a client: its connections (reconnected after any error), interruption, statistics,
 * and the exchange of one batch of commands with a deadline. URLs and connecting are in
 * connect.c.
 *
 * A batch's commands are written to all their servers before any reply is read, and the
 * replies are read with poll(2) across all servers against one deadline: a server that is slow
 * costs one command timeout, not one per server, and N servers cost one round trip, not N. (A
 * server that must be reconnected first costs its connect timeout on top; on a loop, where
 * nothing may block, the reconnect, its AUTH and its SELECT are part of the exchange, under its
 * deadline, and the batch goes on that connection once they are answered.) What to send, how
 * long to wait and when to start afresh are the machine's (op.c) to say; this file does it.
 * A context that timed out or failed is dropped (its stream position is unknown) and reconnected
 * on next use. Writes run under connect.c's SIGPIPE guard. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connect.h"
#include "internal.h"
#include "sentinel.h"

typedef struct conn {
    dlock__url url;
    char *text;          /* the URL as given, kept to open a clone's own connections */
    redisContext *ctx;
    int64_t timeout_ms;  /* the socket timeout set on ctx */
    char *refusal;       /* the server's answer when it refused the last connect's AUTH or
                            SELECT (rare: allocated then), else NULL */
    int setup;           /* on a loop: replies of a new connection's AUTH and SELECT still due */
    void *watch;         /* on a loop: ctx is non-blocking and watched */
    dlock_client *owner;
    int index;
} conn;

/* On a loop: the exchange in flight, read as the replies come (see the non-blocking exchange). */
typedef struct pending {
    int16_t want[DLOCK__MAX_SERVERS];  /* replies still expected from each server */
    int16_t next[DLOCK__MAX_SERVERS];  /* the batch index the next reply of each server answers */
    bool held[DLOCK__MAX_SERVERS]; /* its commands wait for its connection's AUTH and SELECT */
} pending;

typedef struct xchg {
    bool active;
    const dlock_action *a;              /* the batch, and where its replies go */
    dlock__answers *ans;
    pending p;
    void *timer;                        /* the deadline */
} xchg;

struct dlock_client {
    int n;
    dlock_client *parent;            /* a clone's: whose hook it takes and whose totals it adds to */
    void *ext;                       /* another layer's (renew.c: the watchdog) */
    void (*ext_free)(void *ext);
    dlock_hook hook;
    void *hook_ud;
    /* interruption: the flag is read without the lock; the lock and condvar make sleeps wake */
    atomic_bool interrupted;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* back-off jitter */
    dlock__rng rng;
    uint64_t rng_seed;
    bool rng_ready;
    /* statistics; clone_commands is atomic because a watchdog thread sends them */
    atomic_uint_fast64_t commands;
    atomic_uint_fast64_t clone_commands;  /* sent by its clones (a watchdog, a loop's renewer) */
    dlock_stats total;
    dlock_stats last;
    uint64_t commands_at_acquire;
    char err[192];                   /* the last error: a reason, never a password */
    /* on a loop: the hooks that reach it, and the attaching layer's data (async.c) */
    const dlock__io *io;
    void *io_loop;
    void *io_data;
    xchg *x;
    conn conns[];                    /* n of them: a client is sized to its servers */
};

static void conn_drop(conn *cn)
{
    if (cn->watch)
        cn->owner->io->unwatch(cn->watch);
    cn->watch = NULL;
    cn->setup = 0;
    if (cn->ctx) {
        redisFree(cn->ctx);
        cn->ctx = NULL;
    }
}

/* Keeps text (NULL: none) as the connection's refusal, for the answers that will show it. */
static void set_refusal(conn *cn, const char *text)
{
    free(cn->refusal);
    cn->refusal = text ? strdup(text) : NULL;
}

static void conn_clear(conn *cn)
{
    conn_drop(cn);
    set_refusal(cn, NULL);
    dlock__url_clear(&cn->url);
}

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void conn_io(void *ud, bool readable, bool writable);
static void exchange_abandon(dlock_client *c);

/* On a loop, a connection is non-blocking (hiredis then takes EAGAIN as "no data yet") and
 * watched. One connected before the client was attached had AUTH and SELECT done then; one
 * opened on the loop has them in its output buffer (cn->setup). */
static int conn_go_nonblocking(dlock_client *c, conn *cn)
{
    int fl = fcntl(cn->ctx->fd, F_GETFL);
    if (fl < 0 || fcntl(cn->ctx->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        !(cn->watch = c->io->watch(c->io_loop, cn->ctx->fd, conn_io, cn))) {
        snprintf(c->err, sizeof c->err, "%s: cannot watch the connection", cn->url.where);
        conn_drop(cn);
        return -1;
    }
    cn->ctx->flags &= ~REDIS_BLOCK;
    return 0;
}

static int conn_open(dlock_client *c, conn *cn, int64_t timeout_ms, char *err, size_t errlen)
{
    if (c->io) {  /* a loop's thread serves every client on it: no blocking connect or AUTH */
        set_refusal(cn, NULL);
        if (cn->url.sentinel)
            dlock__sentinel_ask_async(&cn->url, c->io, c->io_loop);
        cn->ctx = dlock__connect_nonblock(&cn->url, err, errlen, &cn->setup);
        return cn->ctx ? conn_go_nonblocking(c, cn) : -1;
    }
    char refusal[128] = "";
    cn->ctx = dlock__connect(&cn->url, timeout_ms, err, errlen, refusal, sizeof refusal);
    set_refusal(cn, refusal[0] ? refusal : NULL);
    cn->timeout_ms = timeout_ms;
    return cn->ctx ? 0 : -1;
}

static bool conn_ready(dlock_client *c, conn *cn, int64_t timeout_ms)
{
    if (cn->ctx && cn->url.sentinel && dlock__sentinel_outdated(&cn->url))
        conn_drop(cn);  /* the sentinels have named another primary since it connected */
    if (!cn->ctx && conn_open(c, cn, timeout_ms, c->err, sizeof c->err) < 0)
        return false;
    if (cn->timeout_ms != timeout_ms && !c->io) {
        redisSetTimeout(cn->ctx, tv_ms(timeout_ms));
        cn->timeout_ms = timeout_ms;
    }
    return true;
}

/* ---- the client ---------------------------------------------------------- */

dlock_client *dlock_client_new(const char *const *urls, int n, char *err, size_t errlen)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    if (!urls || n < 1 || n > DLOCK__MAX_SERVERS) {
        snprintf(err, errlen, "need 1 to %d server URLs, got %d", DLOCK__MAX_SERVERS, n);
        return NULL;
    }
    dlock_client *c = calloc(1, sizeof *c + (size_t)n * sizeof(conn));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    dlock__cond_init_monotonic(&c->cv);
    for (int i = 0; i < n; i++, c->n++) {
        c->conns[i].owner = c;
        c->conns[i].index = i;
        if (!urls[i] || dlock__url_parse(&c->conns[i].url, urls[i], err, errlen) < 0 ||
            !(c->conns[i].text = strdup(urls[i])))
            goto fail;
    }
    /* One server: it must answer now. Several (redlock): a server that is down is tolerated and
     * retried on use, since the quorum is the point; a refused AUTH or SELECT never is. */
    for (int i = 0; i < n; i++) {
        if (conn_open(c, &c->conns[i], DLOCK__CONNECT_TIMEOUT_MS, err, errlen) < 0 &&
            (n == 1 || c->conns[i].refusal))
            goto fail;
    }
    return c;
fail:
    dlock_client_free(c);
    return NULL;
}

void dlock_client_free(dlock_client *c)
{
    if (!c)
        return;
    if (c->ext_free)
        c->ext_free(c->ext);
    exchange_abandon(c);
    if (c->io)
        c->io->detach(c);
    for (int i = 0; i < c->n; i++) {
        conn_clear(&c->conns[i]);
        if (c->conns[i].text)
            explicit_bzero(c->conns[i].text, strlen(c->conns[i].text));
        free(c->conns[i].text);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const char *dlock_client_errstr(const dlock_client *c)
{
    return c ? c->err : "no client";
}

void dlock__client_set_err(dlock_client *c, const char *msg)
{
    if (c && msg != c->err)
        snprintf(c->err, sizeof c->err, "%s", msg);
}

int dlock__client_nservers(const dlock_client *c)
{
    return c->n;
}

void dlock_client_set_hook(dlock_client *c, dlock_hook fn, void *ud)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->hook = fn;
    c->hook_ud = ud;
    pthread_mutex_unlock(&c->mu);
}

dlock_client *dlock__client_clone(dlock_client *c, char *err, size_t errlen)
{
    const char *urls[DLOCK__MAX_SERVERS];
    for (int i = 0; i < c->n; i++)
        urls[i] = c->conns[i].text;
    dlock_client *clone = dlock_client_new(urls, c->n, err, errlen);
    if (clone)
        clone->parent = c;
    return clone;
}

void *dlock__client_ext(const dlock_client *c)
{
    return c->ext;
}

void dlock__client_set_ext(dlock_client *c, void *ext, void (*cleanup)(void *ext))
{
    c->ext = ext;
    c->ext_free = cleanup;
}

void dlock_client_interrupt(dlock_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->interrupted, true);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->io)
        c->io->wake(c->io_loop);  /* set once, before any other thread may interrupt */
}

/* An interruption cancels the acquire in progress, or the next one: the machine that acted on
 * it says so, and the request is cleared then. */
void dlock__client_clear_interrupt(dlock_client *c)
{
    atomic_store(&c->interrupted, false);
}

bool dlock__client_interrupt_pending(const dlock_client *c)
{
    return atomic_load(&((dlock_client *)c)->interrupted);
}

bool dlock__client_sleep(dlock_client *c, int64_t us)
{
    if (atomic_load(&c->interrupted))
        return false;
    if (us <= 0)
        return true;
    struct timespec ts = dlock__mono_timespec(dlock__mono_us() + us);
    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&c->interrupted)) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&c->mu);
    return !atomic_load(&c->interrupted);
}

dlock_input dlock__client_input(dlock_client *c, const dlock__op *op)
{
    const dlock_options *o = &op->l->opt;
    dlock_input in = {.now_us = dlock__mono_us(), .interrupted = atomic_load(&c->interrupted)};
    if (dlock__op_reads_wall_clock(op))
        in.wall_ms = o->wallclock ? o->wallclock(o->wallclock_ud) : dlock__wall_ms();
    return in;
}

/* The back-off jitter's generator: seeded from o->seed, or from getrandom when that is 0, and
 * kept across the client's acquires. */
dlock__rng *dlock__client_rng(dlock_client *c, uint64_t seed)
{
    if (seed == 0 && !c->rng_ready) {
        if (dlock__random_bytes(&seed, sizeof seed) < 0)
            seed = (uint64_t)dlock__mono_us() ^ (uint64_t)(uintptr_t)c;
        c->rng_seed = 0;
        dlock__rng_seed(&c->rng, seed);
        c->rng_ready = true;
    } else if (seed != 0 && (!c->rng_ready || seed != c->rng_seed)) {
        c->rng_seed = seed;
        dlock__rng_seed(&c->rng, seed);
        c->rng_ready = true;
    }
    return &c->rng;
}

void dlock__client_begin_acquire(dlock_client *c)
{
    c->commands_at_acquire = atomic_load(&c->commands);
}

void dlock__client_end_acquire(dlock_client *c, uint64_t attempts, int64_t waited_us)
{
    c->last.acquires = 1;
    c->last.attempts = attempts;
    c->last.commands = atomic_load(&c->commands) - c->commands_at_acquire;
    c->last.waited_us = waited_us;
    c->total.acquires++;
    c->total.attempts += attempts;
    c->total.waited_us += waited_us;
}

void dlock_client_stats(const dlock_client *c, dlock_stats *total, dlock_stats *last_acquire)
{
    if (!c) {
        if (total)
            *total = (dlock_stats){0};
        if (last_acquire)
            *last_acquire = (dlock_stats){0};
        return;
    }
    if (total) {
        *total = c->total;
        total->commands = atomic_load(&((dlock_client *)c)->commands) +
                          atomic_load(&((dlock_client *)c)->clone_commands);
    }
    if (last_acquire)
        *last_acquire = c->last;
}

/* ---- exchange ------------------------------------------------------------ */

/* Writes every command of a machine's batch to its server before any reply is read, and reads
 * the replies across all servers against one deadline: a server that is slow costs one command
 * timeout, not one per server, and N servers cost one round trip, not N. */

static void append_cmd(dlock_client *c, conn *cn, const dlock_command *cmd)
{
    redisAppendCommandArgv(cn->ctx, cmd->argc, (const char **)cmd->argv, NULL);
    atomic_fetch_add(c->parent ? &c->parent->clone_commands : &c->commands, 1);
}

/* Writes what is buffered: 1 all of it, 0 some is left (a non-blocking socket is full), -1 the
 * connection failed. A blocking context writes until done. */
static int flush(conn *cn)
{
    int done = 0, rc;
    dlock__pipe_guard g;
    dlock__sigpipe_block(&g);
    do
        rc = redisBufferWrite(cn->ctx, &done);
    while (rc == REDIS_OK && !done && (cn->ctx->flags & REDIS_BLOCK));
    dlock__sigpipe_unblock(&g, rc != REDIS_OK);
    return rc != REDIS_OK ? -1 : done;
}

static void fail_conn(dlock_client *c, conn *cn, const char *why)
{
    snprintf(c->err, sizeof c->err, "%s: %s", cn->url.where, why);
    conn_drop(cn);
    dlock__sentinel_failed(&cn->url);  /* through sentinels: ask them again */
}

static int next_cmd_of(const dlock_action *a, int server, int from)
{
    while (from < a->ncommands && a->commands[from].server != server)
        from++;
    return from;
}

/* Takes the replies already parsed from server s. false when its connection failed. */
static bool drain(conn *cn, int s, const dlock_action *a, redisReply **replies, pending *p)
{
    while (p->want[s] > 0) {
        void *r = NULL;
        if (redisGetReplyFromReader(cn->ctx, &r) != REDIS_OK)
            return false;
        if (!r)
            return true;
        replies[p->next[s]] = r;
        if (cn->url.sentinel && ((redisReply *)r)->type == REDIS_REPLY_ERROR &&
            dlock__error_says_moved(((redisReply *)r)->str))
            dlock__sentinel_failed(&cn->url);  /* READONLY, MASTERDOWN: a failover */
        p->next[s] = next_cmd_of(a, s, p->next[s] + 1);
        p->want[s]--;
    }
    return true;
}

/* Appends every command of a to its server's buffer, connecting where needed (anew where the
 * machine asks). The replies start NULL; a server that cannot be reached keeps them so. A
 * server that refused the connection's AUTH or SELECT has answered all the same: its refusal
 * stands as each of its commands' reply (the machine tells a refusal from a lost connection:
 * retrying cannot mend it). */
static void append_all(dlock_client *c, const dlock_action *a, dlock__answers *ans, pending *p)
{
    int64_t timeout_ms = (a->timeout_us + 999) / 1000;
    memset(p, 0, sizeof *p);
    for (int s = 0; s < c->n; s++)
        p->next[s] = next_cmd_of(a, s, 0);
    for (int i = 0; i < a->ncommands; i++) {
        ans->raw[i] = NULL;
        ans->refusal[i] = NULL;
        if (a->reconnect)
            conn_drop(&c->conns[a->commands[i].server]);
    }
    for (int i = 0; i < a->ncommands; i++) {
        int s = a->commands[i].server;
        conn *cn = &c->conns[s];
        if (p->want[s] < 0 || !conn_ready(c, cn, timeout_ms)) {
            p->want[s] = -1;  /* unreachable for this exchange: its replies stay NULL */
            ans->refusal[i] = cn->refusal;
            continue;
        }
        p->want[s]++;
        if (cn->setup > 0)
            p->held[s] = true;  /* sent once AUTH and SELECT are answered (setup_answered) */
        else
            append_cmd(c, cn, &a->commands[i]);
    }
    for (int s = 0; s < c->n; s++)
        if (p->want[s] < 0)
            p->want[s] = 0;
}

static void read_replies(dlock_client *c, const dlock_action *a, redisReply **replies,
                         pending *p, int64_t deadline_us)
{
    for (;;) {
        struct pollfd fds[DLOCK__MAX_SERVERS];
        int who[DLOCK__MAX_SERVERS], nfds = 0;
        for (int s = 0; s < c->n; s++) {
            if (p->want[s] > 0 && !drain(&c->conns[s], s, a, replies, p))
                p->want[s] = 0, conn_drop(&c->conns[s]);
            if (p->want[s] > 0) {
                fds[nfds] = (struct pollfd){.fd = c->conns[s].ctx->fd, .events = POLLIN};
                who[nfds++] = s;
            }
        }
        if (nfds == 0)
            return;
        int64_t left_us = deadline_us - dlock__mono_us();
        int rc = left_us > 0 ? poll(fds, (nfds_t)nfds, (int)((left_us + 999) / 1000)) : 0;
        if (rc == 0 || (rc < 0 && errno != EINTR)) {
            /* Out of time: these servers' streams are mid-reply, so start them afresh. */
            for (int i = 0; i < nfds; i++) {
                p->want[who[i]] = 0;
                fail_conn(c, &c->conns[who[i]], "command timed out");
            }
            return;
        }
        for (int i = 0; i < nfds; i++) {
            conn *cn = &c->conns[who[i]];
            if (fds[i].revents && redisBufferRead(cn->ctx) != REDIS_OK) {
                p->want[who[i]] = 0;
                fail_conn(c, cn, cn->ctx->errstr);
            }
        }
    }
}

/* The hook, before every command of the batch: false when it cancels. */
static bool hook_allows(dlock_client *c, const dlock_action *a)
{
    dlock_client *h = c->parent ? c->parent : c;  /* a clone sends through its parent's hook */
    pthread_mutex_lock(&h->mu);  /* the hook may be replaced while a watchdog sends */
    dlock_hook hook = h->hook;
    void *hook_ud = h->hook_ud;
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < a->ncommands; i++) {
        if (hook && hook(hook_ud, a->commands[i].argv[0]) != 0) {
            snprintf(c->err, sizeof c->err, "canceled by the client's hook");
            return false;
        }
    }
    return true;
}

static bool answers_begin(dlock_client *c, const dlock_action *a, dlock__answers *ans)
{
    ans->n = a->ncommands;
    for (int i = 0; i < ans->n; i++) {
        ans->raw[i] = NULL;
        ans->refusal[i] = NULL;
    }
    return hook_allows(c, a);
}

int dlock__exchange(dlock_client *c, const dlock_action *a, dlock__answers *ans)
{
    pending p;
    if (!answers_begin(c, a, ans))
        return DLOCK_ECANCELED;
    append_all(c, a, ans, &p);
    /* The deadline starts once every server is connected: a reconnect (with its own timeout)
     * must not eat the time the healthy servers have to answer. */
    int64_t deadline_us = dlock__mono_us() + a->timeout_us;
    for (int s = 0; s < c->n; s++) {
        if (p.want[s] > 0 && flush(&c->conns[s]) < 0) {
            p.want[s] = 0;
            fail_conn(c, &c->conns[s], c->conns[s].ctx->errstr);
        }
    }
    read_replies(c, a, ans->raw, &p, deadline_us);
    dlock__answers_view(ans);
    return DLOCK_OK;
}

/* ---- the non-blocking exchange (on a loop) --------------------------------- *
 * The same exchange in one round: it appends and writes the batch and returns; conn_io reads
 * replies as they come, the timer cuts it off at the deadline; then the loop is told. A server
 * whose connection is new gets its AUTH and SELECT first, and the batch once they are answered,
 * all before the same deadline: a server that accepts connections and never answers (stopped,
 * a black hole) costs the loop nothing but the timer. */

static bool waiting(const xchg *x, int nservers)
{
    for (int s = 0; s < nservers; s++)
        if (x->p.want[s] > 0)
            return true;
    return false;
}

int dlock__exchange_start(dlock_client *c, const dlock_action *a, dlock__answers *ans,
                          bool *pending_out)
{
    xchg *x = c->x;
    *pending_out = false;
    if (!answers_begin(c, a, ans))
        return DLOCK_ECANCELED;
    x->a = a;
    x->ans = ans;
    append_all(c, a, ans, &x->p);
    for (int s = 0; s < c->n; s++) {
        conn *cn = &c->conns[s];
        if (x->p.want[s] == 0)
            continue;
        int rc = flush(cn);
        if (rc < 0) {
            x->p.want[s] = 0;
            fail_conn(c, cn, cn->ctx->errstr);
        } else {
            c->io->want_write(cn->watch, rc == 0);
        }
    }
    x->active = waiting(x, c->n);
    if (x->active)
        c->io->timer_start(x->timer, a->timeout_us);
    else
        dlock__answers_view(ans);
    *pending_out = x->active;
    return DLOCK_OK;
}

/* A new connection's AUTH or SELECT was refused: that answers its commands of the batch
 * (see append_all), and the connection ends. */
static void refuse_batch(dlock_client *c, conn *cn, int s)
{
    xchg *x = c->x;
    for (int i = next_cmd_of(x->a, s, 0); i < x->a->ncommands; i = next_cmd_of(x->a, s, i + 1))
        x->ans->refusal[i] = cn->refusal;
    x->p.want[s] = 0;
    x->p.held[s] = false;
    fail_conn(c, cn, cn->refusal);
}

/* A new connection's AUTH and SELECT are answered before its commands of the batch are sent:
 * behind a SELECT that failed they would run in another database. false when the connection
 * failed (a refusal is an answer: true, the connection closed). */
static bool setup_answered(dlock_client *c, conn *cn, int s)
{
    xchg *x = c->x;
    while (cn->setup > 0) {
        void *r = NULL;
        if (redisGetReplyFromReader(cn->ctx, &r) != REDIS_OK)
            return false;
        if (!r)
            return true;  /* not yet */
        const redisReply *rr = r;
        bool refused = rr->type == REDIS_REPLY_ERROR;
        char why[64];
        if (rr->type == REDIS_REPLY_ARRAY && !dlock__role_is_master(rr, why, sizeof why)) {
            /* a sentinel:// connection's ROLE: a replica, so the sentinels are asked again */
            freeReplyObject(r);
            cn->ctx->err = REDIS_ERR_OTHER;
            snprintf(cn->ctx->errstr, sizeof cn->ctx->errstr, "not the primary (%s)", why);
            return false;
        }
        if (refused)
            set_refusal(cn, rr->str[0] ? rr->str : "ERR refused");
        freeReplyObject(r);
        if (refused) {
            refuse_batch(c, cn, s);
            return true;
        }
        cn->setup--;
    }
    if (x->p.held[s]) {
        x->p.held[s] = false;
        for (int i = next_cmd_of(x->a, s, 0); i < x->a->ncommands; i = next_cmd_of(x->a, s, i + 1))
            append_cmd(c, cn, &x->a->commands[i]);
        int rc = flush(cn);
        if (rc < 0)
            return false;
        c->io->want_write(cn->watch, rc == 0);
    }
    return true;
}

/* What server s has answered so far: its connection's setup, then the batch's replies. false
 * when its connection failed. */
static bool take_replies(dlock_client *c, conn *cn, int s)
{
    xchg *x = c->x;
    if (!setup_answered(c, cn, s))
        return false;
    return !cn->ctx || cn->setup > 0 || drain(cn, s, x->a, x->ans->raw, &x->p);
}

static void exchange_progress(dlock_client *c)
{
    xchg *x = c->x;
    if (x->active && !waiting(x, c->n)) {
        c->io->timer_stop(x->timer);
        x->active = false;
        dlock__answers_view(x->ans);
        c->io->exchanged(c);
    }
}

static void conn_io(void *ud, bool readable, bool writable)
{
    conn *cn = ud;
    dlock_client *c = cn->owner;
    xchg *x = c->x;
    int s = cn->index;
    if (writable) {
        int rc = flush(cn);
        if (rc < 0) {
            x->p.want[s] = 0;
            fail_conn(c, cn, cn->ctx->errstr);
        } else if (rc == 1) {
            c->io->want_write(cn->watch, false);
        }
    }
    if (readable && cn->ctx) {
        /* Outside an exchange only an error or the server's goodbye can come: either ends
         * the connection, and the next command reconnects. */
        if (redisBufferRead(cn->ctx) != REDIS_OK ||
            (x->active && !take_replies(c, cn, s))) {
            x->p.want[s] = 0;
            fail_conn(c, cn, cn->ctx->errstr[0] ? cn->ctx->errstr : "protocol error");
        } else if (cn->ctx && (!x->active || x->p.want[s] == 0)) {
            void *stray = NULL;  /* a reply nobody asked for: the stream is out of step */
            if (redisGetReplyFromReader(cn->ctx, &stray) == REDIS_OK && stray) {
                freeReplyObject(stray);
                fail_conn(c, cn, "unexpected reply");
            }
        }
    }
    exchange_progress(c);
}

/* Reads and takes the replies server s has sent already, without waiting: false when its
 * connection failed. Bounded: lock replies are small, and what is still missing after this
 * much has not come. */
static bool take_arrived(dlock_client *c, int s)
{
    xchg *x = c->x;
    conn *cn = &c->conns[s];
    for (int i = 0; i < 64 && x->p.want[s] > 0; i++) {
        struct pollfd pfd = {.fd = cn->ctx->fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
            break;
        if (redisBufferRead(cn->ctx) != REDIS_OK || !take_replies(c, cn, s))
            return false;
    }
    return true;
}

/* The deadline passed. The replies may have come all the same and wait unread: the loop was
 * busy (a slow callback, or more connections ready than one round's events cover) when they
 * arrived. What has come is taken; only a server that still owes replies failed. */
static void round_timeout(void *ud)
{
    dlock_client *c = ud;
    xchg *x = c->x;
    for (int s = 0; s < c->n; s++) {
        if (x->p.want[s] <= 0)
            continue;
        conn *cn = &c->conns[s];
        if (!take_arrived(c, s)) {
            x->p.want[s] = 0;
            fail_conn(c, cn, cn->ctx->errstr[0] ? cn->ctx->errstr : "protocol error");
        } else if (x->p.want[s] > 0) {
            x->p.want[s] = 0;
            fail_conn(c, cn, "command timed out");
        }
    }
    exchange_progress(c);
}

/* The connections already open go non-blocking (one that cannot is dropped and reopened on
 * use). */
int dlock__client_attach_io(dlock_client *c, const dlock__io *io, void *loop, void *data)
{
    if (!(c->x = calloc(1, sizeof *c->x)) || !(c->x->timer = io->timer(loop, round_timeout, c))) {
        free(c->x);
        c->x = NULL;
        return DLOCK_ENOMEM;
    }
    c->io = io;
    c->io_loop = loop;
    c->io_data = data;
    for (int s = 0; s < c->n; s++)
        if (c->conns[s].ctx)
            conn_go_nonblocking(c, &c->conns[s]);
    return DLOCK_OK;
}

/* An exchange cut short by dlock_client_free: the replies it already has. */
static void exchange_abandon(dlock_client *c)
{
    xchg *x = c->x;
    if (!x)
        return;
    if (x->active)
        dlock__answers_clear(x->ans);
    c->io->timer_free(x->timer);
    free(x);
    c->x = NULL;
}

bool dlock__client_on_loop(dlock_client *c)
{
    if (c && c->io) {
        snprintf(c->err, sizeof c->err, "this client runs on a loop: use the _async calls");
        return true;
    }
    return false;
}

/* What the client itself takes in memory (not hiredis's contexts): its block, its URLs, and on a
 * loop its exchange's block. */
size_t dlock__client_footprint(const dlock_client *c)
{
    size_t n = sizeof *c + (size_t)c->n * sizeof(conn) + (c->x ? sizeof *c->x : 0);
    for (int i = 0; i < c->n; i++) {
        const dlock__url *u = &c->conns[i].url;
        const char *strs[] = {c->conns[i].text, u->host, u->path, u->user, u->pass,
                              c->conns[i].refusal};
        for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
            n += strs[k] ? strlen(strs[k]) + 1 : 0;
    }
    return n;
}

void *dlock__client_io_data(const dlock_client *c)
{
    return c->io_data;
}
