/* seed_timeout.c -- a lock that is never released, and a second client that waits 2 s for it.
 *
 * The first client sets the counter to 1, takes "testlock" and never releases it. The second
 * waits with wait_timeout_ms = 2000, times out, and so never increments the counter.
 *
 *     seed_timeout redis://host:port | unix:///path [token|legacy]  (either order)
 *
 * The server is the caller's (make demo starts one): the example links libdlock alone. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlock.h"

/* The counter's own connection, to the lock's server. */
static redisContext *connect_raw(const char *url)
{
    int port = 6379;
    char host[64] = "127.0.0.1";
    if (strncmp(url, "unix://", 7) == 0)
        return redisConnectUnix(url + 7);
    if (sscanf(url, "redis://%63[^:/]:%d", host, &port) < 1)
        return NULL;
    return redisConnect(host, port);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
    char err[256];
    const char *url;
    dlock_options o;
    dlock_options_init(&o);
    url = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "legacy") == 0)
            o.algorithm = DLOCK_LEGACY;
        else if (strcmp(argv[i], "token") != 0)
            url = argv[i];
    }
    if (!url) {
        fprintf(stderr, "usage: %s redis://host:port | unix:///path [token|legacy]\n",
                argv[0]);
        return 2;
    }
    dlock_client *holder = dlock_client_new(&url, 1, err, sizeof err);
    dlock_client *waiter = dlock_client_new(&url, 1, err, sizeof err);
    if (!holder || !waiter) {
        fprintf(stderr, "%s\n", err);
        return 3;
    }
    redisContext *r = connect_raw(url);
    if (!r || r->err) {
        fprintf(stderr, "cannot connect to %s\n", url);
        return 3;
    }
    freeReplyObject(redisCommand(r, "DEL testlock"));
    freeReplyObject(redisCommand(r, "SET atomic-counter 1"));

    /* Acquire the lock and never release it. */
    o.ttl_ms = 0;
    dlock *never_released;
    if (dlock_acquire(holder, "testlock", &o, &never_released) != DLOCK_OK) {
        fprintf(stderr, "could not take the lock: %s\n", dlock_client_errstr(holder));
        return 1;
    }

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    o.wait_timeout_ms = 2000;
    dlock *l;
    int rc = dlock_acquire(waiter, "testlock", &o, &l);
    if (rc == DLOCK_OK) {
        freeReplyObject(redisCommand(r, "INCR atomic-counter"));  /* would make it 2 */
        dlock_release(l);
    } else {
        double s = seconds_since(&t0);
        printf("After '00:00:%010.7f', Received TimeoutException: 'Exceeded timeout of 00:00:02'"
               " (%s)\n", s, dlock_strerror(rc));
    }
    redisReply *v = redisCommand(r, "GET atomic-counter");
    printf("atomic-counter remains at '%s'\n", v && v->str ? v->str : "(nil)");
    int ok = rc == DLOCK_ETIMEDOUT && v && v->str && strcmp(v->str, "1") == 0;
    freeReplyObject(v);
    dlock_release(never_released);
    redisFree(r);
    dlock_client_free(holder);
    dlock_client_free(waiter);
    return ok ? 0 : 1;
}
