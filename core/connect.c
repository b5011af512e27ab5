/* connect.c -- Redis URLs, connecting with AUTH and SELECT, and the SIGPIPE guard around
 * writes. Shared by the lock core's clients and by lockbench, so both read URLs alike. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connect.h"
#include "sentinel.h"

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Copies [s, s+len) with %XX sequences decoded. */
static char *pct_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

bool dlock__url_int(const char *s, size_t len, int lo, int hi, int *out)
{
    long v = 0;
    if (len == 0 || len > 9)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* [user:password@] -- a userinfo without ':' is a password, as redis-cli reads it. */
const char *dlock__url_userinfo(dlock__url *cn, const char *p)
{
    const char *at = strrchr(p, '@');
    if (!at)
        return p;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon) {
        if (colon > p)
            cn->user = pct_decode(p, (size_t)(colon - p));
        cn->pass = pct_decode(colon + 1, (size_t)(at - colon - 1));
    } else {
        cn->pass = pct_decode(p, (size_t)(at - p));
    }
    return at + 1;
}

/* redis://[user:password@]host[:port][/db] */
static int parse_redis_url(dlock__url *cn, const char *url, char *err, size_t errlen)
{
    const char *p = dlock__url_userinfo(cn, url + strlen("redis://"));
    const char *host = p, *host_end;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end)
            goto bad;
        host++;
        p = host_end + 1;
    } else {
        p += strcspn(p, ":/");
        host_end = p;
    }
    if (host_end == host)
        goto bad;
    cn->host = strndup(host, (size_t)(host_end - host));
    cn->port = 6379;
    if (*p == ':') {
        size_t len = strcspn(++p, "/");
        if (!dlock__url_int(p, len, 1, 65535, &cn->port))
            goto bad;
        p += len;
    }
    if (*p == '/' && p[1] != '\0') {
        if (!dlock__url_int(p + 1, strlen(p + 1), 0, 1 << 20, &cn->db))
            goto bad;
    } else if (*p != '\0' && strcmp(p, "/") != 0) {
        goto bad;
    }
    snprintf(cn->where, sizeof cn->where, strchr(cn->host, ':') ? "[%s]:%d" : "%s:%d", cn->host,
             cn->port);
    return 0;
bad:
    /* The URL may hold a password: name the part that is wrong, not the URL. */
    snprintf(err, errlen, "bad Redis URL (expected redis://[user:password@]host:port[/db])");
    return -1;
}

int dlock__url_parse(dlock__url *cn, const char *url, char *err, size_t errlen)
{
    memset(cn, 0, sizeof *cn);
    if (strncmp(url, "redis://", 8) == 0) {
        if (parse_redis_url(cn, url, err, errlen) == 0)
            return 0;
        dlock__url_clear(cn);
        return -1;
    }
    if (strncmp(url, "sentinel://", 11) == 0)
        return dlock__sentinel_url_parse(cn, url, err, errlen);
    if (strncmp(url, "unix://", 7) == 0 && url[7] == '/') {
        cn->path = strdup(url + 7);
        snprintf(cn->where, sizeof cn->where, "%s", cn->path);
        return 0;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        snprintf(err, errlen, "rediss:// (TLS) is not supported");
    else
        snprintf(err, errlen, "bad URL: expected redis://host:port, sentinel://host:port/name "
                 "or unix:///path");
    return -1;
}

void dlock__url_clear(dlock__url *cn)
{
    dlock__sentinel_free(cn->sentinel);
    free(cn->host);
    free(cn->path);
    free(cn->user);
    if (cn->pass)
        explicit_bzero(cn->pass, strlen(cn->pass));
    free(cn->pass);
    memset(cn, 0, sizeof *cn);
}

/* ---- SIGPIPE ---------------------------------------------------------------------- */

/* Held by an event loop for a whole round, so each write need not block and unblock it. Rounds
 * of different loops may nest (a callback running another loop): only the outermost blocks and
 * restores. */
static __thread int held;
static __thread bool held_write_failed;

/* Blocks SIGPIPE for the calling thread. A SIGPIPE that a write raises then stays pending
 * instead of killing the process, and dlock__sigpipe_unblock consumes it. None can be pending from
 * before: a thread-directed SIGPIPE is delivered at once while unblocked; and if the caller had
 * SIGPIPE blocked already, whatever is pending is theirs and is left alone. */
void dlock__sigpipe_block(dlock__pipe_guard *g)
{
    if (held)
        return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void dlock__sigpipe_unblock(dlock__pipe_guard *g, bool write_failed)
{
    if (held) {
        held_write_failed |= write_failed;
        return;
    }
    if (write_failed && !sigismember(&g->old, SIGPIPE)) {
        sigset_t set;
        struct timespec zero = {0, 0};
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        while (sigtimedwait(&set, NULL, &zero) > 0)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

void dlock__sigpipe_hold(dlock__pipe_guard *g)
{
    if (held++ > 0)
        return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    held_write_failed = false;
}

void dlock__sigpipe_release(dlock__pipe_guard *g)
{
    if (--held > 0)
        return;
    dlock__sigpipe_unblock(g, held_write_failed);
}

/* ---- connections --------------------------------------------------------- */

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* A command on a fresh connection (AUTH, SELECT): true when the reply is not an error. An
 * error reply is the server's refusal, kept in refusal. */
static bool setup_command(const dlock__url *u, redisContext *ctx, int argc, const char **argv,
                          char *err, size_t errlen, char *refusal, size_t refusal_len)
{
    dlock__pipe_guard g;
    dlock__sigpipe_block(&g);
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    dlock__sigpipe_unblock(&g, r == NULL);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s failed: %s", u->where, argv[0], r ? r->str : ctx->errstr);
        if (r && refusal)
            snprintf(refusal, refusal_len, "%s", r->str[0] ? r->str : "ERR refused");
        freeReplyObject(r);
        return false;
    }
    freeReplyObject(r);
    return true;
}

redisContext *dlock__connect(const dlock__url *u, int64_t timeout_ms, char *err, size_t errlen,
                             char *refusal, size_t refusal_len)
{
    if (u->sentinel)
        return dlock__sentinel_connect(u, timeout_ms, err, errlen, refusal, refusal_len);
    struct timeval tv = tv_ms(timeout_ms);
    if (refusal && refusal_len > 0)
        refusal[0] = '\0';
    redisContext *ctx = u->path ? redisConnectUnixWithTimeout(u->path, tv)
                                : redisConnectWithTimeout(u->host, u->port, tv);
    if (!ctx || ctx->err) {
        snprintf(err, errlen, "%s: %s", u->where, ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, tv);
    if (u->pass && *u->pass) {  /* redis://:@host names no password */
        const char *argv[3] = {"AUTH", u->user ? u->user : u->pass, u->pass};
        if (!setup_command(u, ctx, u->user ? 3 : 2, argv, err, errlen, refusal, refusal_len))
            goto failed;
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[2] = {"SELECT", db};
        if (!setup_command(u, ctx, 2, argv, err, errlen, refusal, refusal_len))
            goto failed;
    }
    return ctx;
failed:
    redisFree(ctx);
    return NULL;
}

redisContext *dlock__connect_nonblock(const dlock__url *u, char *err, size_t errlen, int *setup)
{
    if (u->sentinel)
        return dlock__sentinel_connect_nonblock(u, err, errlen, setup);
    *setup = 0;
    redisContext *ctx = u->path ? redisConnectUnixNonBlock(u->path)
                                : redisConnectNonBlock(u->host, u->port);
    if (!ctx || ctx->err) {
        snprintf(err, errlen, "%s: %s", u->where, ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    if (u->pass && *u->pass) {
        const char *argv[3] = {"AUTH", u->user ? u->user : u->pass, u->pass};
        if (redisAppendCommandArgv(ctx, u->user ? 3 : 2, argv, NULL) != REDIS_OK)
            goto no_memory;
        (*setup)++;
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[2] = {"SELECT", db};
        if (redisAppendCommandArgv(ctx, 2, argv, NULL) != REDIS_OK)
            goto no_memory;
        (*setup)++;
    }
    return ctx;
no_memory:
    snprintf(err, errlen, "%s: out of memory", u->where);
    redisFree(ctx);
    return NULL;
}

bool dlock__error_is_refusal(const char *reply)
{
    static const char *const refusals[] = {
        "NOAUTH", "WRONGPASS", "NOPERM",
        "ERR unknown command", "ERR unknown subcommand", "ERR wrong number of arguments",
        "ERR syntax error",
        /* AUTH and SELECT on connect, across Redis versions */
        "ERR invalid password", "ERR AUTH", "ERR Client sent AUTH", "ERR DB index",
        "ERR invalid DB index", "ERR SELECT is not allowed",
    };
    for (size_t i = 0; reply && i < sizeof refusals / sizeof refusals[0]; i++)
        if (strncmp(reply, refusals[i], strlen(refusals[i])) == 0)
            return true;
    return false;
}
