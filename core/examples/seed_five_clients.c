/* seed_five_clients.c -- five clients increment one counter under one lock.
 *
 * Each thread has its own client, takes "testlock", reads the counter, sleeps a little (the
 * critical section's work) and writes counter + 1. Mutual exclusion makes the result 5.
 *
 *     seed_five_clients redis://host:port | unix:///path [token|legacy]  (either order)
 *
 * The server is the caller's (make demo starts one): the example links libdlock alone. */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlock.h"

#define CLIENTS 5

static const char *url;
static dlock_algorithm algorithm = DLOCK_TOKEN;
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, int n)
{
    pthread_mutex_lock(&out);
    printf(fmt, n);
    fflush(stdout);
    pthread_mutex_unlock(&out);
}

/* The counter's own connection, to the lock's server. */
static redisContext *connect_raw(void)
{
    int port = 6379;
    char host[64] = "127.0.0.1";
    if (strncmp(url, "unix://", 7) == 0)
        return redisConnectUnix(url + 7);
    if (sscanf(url, "redis://%63[^:/]:%d", host, &port) < 1)
        return NULL;
    return redisConnect(host, port);
}

static void *client(void *arg)
{
    int no = (int)(intptr_t)arg;
    char err[256];
    dlock_client *c = dlock_client_new(&url, 1, err, sizeof err);
    redisContext *r = connect_raw();
    if (!c || !r || r->err) {
        fprintf(stderr, "client %d: %s\n", no, c ? "cannot connect" : err);
        exit(1);
    }
    dlock_options o;
    dlock_options_init(&o);
    o.algorithm = algorithm;
    dlock *l;
    int rc = dlock_acquire(c, "testlock", &o, &l);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "client %d: %s\n", no, dlock_strerror(rc));
        exit(1);
    }
    say("client %d acquired lock\n", no);
    redisReply *v = redisCommand(r, "GET atomic-counter");
    long long counter = v && v->type == REDIS_REPLY_STRING ? atoll(v->str) : 0;
    freeReplyObject(v);
    struct timespec work = {0, 20 * 1000000};  /* an artificial delay inside the lock */
    nanosleep(&work, NULL);
    freeReplyObject(redisCommand(r, "SET atomic-counter %lld", counter + 1));
    say("client %d released lock\n", no);
    dlock_release(l);
    redisFree(r);
    dlock_client_free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    url = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "legacy") == 0)
            algorithm = DLOCK_LEGACY;
        else if (strcmp(argv[i], "token") != 0)
            url = argv[i];
    }
    if (!url) {
        fprintf(stderr, "usage: %s redis://host:port | unix:///path [token|legacy]\n",
                argv[0]);
        return 2;
    }
    redisContext *r = connect_raw();
    if (!r || r->err) {
        fprintf(stderr, "cannot connect to %s\n", url);
        return 3;
    }
    freeReplyObject(redisCommand(r, "DEL atomic-counter testlock"));

    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&t[i], NULL, client, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(t[i], NULL);

    redisReply *v = redisCommand(r, "GET atomic-counter");
    printf("atomic-counter after 1sec: %s\n", v && v->str ? v->str : "(nil)");
    int ok = v && v->str && strcmp(v->str, "5") == 0;
    freeReplyObject(v);
    redisFree(r);
    return ok ? 0 : 1;
}
