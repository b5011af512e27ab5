/* fixture.c -- see fixture.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"

lb_server *fx_servers[FX_MAX_SERVERS];
const char *fx_urls[FX_MAX_SERVERS];
static int nservers;

int fx_start(int n)
{
    char err[256];
    for (nservers = 0; nservers < n; nservers++) {
        fx_servers[nservers] = lb_server_start(LB_PERSIST_NONE, err, sizeof err);
        if (!fx_servers[nservers]) {
            fprintf(stderr, "cannot start redis-server: %s\n", err);
            return -1;
        }
        fx_urls[nservers] = lb_server_url(fx_servers[nservers]);
    }
    return 0;
}

int fx_stop(void **state)
{
    for (int i = 0; i < nservers; i++)
        lb_server_stop(fx_servers[i]);
    nservers = 0;
    return 0;
}

int fx_reset(void **state)
{
    char err[256];
    for (int i = 0; i < nservers; i++) {
        if (lb_server_is_paused(fx_servers[i]))
            lb_server_resume(fx_servers[i]);
        if (!lb_server_is_running(fx_servers[i]) &&
            lb_server_restart(fx_servers[i], err, sizeof err) != 0) {
            fprintf(stderr, "cannot restart server %d: %s\n", i, err);
            return -1;
        }
        redisContext *r = fx_raw(i);
        if (!r)
            return -1;
        freeReplyObject(redisCommand(r, "FLUSHALL"));
        redisFree(r);
    }
    return 0;
}

redisContext *fx_raw(int i)
{
    struct timeval tv = {1, 0};
    redisContext *r = redisConnectWithTimeout("127.0.0.1", lb_server_port(fx_servers[i]), tv);
    if (!r || r->err) {
        if (r)
            redisFree(r);
        return NULL;
    }
    redisSetTimeout(r, tv);
    return r;
}

char *fx_get(int i, const char *key)
{
    redisContext *r = fx_raw(i);
    if (!r)
        return NULL;
    redisReply *v = redisCommand(r, "GET %s", key);
    char *s = v && v->type == REDIS_REPLY_STRING ? strdup(v->str) : NULL;
    freeReplyObject(v);
    redisFree(r);
    return s;
}

long long fx_int(int i, const char *fmt, const char *arg)
{
    redisContext *r = fx_raw(i);
    assert_non_null(r);
    redisReply *v = redisCommand(r, fmt, arg);
    assert_non_null(v);
    long long n = v->type == REDIS_REPLY_INTEGER ? v->integer
                : v->type == REDIS_REPLY_STRING  ? atoll(v->str)
                                                 : -1;
    freeReplyObject(v);
    redisFree(r);
    return n;
}

dlock_client *fx_client(int n)
{
    char err[256];
    dlock_client *c = dlock_client_new(fx_urls, n, err, sizeof err);
    if (!c)
        fail_msg("dlock_client_new: %s", err);
    return c;
}

int64_t fx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fx_sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int fx_count_hook(void *counter, const char *command)
{
    fx_counter *c = counter;
    if (strcmp(command, c->name) == 0)
        atomic_fetch_add(&c->n, 1);
    return 0;
}
