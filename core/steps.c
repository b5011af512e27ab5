/* steps.c -- the vocabulary the step functions share: adding commands to a batch and reading
 * replies. A NULL reply means the server did not answer (down, timed out, connection lost). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "connect.h"
#include "internal.h"

static const char *const nkeys_arg[DLOCK__MAX_ARGV + 1] = {
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"};
_Static_assert(DLOCK__MAX_ARGV == 12, "nkeys_arg covers 0 to DLOCK__MAX_ARGV");

static dlock__cmd *add_va(dlock__batch *b, int server, const dlock__script *s, int nkeys,
                          const char *first, va_list ap)
{
    assert(b->n < b->cap);  /* the batch is sized to the servers: more is a programming error */
    dlock__cmd *c = &b->cmd[b->n++];
    c->server = server;
    c->script = s;
    c->nkeys = nkeys;
    c->argc = 0;
    if (s) {
        c->argv[c->argc++] = "EVALSHA";
        c->argv[c->argc++] = s->sha;
        c->argv[c->argc++] = nkeys_arg[nkeys];
    }
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
        assert(c->argc < 3 + DLOCK__MAX_ARGV);  /* a step asking for more is a programming error */
        c->argv[c->argc++] = a;
    }
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

int dlock__fail(dlock *l, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof l->err, fmt, ap);
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
