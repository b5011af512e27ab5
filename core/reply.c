/* reply.c -- hiredis's replies as the machines read them (dlock_reply, dlock_machine.h). The
 * drivers on hiredis convert each exchange's replies here: views into hiredis's own objects,
 * no copy of any string, in a fixed number of nodes per exchange (lock replies are small: a
 * BLPOP's pair, a transaction's few results). A server that refused the connection's AUTH or
 * SELECT is shown as having answered each command with that refusal. */
#include <string.h>

#include "internal.h"

static dlock_reply *take(dlock__answers *ans, size_t n)
{
    if (n > DLOCK__ANSWER_NODES - (size_t)ans->used)
        return NULL;
    dlock_reply *r = &ans->node[ans->used];
    ans->used += (int)n;
    return r;
}

static void too_large(dlock_reply *to)
{
    static const char msg[] = "ERR reply too large for the lock core";
    *to = (dlock_reply){.type = DLOCK_REPLY_ERROR, .str = msg, .len = sizeof msg - 1};
}

static void view(dlock__answers *ans, const redisReply *r, dlock_reply *to)
{
    *to = (dlock_reply){.integer = r->integer, .str = r->str, .len = r->len};
    switch (r->type) {
    case REDIS_REPLY_STRING:  to->type = DLOCK_REPLY_STRING; return;
    case REDIS_REPLY_INTEGER: to->type = DLOCK_REPLY_INTEGER; return;
    case REDIS_REPLY_NIL:     to->type = DLOCK_REPLY_NIL; return;
    case REDIS_REPLY_STATUS:  to->type = DLOCK_REPLY_STATUS; return;
    case REDIS_REPLY_ERROR:   to->type = DLOCK_REPLY_ERROR; return;
    case REDIS_REPLY_ARRAY:   break;
    default: {  /* RESP3 types: never asked for */
        static const char msg[] = "ERR unexpected reply type";
        *to = (dlock_reply){.type = DLOCK_REPLY_ERROR, .str = msg, .len = sizeof msg - 1};
        return;
    }
    }
    dlock_reply *el = take(ans, r->elements);
    if (!el) {
        too_large(to);
        return;
    }
    to->type = DLOCK_REPLY_ARRAY;
    to->elements = r->elements;
    to->element = el;
    for (size_t i = 0; i < r->elements; i++)
        view(ans, r->element[i], &el[i]);
}

void dlock__answers_view(dlock__answers *ans)
{
    ans->used = 0;
    for (int i = 0; i < ans->n; i++) {
        ans->reply[i] = NULL;
        if (!ans->raw[i] && !ans->refusal[i])
            continue;
        dlock_reply *to = take(ans, 1);
        if (!to)
            break;  /* cannot happen: a batch has fewer commands than nodes */
        if (ans->raw[i])
            view(ans, ans->raw[i], to);
        else
            *to = (dlock_reply){.type = DLOCK_REPLY_ERROR, .str = ans->refusal[i],
                                .len = strlen(ans->refusal[i])};
        ans->reply[i] = to;
    }
}

void dlock__answers_clear(dlock__answers *ans)
{
    for (int i = 0; i < ans->n; i++) {
        freeReplyObject(ans->raw[i]);
        ans->raw[i] = NULL;
        ans->refusal[i] = NULL;
        ans->reply[i] = NULL;
    }
    ans->n = 0;
}
