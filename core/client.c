/* client.c -- a client: its connections (reconnected after any error), interruption, statistics,
 * and the exchange of one batch of commands with a deadline. URLs and connecting are in
 * connect.c.
 *
 * A batch's commands are written to all their servers before any reply is read, and the
 * replies are read with poll(2) across all servers against one deadline: a server that is slow
 * costs one command timeout, not one per server, and N servers cost one round trip, not N. (A
 * server that must be reconnected first costs its connect timeout on top.)
 * A context that timed out or failed is dropped (its stream position is unknown) and reconnected
 * on next use. Writes run under connect.c's SIGPIPE guard. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "connect.h"
#include "internal.h"

typedef struct conn {
    dlock__url url;
    redisContext *ctx;
    int64_t timeout_ms;  /* the socket timeout set on ctx */
} conn;

struct dlock_client {
    int n;
    conn conns[DLOCK__MAX_SERVERS];
    char *urls[DLOCK__MAX_SERVERS];  /* kept to open the watchdog's own connections */
    dlock__watchdog *watchdog;       /* started by the first renewed lock */
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
    /* statistics; commands is atomic because a watchdog thread sends too */
    atomic_uint_fast64_t commands;
    dlock_stats total;
    dlock_stats last;
    uint64_t commands_at_acquire;
    char err[256];
};

static void conn_drop(conn *cn)
{
    if (cn->ctx) {
        redisFree(cn->ctx);
        cn->ctx = NULL;
    }
}

static void conn_clear(conn *cn)
{
    conn_drop(cn);
    dlock__url_clear(&cn->url);
}

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static int conn_open(conn *cn, int64_t timeout_ms, char *err, size_t errlen, bool *refused)
{
    cn->ctx = dlock__connect(&cn->url, timeout_ms, err, errlen, refused);
    cn->timeout_ms = timeout_ms;
    return cn->ctx ? 0 : -1;
}

static bool conn_ready(dlock_client *c, conn *cn, int64_t timeout_ms)
{
    bool refused;
    if (!cn->ctx && conn_open(cn, timeout_ms, c->err, sizeof c->err, &refused) < 0)
        return false;
    if (cn->timeout_ms != timeout_ms) {
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
    dlock_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    dlock__cond_init_monotonic(&c->cv);
    for (int i = 0; i < n; i++, c->n++) {
        if (!urls[i] || dlock__url_parse(&c->conns[i].url, urls[i], err, errlen) < 0 ||
            !(c->urls[i] = strdup(urls[i])))
            goto fail;
    }
    /* One server: it must answer now. Several (redlock): a server that is down is tolerated and
     * retried on use, since the quorum is the point; a refused AUTH or SELECT never is. */
    for (int i = 0; i < n; i++) {
        bool refused;
        if (conn_open(&c->conns[i], DLOCK__CONNECT_TIMEOUT_MS, err, errlen, &refused) < 0 &&
            (n == 1 || refused))
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
    dlock__watchdog_free(c->watchdog);
    for (int i = 0; i < c->n; i++) {
        conn_clear(&c->conns[i]);
        if (c->urls[i])
            explicit_bzero(c->urls[i], strlen(c->urls[i]));
        free(c->urls[i]);
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
    if (c->watchdog)
        dlock__client_copy_hook(dlock__watchdog_conn(c->watchdog), c);
}

void dlock__client_copy_hook(dlock_client *dst, const dlock_client *src)
{
    pthread_mutex_lock(&((dlock_client *)src)->mu);
    dlock_hook fn = src->hook;
    void *ud = src->hook_ud;
    pthread_mutex_unlock(&((dlock_client *)src)->mu);
    pthread_mutex_lock(&dst->mu);
    dst->hook = fn;
    dst->hook_ud = ud;
    pthread_mutex_unlock(&dst->mu);
}

dlock_client *dlock__client_clone(const dlock_client *c, char *err, size_t errlen)
{
    dlock_client *clone = dlock_client_new((const char *const *)c->urls, c->n, err, errlen);
    if (clone)
        dlock__client_copy_hook(clone, c);
    return clone;
}

dlock__watchdog **dlock__client_watchdog(dlock_client *c)
{
    return &c->watchdog;
}

void dlock_client_interrupt(dlock_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->interrupted, true);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Reads and clears the interruption: it cancels the acquire in progress, or the next one. */
bool dlock__client_interrupted(const dlock_client *c)
{
    return atomic_exchange(&((dlock_client *)c)->interrupted, false);
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

dlock__rng *dlock__client_rng(dlock_client *c, uint64_t seed)
{
    if (seed == 0 && !c->rng_ready) {
        if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
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
                          dlock__watchdog_commands(c->watchdog);
    }
    if (last_acquire)
        *last_acquire = c->last;
}

/* ---- exchange ------------------------------------------------------------ */

/* Appends one command; scripts go as EVALSHA, or EVAL when eval is set. */
static int append_cmd(redisContext *ctx, const dlock__cmd *cmd, bool eval)
{
    const char *argv[DLOCK__MAX_ARGV + 3];
    char nkeys[8];
    int argc = 0;
    if (cmd->script) {
        snprintf(nkeys, sizeof nkeys, "%d", cmd->nkeys);
        argv[argc++] = eval ? "EVAL" : "EVALSHA";
        argv[argc++] = eval ? cmd->script->text : cmd->script->sha;
        argv[argc++] = nkeys;
    }
    for (int i = 0; i < cmd->argc; i++)
        argv[argc++] = cmd->argv[i];
    return redisAppendCommandArgv(ctx, argc, argv, NULL);
}

static bool flush(conn *cn)
{
    int done = 0;
    dlock__pipe_guard g;
    dlock__sigpipe_block(&g);
    while (!done && redisBufferWrite(cn->ctx, &done) == REDIS_OK)
        ;
    dlock__sigpipe_unblock(&g, !done);
    return done;
}

typedef struct pending {
    int want[DLOCK__MAX_SERVERS];  /* replies still expected from each server */
    int next[DLOCK__MAX_SERVERS];  /* the batch index the next reply of each server answers */
} pending;

static int next_cmd_of(const dlock__batch *b, int server, int from)
{
    while (from < b->n && b->cmd[from].server != server)
        from++;
    return from;
}

/* Takes the replies already parsed from server s. false when its connection failed. */
static bool drain(conn *cn, int s, const dlock__batch *b, redisReply **replies, pending *p)
{
    while (p->want[s] > 0) {
        void *r = NULL;
        if (redisGetReplyFromReader(cn->ctx, &r) != REDIS_OK)
            return false;
        if (!r)
            return true;
        replies[p->next[s]] = r;
        p->next[s] = next_cmd_of(b, s, p->next[s] + 1);
        p->want[s]--;
    }
    return true;
}

static void read_replies(dlock_client *c, const dlock__batch *b, redisReply **replies,
                         pending *p, int64_t deadline_us)
{
    for (;;) {
        struct pollfd fds[DLOCK__MAX_SERVERS];
        int who[DLOCK__MAX_SERVERS], nfds = 0;
        for (int s = 0; s < c->n; s++) {
            if (p->want[s] > 0 && !drain(&c->conns[s], s, b, replies, p))
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
                snprintf(c->err, sizeof c->err, "%s: command timed out", c->conns[who[i]].url.where);
                p->want[who[i]] = 0;
                conn_drop(&c->conns[who[i]]);
            }
            return;
        }
        for (int i = 0; i < nfds; i++) {
            if (fds[i].revents && redisBufferRead(c->conns[who[i]].ctx) != REDIS_OK) {
                snprintf(c->err, sizeof c->err, "%s: %s", c->conns[who[i]].url.where,
                         c->conns[who[i]].ctx->errstr);
                p->want[who[i]] = 0;
                conn_drop(&c->conns[who[i]]);
            }
        }
    }
}

/* Writes every command of b to its server, then reads every reply against one deadline.
 * Scripts go as EVALSHA, or as EVAL when eval is set. Unanswered replies stay NULL. */
static void send_and_read(dlock_client *c, const dlock__batch *b, redisReply **replies,
                          int64_t timeout_ms, bool eval)
{
    pending p = {{0}, {0}};
    for (int s = 0; s < c->n; s++)
        p.next[s] = next_cmd_of(b, s, 0);
    for (int i = 0; i < b->n; i++)
        replies[i] = NULL;
    for (int i = 0; i < b->n; i++) {
        int s = b->cmd[i].server;
        conn *cn = &c->conns[s];
        if (p.want[s] < 0 || !conn_ready(c, cn, timeout_ms)) {
            p.want[s] = -1;  /* unreachable for this exchange: its replies stay NULL */
            continue;
        }
        append_cmd(cn->ctx, &b->cmd[i], eval);
        p.want[s]++;
        atomic_fetch_add(&c->commands, 1);
    }
    /* The deadline starts once every server is connected: a reconnect (with its own timeout)
     * must not eat the time the healthy servers have to answer. */
    int64_t deadline_us = dlock__mono_us() + (timeout_ms + b->block_ms) * 1000;
    for (int s = 0; s < c->n; s++) {
        if (p.want[s] < 0)
            p.want[s] = 0;
        if (p.want[s] > 0 && !flush(&c->conns[s])) {
            snprintf(c->err, sizeof c->err, "%s: %s", c->conns[s].url.where, c->conns[s].ctx->errstr);
            p.want[s] = 0;
            conn_drop(&c->conns[s]);
        }
    }
    read_replies(c, b, replies, &p, deadline_us);
}

static bool is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Servers that lost their script cache (a restart, SCRIPT FLUSH) get the scripts' text, all in
 * one more round trip; EVAL caches them again. */
static void resend_noscript(dlock_client *c, const dlock__batch *b, redisReply **replies,
                            int64_t timeout_ms)
{
    dlock__batch retry = {.n = 0, .block_ms = b->block_ms};
    int from[DLOCK__MAX_BATCH];
    redisReply *again[DLOCK__MAX_BATCH];
    for (int i = 0; i < b->n; i++) {
        if (!is_noscript(replies[i]))
            continue;
        freeReplyObject(replies[i]);
        replies[i] = NULL;
        from[retry.n] = i;
        retry.cmd[retry.n++] = b->cmd[i];
    }
    if (retry.n == 0)
        return;
    send_and_read(c, &retry, again, timeout_ms, true);
    for (int k = 0; k < retry.n; k++)
        replies[from[k]] = again[k];
}

int dlock__exchange(dlock_client *c, const dlock__batch *b, redisReply **replies,
                    int64_t timeout_ms)
{
    for (int i = 0; i < b->n; i++)
        replies[i] = NULL;
    pthread_mutex_lock(&c->mu);  /* the hook may be replaced while a watchdog sends */
    dlock_hook hook = c->hook;
    void *hook_ud = c->hook_ud;
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < b->n; i++) {
        if (hook && hook(hook_ud, dlock__cmd_name(&b->cmd[i])) != 0) {
            snprintf(c->err, sizeof c->err, "canceled by the client's hook");
            return DLOCK_ECANCELED;
        }
    }
    send_and_read(c, b, replies, timeout_ms, false);
    resend_noscript(c, b, replies, timeout_ms);
    return DLOCK_OK;
}

/* ---- the fencing check on the protected resource ----------------------- */

int dlock_fenced_set(dlock_client *c, const char *key, uint64_t fence, const char *value)
{
    if (!c || !key || !value || fence == 0)
        return DLOCK_EINVAL;
    char *fence_key = NULL, token[24];
    if (asprintf(&fence_key, "%s:fence", key) < 0)
        return DLOCK_ENOMEM;
    snprintf(token, sizeof token, "%" PRIu64, fence);
    dlock__batch b = {.n = 0};
    redisReply *r[1];
    dlock__add_script(&b, 0, &dlock__script_fenced_set, 2, key, fence_key, token, value, NULL);
    int rc = dlock__exchange(c, &b, r, c->conns[0].timeout_ms > 0 ? c->conns[0].timeout_ms
                                                                  : DLOCK__CONNECT_TIMEOUT_MS);
    if (rc != DLOCK_OK) {
        free(fence_key);
        return rc;  /* the hook cancelled it: nothing was sent */
    }
    if (r[0] && r[0]->type == REDIS_REPLY_INTEGER) {
        rc = r[0]->integer == 1 ? DLOCK_OK : DLOCK_ESTALE;
    } else {
        snprintf(c->err, sizeof c->err, "fenced write: %s",
                 r[0] ? (r[0]->str ? r[0]->str : "unexpected reply") : "no reply");
        rc = DLOCK_EIO;
    }
    freeReplyObject(r[0]);
    free(fence_key);
    return rc;
}
