/* sentinel.c -- sentinel:// URLs: connecting to the primary that Redis Sentinel names.
 *
 * A client with sentinel://[user:password@]s1:port,s2:port/NAME[/db] asks the sentinels in
 * turn (`SENTINEL get-master-addr-by-name NAME`) for the primary, connects to it with AUTH and
 * SELECT, and checks that `ROLE` says master. The user and password are the primary's: the
 * sentinels are asked without AUTH, as they usually run.
 *
 * Discovery is shared. Every URL naming the same sentinels and master resolves through one
 * resolver per process, which caches the primary's address with a generation number that moves
 * when the address changes. A connection that fails, times out, finds a replica (ROLE), or gets
 * -READONLY or -MASTERDOWN marks the address suspect; the next connect that is due asks the
 * sentinels again -- one query in flight at a time, and at most one every
 * DLOCK__SENTINEL_REQUERY_MS -- while every other client waits for it (blocking) or uses the
 * address it has (on a loop) and retries under its own back-off. So a failover costs a number of
 * queries bounded by its duration, not by the number of clients; connections to an older
 * generation's address are dropped on their next use. Blocking clients ask on their own thread;
 * a client on a loop asks without blocking, through the loop's hooks (client.c's dlock__io),
 * with hiredis's non-blocking reader, as client.c's exchanges do. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sentinel.h"

#define EXPECTED "(expected sentinel://[user:password@]host:port[,host:port...]/master-name[/db])"
#define DEFAULT_PORT 26379
#define HOST_MAX 256

typedef struct query query;

struct dlock__resolver {
    dlock__resolver *next;            /* the registry's list */
    int refs;                         /* under the registry's lock */
    int n;                            /* whom to ask: fixed at creation */
    char *host[DLOCK__MAX_SENTINELS];
    int port[DLOCK__MAX_SENTINELS];
    char *master;
    pthread_mutex_t mu;
    pthread_cond_t cv;                /* a query ended */
    char primary[HOST_MAX];           /* the answer, under mu */
    int primary_port;
    _Atomic uint64_t gen;             /* moves with every new address; 0 = none yet */
    atomic_bool suspect;              /* a connection found the current address wrong */
    bool asking;                      /* a query is in flight (under mu) */
    int64_t asked_us;                 /* when the last query ended */
    int first;                        /* the sentinel that answered last: asked first */
    char why[160];                    /* why the last query found nothing */
    query *q;                         /* a loop's query in flight */
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static dlock__resolver *registry;
static atomic_uint_fast64_t queries;

uint64_t dlock__sentinel_queries(void)
{
    return atomic_load(&queries);
}

/* ---- parsing ------------------------------------------------------------------------ */

static int bad(dlock__url *u, char *err, size_t errlen, const char *part, int host)
{
    if (host > 0)
        snprintf(err, errlen, "bad sentinel URL: host %d: %s %s", host, part, EXPECTED);
    else
        snprintf(err, errlen, "bad sentinel URL: %s %s", part, EXPECTED);
    dlock__url_clear(u);
    return -1;
}

/* One "host[:port]" or "[v6][:port]" of the list, [p, end). NULL when fine, else what is
 * wrong. */
static const char *parse_host(dlock__sentinel *s, const char *p, const char *end)
{
    const char *host = p, *host_end;
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(end - p));
        if (!host_end)
            return "unclosed [";
        host++;
        p = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        host_end = host_end ? host_end : end;
        p = host_end;
    }
    if (host_end == host)
        return "empty host";
    int port = DEFAULT_PORT;
    if (p < end && (*p != ':' || !dlock__url_int(p + 1, (size_t)(end - p - 1), 1, 65535, &port)))
        return "bad port";
    if (!(s->host[s->n] = strndup(host, (size_t)(host_end - host))))
        return "out of memory";
    s->port[s->n++] = port;
    return NULL;
}

static void describe(dlock__url *u)
{
    dlock__sentinel *s = u->sentinel;
    int len = snprintf(u->where, sizeof u->where, "%s via ", s->master);
    for (int i = 0; i < s->n && len > 0 && (size_t)len < sizeof u->where; i++)
        len += snprintf(u->where + len, sizeof u->where - (size_t)len,
                        strchr(s->host[i], ':') ? "%s[%s]:%d" : "%s%s:%d", i ? "," : "",
                        s->host[i], s->port[i]);
}

int dlock__sentinel_url_parse(dlock__url *u, const char *url, char *err, size_t errlen)
{
    dlock__sentinel *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    u->sentinel = s;
    const char *p = dlock__url_userinfo(u, url + strlen("sentinel://"));
    const char *hosts_end = p + strcspn(p, "/");
    if (hosts_end == p)
        return bad(u, err, errlen, "empty host list", 0);
    for (const char *h = p; h < hosts_end;) {
        const char *close = *h == '[' ? memchr(h, ']', (size_t)(hosts_end - h)) : h;
        const char *comma = memchr(close ? close : h, ',', (size_t)(hosts_end - (close ? close : h)));
        const char *end = comma ? comma : hosts_end;
        if (s->n == DLOCK__MAX_SENTINELS)
            return bad(u, err, errlen, "too many hosts (at most 16)", 0);
        const char *why = parse_host(s, h, end);
        if (why)
            return bad(u, err, errlen, why, s->n + 1);
        h = comma ? comma + 1 : end;
        if (comma && h == hosts_end)
            return bad(u, err, errlen, "empty host", s->n + 1);
    }
    if (*hosts_end != '/' || hosts_end[1] == '/' || hosts_end[1] == '\0')
        return bad(u, err, errlen, "no master name", 0);
    const char *name = hosts_end + 1;
    size_t len = strcspn(name, "/");
    if (!(s->master = strndup(name, len)))
        return bad(u, err, errlen, "out of memory", 0);
    const char *db = name + len;
    if (*db == '/' && db[1] != '\0' && !dlock__url_int(db + 1, strlen(db + 1), 0, 1 << 20, &u->db))
        return bad(u, err, errlen, "bad db", 0);
    describe(u);
    return 0;
}

/* ---- the process's resolvers ------------------------------------------------------------ */

static bool same_target(const dlock__resolver *r, const dlock__sentinel *s)
{
    if (r->n != s->n || strcmp(r->master, s->master) != 0)
        return false;
    for (int i = 0; i < s->n; i++)
        if (r->port[i] != s->port[i] || strcmp(r->host[i], s->host[i]) != 0)
            return false;
    return true;
}

static void resolver_destroy(dlock__resolver *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->host[i]);
    free(r->master);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static dlock__resolver *resolver_new(const dlock__sentinel *s)
{
    dlock__resolver *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    dlock__cond_init_monotonic(&r->cv);
    bool ok = (r->master = strdup(s->master)) != NULL;
    for (int i = 0; i < s->n; i++, r->n++) {
        r->port[i] = s->port[i];
        ok = ok && (r->host[i] = strdup(s->host[i])) != NULL;
    }
    if (!ok) {
        resolver_destroy(r);
        return NULL;
    }
    snprintf(r->why, sizeof r->why, "not asked yet");
    return r;
}

/* s's resolver: the process's one for its sentinels and master, made on first use. */
static dlock__resolver *resolver_of(dlock__sentinel *s)
{
    if (s->r)
        return s->r;
    pthread_mutex_lock(&registry_mu);
    dlock__resolver *r = registry;
    while (r && !same_target(r, s))
        r = r->next;
    if (!r && (r = resolver_new(s))) {
        r->next = registry;
        registry = r;
    }
    if (r)
        r->refs++;
    pthread_mutex_unlock(&registry_mu);
    return s->r = r;
}

static void resolver_put(dlock__resolver *r)
{
    pthread_mutex_lock(&registry_mu);
    bool last = --r->refs == 0;
    if (last) {
        dlock__resolver **pp = &registry;
        while (*pp != r)
            pp = &(*pp)->next;
        *pp = r->next;
    }
    pthread_mutex_unlock(&registry_mu);
    if (last)
        resolver_destroy(r);
}

/* Under mu: whether a query should start now -- no address yet, or a suspect one -- and the
 * last one ended long enough ago. */
static bool query_due(const dlock__resolver *r, int64_t now_us)
{
    if (r->asking || (atomic_load(&r->gen) != 0 && !atomic_load(&r->suspect)))
        return false;
    return r->asked_us == 0 || now_us - r->asked_us >= DLOCK__SENTINEL_REQUERY_MS * 1000;
}

/* Under mu: a query ended, with the address (host non-NULL) that sentinel idx gave. */
static void query_ended(dlock__resolver *r, const char *host, int port, int idx)
{
    if (host) {
        if (atomic_load(&r->gen) == 0 || r->primary_port != port || strcmp(r->primary, host) != 0) {
            snprintf(r->primary, sizeof r->primary, "%s", host);
            r->primary_port = port;
            atomic_fetch_add(&r->gen, 1);
        }
        atomic_store(&r->suspect, false);
        r->first = idx;
    }
    r->asking = false;
    r->asked_us = dlock__mono_us();
    pthread_cond_broadcast(&r->cv);
}

/* A sentinel's answer: ["host", "port"]; false with why otherwise (nil: it does not know the
 * master). */
static bool read_address(const redisReply *rr, char *host, int *port, char *why, size_t whylen)
{
    if (rr->type == REDIS_REPLY_ARRAY && rr->elements == 2 &&
        rr->element[0]->type == REDIS_REPLY_STRING && rr->element[1]->type == REDIS_REPLY_STRING &&
        rr->element[0]->len > 0 && rr->element[0]->len < HOST_MAX &&
        dlock__url_int(rr->element[1]->str, rr->element[1]->len, 1, 65535, port)) {
        memcpy(host, rr->element[0]->str, rr->element[0]->len + 1);
        return true;
    }
    snprintf(why, whylen, "%s", rr->type == REDIS_REPLY_NIL ? "the master is unknown to it"
                                : rr->type == REDIS_REPLY_ERROR ? rr->str : "unexpected reply");
    return false;
}

static void count_query(void)
{
    atomic_fetch_add(&queries, 1);
}

static const char *const ask_argv[3] = {"SENTINEL", "get-master-addr-by-name", NULL};

/* The time left until deadline_us, in ms: at least 1, as hiredis takes no zero timeout. */
static int64_t ms_left(int64_t deadline_us)
{
    int64_t ms = (deadline_us - dlock__mono_us()) / 1000;
    return ms < 1 ? 1 : ms;
}

/* The blocking query: each sentinel in turn, the last one to answer first, each given at most
 * DLOCK__SENTINEL_ASK_MS of what is left until deadline_us. */
static bool ask_blocking(dlock__resolver *r, int first, int64_t deadline_us, char *host,
                         int *port, int *idx, char *why, size_t whylen)
{
    const char *argv[3] = {ask_argv[0], ask_argv[1], r->master};
    snprintf(why, whylen, "no time left to ask the sentinels");
    for (int k = 0; k < r->n && dlock__mono_us() < deadline_us; k++) {
        int64_t ms = ms_left(deadline_us);
        if (ms > DLOCK__SENTINEL_ASK_MS)
            ms = DLOCK__SENTINEL_ASK_MS;
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        int i = (first + k) % r->n;
        redisContext *ctx = redisConnectWithTimeout(r->host[i], r->port[i], tv);
        redisReply *rr = NULL;
        if (ctx && !ctx->err && redisSetTimeout(ctx, tv) == REDIS_OK) {
            dlock__pipe_guard g;
            dlock__sigpipe_block(&g);
            count_query();
            rr = redisCommandArgv(ctx, 3, argv, NULL);
            dlock__sigpipe_unblock(&g, rr == NULL);
        }
        char what[96];
        bool ok = rr && read_address(rr, host, port, what, sizeof what);
        if (!rr)
            snprintf(what, sizeof what, "%.90s", ctx ? ctx->errstr : "out of memory");
        if (!ok)
            snprintf(why, whylen, "sentinel %s:%d: %s", r->host[i], r->port[i], what);
        freeReplyObject(rr);
        redisFree(ctx);
        if (ok) {
            *idx = i;
            return true;
        }
    }
    return false;
}

/* The address to connect to, asking the sentinels first when a query is due; a query another
 * thread has in flight is waited for, up to deadline_us. A loop's query is not: this may be that
 * loop's thread (a client made in one of its callbacks), and the address at hand will do for a
 * try. */
static int resolve_blocking(dlock__resolver *r, int64_t deadline_us, char *host, int *port,
                            uint64_t *gen, char *err, size_t errlen)
{
    struct timespec until = dlock__mono_timespec(deadline_us);
    pthread_mutex_lock(&r->mu);
    while (r->asking && !r->q && pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT)
        ;
    if (query_due(r, dlock__mono_us())) {
        r->asking = true;
        int first = r->first, idx = 0;
        char h[HOST_MAX], why[sizeof r->why];
        pthread_mutex_unlock(&r->mu);
        bool ok = ask_blocking(r, first, deadline_us, h, port, &idx, why, sizeof why);
        pthread_mutex_lock(&r->mu);
        if (!ok)
            snprintf(r->why, sizeof r->why, "%s", why);
        query_ended(r, ok ? h : NULL, *port, idx);
    }
    *gen = atomic_load(&r->gen);
    if (*gen == 0)
        snprintf(err, errlen, "no sentinel named the primary of %s (%s)", r->master, r->why);
    snprintf(host, HOST_MAX, "%s", r->primary);
    *port = r->primary_port;
    pthread_mutex_unlock(&r->mu);
    return *gen == 0 ? -1 : 0;
}

/* ---- the query on a loop ------------------------------------------------------------------ */

struct query {
    dlock__resolver *r;
    const dlock__sentinel *owner;     /* whose free cancels it */
    const dlock__io *io;
    void *loop;
    int first, tried, cur;
    redisContext *ctx;
    void *watch;
    void *timer;
};

static int flush(redisContext *ctx)
{
    int done = 0;
    dlock__pipe_guard g;
    dlock__sigpipe_block(&g);
    int rc = redisBufferWrite(ctx, &done);
    dlock__sigpipe_unblock(&g, rc != REDIS_OK);
    return rc != REDIS_OK ? -1 : done;
}

static void query_close(query *q)
{
    if (q->watch)
        q->io->unwatch(q->watch);
    q->watch = NULL;
    redisFree(q->ctx);
    q->ctx = NULL;
    q->io->timer_stop(q->timer);
}

static void query_free(query *q)
{
    query_close(q);
    q->io->timer_free(q->timer);
    free(q);
}

static void query_done(query *q, const char *host, int port)
{
    dlock__resolver *r = q->r;
    pthread_mutex_lock(&r->mu);
    if (!host)
        snprintf(r->why, sizeof r->why, "no sentinel answered");
    query_ended(r, host, port, q->cur);
    r->q = NULL;
    pthread_mutex_unlock(&r->mu);
    query_free(q);
}

static void query_io(void *ud, bool readable, bool writable);

/* Asks the next sentinel; when none is left, the query ends without an answer. */
static void query_next(query *q)
{
    dlock__resolver *r = q->r;
    const char *argv[3] = {ask_argv[0], ask_argv[1], r->master};
    query_close(q);
    while (q->tried < r->n) {
        q->cur = (q->first + q->tried++) % r->n;
        q->ctx = redisConnectNonBlock(r->host[q->cur], r->port[q->cur]);
        int rc = -1;
        if (q->ctx && !q->ctx->err && redisAppendCommandArgv(q->ctx, 3, argv, NULL) == REDIS_OK) {
            count_query();
            rc = flush(q->ctx);
        }
        if (rc >= 0 && (q->watch = q->io->watch(q->loop, q->ctx->fd, query_io, q))) {
            q->io->want_write(q->watch, rc == 0);
            q->io->timer_start(q->timer, DLOCK__SENTINEL_ASK_MS * 1000);
            return;
        }
        query_close(q);
    }
    query_done(q, NULL, 0);
}

static void query_io(void *ud, bool readable, bool writable)
{
    query *q = ud;
    if (writable) {
        int rc = flush(q->ctx);
        if (rc < 0) {
            query_next(q);
            return;
        }
        q->io->want_write(q->watch, rc == 0);
    }
    if (!readable)
        return;
    void *reply = NULL;
    if (redisBufferRead(q->ctx) != REDIS_OK || redisGetReplyFromReader(q->ctx, &reply) != REDIS_OK) {
        query_next(q);
        return;
    }
    if (!reply)
        return;
    char host[HOST_MAX], why[96];
    int port = 0;
    bool ok = read_address(reply, host, &port, why, sizeof why);
    freeReplyObject(reply);
    if (ok)
        query_done(q, host, port);
    else
        query_next(q);
}

static void query_timeout(void *ud)
{
    query_next(ud);
}

void dlock__sentinel_ask_async(const dlock__url *u, const dlock__io *io, void *loop)
{
    dlock__resolver *r = resolver_of(u->sentinel);
    if (!r || (atomic_load(&r->gen) != 0 && !atomic_load(&r->suspect)))
        return;  /* the common case: nothing to ask, no lock taken */
    query *q = NULL;
    pthread_mutex_lock(&r->mu);
    if (query_due(r, dlock__mono_us()) && (q = calloc(1, sizeof *q)) &&
        !(q->timer = io->timer(loop, query_timeout, q))) {
        free(q);
        q = NULL;
    }
    if (q) {
        *q = (query){.r = r, .owner = u->sentinel, .io = io, .loop = loop, .first = r->first,
                     .timer = q->timer};
        r->asking = true;
        r->q = q;
    }
    pthread_mutex_unlock(&r->mu);
    if (q)
        query_next(q);
}

/* ---- connecting ------------------------------------------------------------------------- */

void dlock__sentinel_failed(const dlock__url *u)
{
    const dlock__sentinel *s = u->sentinel;
    if (s && s->r && s->gen != 0 && atomic_load(&s->r->gen) == s->gen)
        atomic_store(&s->r->suspect, true);
}

bool dlock__sentinel_outdated(const dlock__url *u)
{
    const dlock__sentinel *s = u->sentinel;
    return s && s->r && s->gen != 0 && atomic_load(&s->r->gen) != s->gen;
}

bool dlock__role_is_master(const redisReply *r, char *why, size_t whylen)
{
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        (r->element[0]->type == REDIS_REPLY_STRING || r->element[0]->type == REDIS_REPLY_STATUS)) {
        if (strcmp(r->element[0]->str, "master") == 0)
            return true;
        snprintf(why, whylen, "ROLE says %.32s", r->element[0]->str);
        return false;
    }
    snprintf(why, whylen, "ROLE gave an unexpected reply");
    return false;
}

bool dlock__error_says_moved(const char *reply)
{
    return reply && (strncmp(reply, "MASTERDOWN", 10) == 0 || strstr(reply, "READONLY") != NULL);
}

/* u with the primary's address in place of its sentinels (sharing u's strings). */
static void direct_url(const dlock__url *u, const char *host, int port, dlock__url *d)
{
    *d = *u;
    d->sentinel = NULL;
    d->host = (char *)host;
    d->port = port;
    snprintf(d->where, sizeof d->where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* ROLE on a fresh blocking connection: 1 master, 0 not, -1 failed or refused. */
static int check_role(const dlock__url *d, redisContext *ctx, char *err, size_t errlen,
                      char *refusal, size_t refusal_len)
{
    const char *argv[1] = {"ROLE"};
    dlock__pipe_guard g;
    dlock__sigpipe_block(&g);
    redisReply *rr = redisCommandArgv(ctx, 1, argv, NULL);
    dlock__sigpipe_unblock(&g, rr == NULL);
    char why[64];
    int rc = rr && dlock__role_is_master(rr, why, sizeof why) ? 1 : 0;
    if (!rr) {
        snprintf(err, errlen, "%s: ROLE failed: %s", d->where, ctx->errstr);
        rc = -1;
    } else if (rr->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: ROLE failed: %s", d->where, rr->str);
        if (refusal)
            snprintf(refusal, refusal_len, "%s", rr->str);
        rc = -1;
    } else if (rc == 0) {
        snprintf(err, errlen, "%s: not the primary (%s)", d->where, why);
    }
    freeReplyObject(rr);
    return rc;
}

redisContext *dlock__sentinel_connect(const dlock__url *u, int64_t timeout_ms, char *err,
                                      size_t errlen, char *refusal, size_t refusal_len)
{
    dlock__sentinel *s = u->sentinel;
    if (refusal && refusal_len > 0)
        refusal[0] = '\0';
    dlock__resolver *r = resolver_of(s);
    char host[HOST_MAX];
    int port = 0;
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", u->where);
        return NULL;
    }
    /* one deadline for the whole connect: the wait for another thread's query, the sentinels
     * asked in turn, and the primary's connection and ROLE */
    int64_t deadline_us = dlock__mono_us() + timeout_ms * 1000;
    if (resolve_blocking(r, deadline_us, host, &port, &s->gen, err, errlen) < 0)
        return NULL;
    dlock__url d;
    direct_url(u, host, port, &d);
    redisContext *ctx = dlock__connect(&d, ms_left(deadline_us), err, errlen, refusal,
                                       refusal_len);
    if (ctx && check_role(&d, ctx, err, errlen, refusal, refusal_len) == 1)
        return ctx;
    redisFree(ctx);
    if (!refusal || !refusal[0])
        dlock__sentinel_failed(u);  /* the next connect that is due asks again */
    return NULL;
}

redisContext *dlock__sentinel_connect_nonblock(const dlock__url *u, char *err, size_t errlen,
                                               int *setup)
{
    dlock__sentinel *s = u->sentinel;
    dlock__resolver *r = resolver_of(s);
    char host[HOST_MAX] = "";
    int port = 0;
    *setup = 0;
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", u->where);
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    uint64_t gen = atomic_load(&r->gen);
    snprintf(host, sizeof host, "%s", r->primary);
    port = r->primary_port;
    pthread_mutex_unlock(&r->mu);
    if (gen == 0) {
        snprintf(err, errlen, "%s: no primary known yet (asking the sentinels)", u->where);
        return NULL;
    }
    s->gen = gen;
    dlock__url d;
    direct_url(u, host, port, &d);
    redisContext *ctx = dlock__connect_nonblock(&d, err, errlen, setup);
    const char *argv[1] = {"ROLE"};
    if (ctx && redisAppendCommandArgv(ctx, 1, argv, NULL) != REDIS_OK) {
        snprintf(err, errlen, "%s: out of memory", d.where);
        redisFree(ctx);
        ctx = NULL;
    }
    if (!ctx) {
        dlock__sentinel_failed(u);
        return NULL;
    }
    (*setup)++;
    return ctx;
}

void dlock__sentinel_free(dlock__sentinel *s)
{
    if (!s)
        return;
    dlock__resolver *r = s->r;
    if (r) {
        query *q = NULL;
        pthread_mutex_lock(&r->mu);
        if (r->q && r->q->owner == s) {
            q = r->q;
            r->q = NULL;
            snprintf(r->why, sizeof r->why, "the query was cancelled");
            query_ended(r, NULL, 0, 0);
        }
        pthread_mutex_unlock(&r->mu);
        if (q)
            query_free(q);
        resolver_put(r);
    }
    for (int i = 0; i < s->n; i++)
        free(s->host[i]);
    free(s->master);
    free(s);
}
