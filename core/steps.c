/* steps.c -- the vocabulary the step functions share: adding commands to a batch and reading
 * replies. A NULL reply means the server did not answer (down, timed out, connection lost). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "internal.h"

static const char *const nkeys_arg[DLOCK__MAX_ARGV + 1] = {
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"};
_Static_assert(DLOCK__MAX_ARGV == 12, "nkeys_arg covers 0 to DLOCK__MAX_ARGV");

/* Where the next command's arguments go in b->args. */
static int args_used(const dlock__batch *b)
{
    const dlock__cmd *last = b->n > 0 ? &b->cmd[b->n - 1] : NULL;
    return last ? (int)(last->argv - b->args) + last->argc : 0;
}

/* More room in an operation's batch for one more command of argc arguments. The commands and
 * their arguments keep their order; what op.c keeps between them is made again when the batch
 * is sent. */
static bool grow(dlock__batch *b, int argc)
{
    int used = args_used(b);
    int cap = b->n < b->cap ? b->cap : 2 * b->cap < b->max ? 2 * b->cap : b->max;
    int acap = used + argc <= b->acap ? b->acap : 2 * b->acap > used + argc ? 2 * b->acap
                                                                              : used + argc;
    size_t old_at = dlock__batch_args_at(b->cap), at = dlock__batch_args_at(cap);
    char *mem = realloc(b->cmd, dlock__batch_bytes(cap, acap));
    if (!mem)
        return false;
    memmove(mem + at, mem + old_at, (size_t)used * sizeof(char *));
    b->cmd = (dlock__cmd *)(void *)mem;
    b->args = (const char **)(void *)(mem + at);
    b->cap = cap;
    b->acap = acap;
    for (int i = 0, k = 0; i < b->n; k += b->cmd[i++].argc)
        b->cmd[i].argv = b->args + k;
    return true;
}

/* NULL when out of memory: b->oom says so, and the operation ends with DLOCK_ENOMEM. */
static dlock__cmd *add_va(dlock__batch *b, int server, const dlock__script *s, int nkeys,
                          const char *first, va_list ap)
{
    va_list count;
    va_copy(count, ap);
    int argc = s ? 3 : 0;
    for (const char *a = first; a != NULL; a = va_arg(count, const char *))
        argc++;
    va_end(count);
    /* the batch is sized to the servers, a command to the longest script's: more is a
     * programming error */
    assert(argc <= DLOCK__CMD_MAX_ARGC);
    assert(b->n < b->cap || b->n < b->max);
    bool room = b->n < b->cap && args_used(b) + argc <= b->acap;
    assert(room || b->max > 0);  /* a fixed batch has room for any step */
    if (!room && !grow(b, argc)) {
        b->oom = true;
        return NULL;
    }
    const char **argv = b->args + args_used(b);
    dlock__cmd *c = &b->cmd[b->n++];
    c->server = server;
    c->script = s;
    c->nkeys = nkeys;
    c->argc = 0;
    c->argv = argv;
    if (s) {
        argv[c->argc++] = "EVALSHA";
        argv[c->argc++] = s->sha;
        argv[c->argc++] = nkeys_arg[nkeys];
    }
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *))
        argv[c->argc++] = a;
    return c;
}

/* dlock__add(b, server, "SET", key, value, NULL) */
dlock__cmd *dlock__add(dlock__batch *b, int server, const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    dlock__cmd *c = add_va(b, server, NULL, 0, arg0, ap);
    va_end(ap);
    return c;
}

/* dlock__add_script(b, server, &script, nkeys, key..., arg..., NULL) */
dlock__cmd *dlock__add_script(dlock__batch *b, int server, const dlock__script *s, int nkeys, ...)
{
    va_list ap;
    va_start(ap, nkeys);
    const char *first = va_arg(ap, const char *);
    dlock__cmd *c = add_va(b, server, s, nkeys, first, ap);
    va_end(ap);
    return c;
}

const char *dlock__cmd_name(const dlock__cmd *c)
{
    return c->argv[0];
}

const char *const *dlock__cmd_args(const dlock__cmd *c)
{
    return c->script ? c->argv + 3 : c->argv;
}

bool dlock__reply_is_noscript(const dlock_reply *r)
{
    return r && r->type == DLOCK_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

bool dlock__reply_is_status(const dlock_reply *r, const char *status)
{
    return r && r->type == DLOCK_REPLY_STATUS && strcmp(r->str, status) == 0;
}

bool dlock__reply_is_nil(const dlock_reply *r)
{
    return r && r->type == DLOCK_REPLY_NIL;
}

bool dlock__reply_int(const dlock_reply *r, long long *v)
{
    if (!r || r->type != DLOCK_REPLY_INTEGER)
        return false;
    *v = r->integer;
    return true;
}

static void vset_text(char **buf, size_t max, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    size_t size = n < 0 ? 1 : (size_t)n + 1 < max ? (size_t)n + 1 : max;
    char *p = realloc(*buf, size);
    if (p) {
        *buf = p;
        vsnprintf(p, size, fmt, again);
    } else if (*buf) {
        (*buf)[0] = '\0';  /* out of memory: the reason is lost, not the result */
    }
    va_end(again);
}

void dlock__set_text(char **buf, size_t max, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_text(buf, max, fmt, ap);
    va_end(ap);
}

int dlock__fail(dlock *l, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_text(&l->err, DLOCK__LOCK_ERR_LEN, fmt, ap);
    va_end(ap);
    return code;
}

bool dlock__reply_is_refusal(const dlock_reply *r)
{
    return r && r->type == DLOCK_REPLY_ERROR && dlock__error_is_refusal(r->str);
}

/* For a reply that is neither of the expected ones: say what came instead, and whether it was
 * the server refusing us (op.c then stops retrying: the next try would be refused alike). */
int dlock__reply_error(dlock *l, const dlock_reply *r, const char *what)
{
    if (!r)
        return dlock__fail(l, DLOCK_EIO, "%s: no reply from the server", what);
    if (r->type == DLOCK_REPLY_ERROR) {
        l->refused = dlock__reply_is_refusal(r);
        return dlock__fail(l, DLOCK_EIO, "%s: %s", what, r->str);
    }
    return dlock__fail(l, DLOCK_EIO, "%s: unexpected reply of type %d", what, r->type);
}

/* BLPOP's timeout, in seconds: at least 1 ms, since 0 would block forever. */
static void set_wait_arg(dlock *l)
{
    int64_t us = l->wait_us > 1000 ? l->wait_us : 1000;
    snprintf(l->wait_arg, sizeof l->wait_arg, "%lld.%03lld", (long long)(us / 1000000),
             (long long)(us / 1000 % 1000));
}

/* The wait modes' blocking step: BLPOP on key for l->wait_us, and the batch may take that long. */
void dlock__add_blpop(dlock *l, dlock__batch *out, const char *key)
{
    set_wait_arg(l);
    dlock__add(out, 0, "BLPOP", key, l->wait_arg, NULL);
    /* Redis times blocked clients out on its own timer (hz 10: up to 100 ms late) */
    out->block_ms += l->wait_us / 1000 + 1 + DLOCK__BLOCK_SLACK_MS;
}

int dlock__replica_waits(const dlock *l)
{
    return l->opt.min_replicas > 0;
}

/* WAIT is a blocking command, timed out on the same timer as BLPOP: a batch with one may take
 * replica_timeout_ms and that timer's slack before its replies are late. */
void dlock__add_replica_wait(dlock *l, dlock__batch *out, int server)
{
    if (!dlock__replica_waits(l))
        return;
    dlock__add(out, server, "WAIT", l->replicas_arg, l->replica_timeout_arg, NULL);
    if (!out->waits_replicas)
        out->block_ms += l->opt.replica_timeout_ms + DLOCK__BLOCK_SLACK_MS;
    out->waits_replicas = true;
}

bool dlock__replicated(dlock *l, const dlock_reply *const *replies, int nr, int at)
{
    long long acks;
    if (!dlock__replica_waits(l))
        return true;
    const dlock_reply *r = at < nr ? replies[at] : NULL;
    if (!dlock__reply_int(r, &acks)) {
        dlock__reply_error(l, r, "WAIT");
        return false;
    }
    if (acks >= l->opt.min_replicas)
        return true;
    dlock__fail(l, DLOCK_EIO, "WAIT: %lld of %d replicas acknowledged", acks, l->opt.min_replicas);
    return false;
}
