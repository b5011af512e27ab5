/* health.c -- whether a run's servers answer (see health.h).
 *
 * The check and the watch use plain blocking hiredis connections of their own, with AUTH and
 * SELECT as the URL asks (connect.c, as the lock core connects), so a server that refuses the
 * URL's credentials fails the check as it would fail the clients. The watch is one thread
 * that PINGs each watched server in turn every LB_HEALTH_PERIOD_MS; a PING waits at most a
 * second, so a silent server delays the others' PINGs, never their verdict: a server is dead
 * only when its own latest PING failed and its last PONG is older than the limit. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connect.h"
#include "health.h"
#include "monotonic.h"

/* A silent server costs the watch at most this long per PING (and as much to connect). */
#define PING_TIMEOUT_MS 1000
/* The check tries again this often a server that failed at once (not up yet, loading). */
#define RETRY_MS 50

typedef struct target {
    dlock__url url;          /* parsed once; holds the password, wiped at the end */
    char name[32];           /* "server 0", "protected resource" */
    bool used;               /* checked (false: the resource on a lock server's URL) */
    bool watched;            /* and watched while the clients run */
    int same_as;             /* the lock server whose URL the resource shares, or -1 */
    atomic_bool dead;
    redisContext *ctx;
    int64_t last_ok_us;
    char why[256];           /* the latest failure, without the address */
} target;

struct lb_health {
    int n;                   /* lock servers, then the resource */
    target t[LB_SCENARIO_MAX_SERVERS + 1];
    int64_t limit_ms;
    void (*on_dead)(void *ud, const char *why);
    void *ud;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* monotonic: the watch's sleep between rounds */
    bool stop;
};

/* The longest command timeout of the variant's groups, plus the grace. */
static int64_t limit_of(const lb_scenario *v)
{
    int64_t ms = v->lock.command_timeout_ms;
    for (size_t g = 0; g < v->ngroups; g++)
        if (v->groups[g].lock.command_timeout_ms > ms)
            ms = v->groups[g].lock.command_timeout_ms;
    return ms + LB_HEALTH_GRACE_MS;
}

/* The servers the scenario's own events kill or pause: their silence is the experiment's. */
static void exempt_faulted(lb_health *h, const lb_scenario *v, int nlock)
{
    for (size_t i = 0; i < v->nevents; i++) {
        const lb_event *e = &v->events[i];
        if ((e->action == LB_EV_KILL_SERVER || e->action == LB_EV_PAUSE_SERVER) &&
            e->server >= 0 && e->server < nlock)
            h->t[e->server].watched = false;
    }
}

lb_health *lb_health_new(const lb_scenario *v, const char *const *lock_urls, int nlock,
                         const char *resource_url)
{
    char err[200];
    lb_health *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    dlock__cond_init_monotonic(&h->cv);
    h->limit_ms = limit_of(v);
    h->n = nlock + 1;
    for (int i = 0; i < h->n; i++) {
        target *t = &h->t[i];
        const char *url = i < nlock ? lock_urls[i] : resource_url;
        t->same_as = -1;
        for (int k = 0; i == nlock && k < nlock; k++)
            if (strcmp(url, lock_urls[k]) == 0 && t->same_as < 0)
                t->same_as = k;
        if (i < nlock)
            snprintf(t->name, sizeof t->name, "server %d", i);
        else
            snprintf(t->name, sizeof t->name, "protected resource");
        /* the URLs were checked when the run began: a failure here is memory */
        if (t->same_as < 0 && dlock__url_parse(&t->url, url, err, sizeof err) < 0) {
            lb_health_free(h);
            return NULL;
        }
        t->used = t->watched = t->same_as < 0;
    }
    exempt_faulted(h, v, nlock);
    return h;
}

static void drop(target *t)
{
    if (t->ctx)
        redisFree(t->ctx);
    t->ctx = NULL;
}

/* "where: what" from connect.c -> "what": the name and address are said once, in front. */
static const char *without_where(const target *t, const char *msg)
{
    size_t n = strlen(t->url.where);
    if (strncmp(msg, t->url.where, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg;
}

/* One PING, connecting first if need be, each waiting at most timeout_ms. 0 on PONG; else -1
 * with t->why set, and *refused when the server answered with a refusal (credentials,
 * permissions), which no retry mends. */
static int ping(target *t, int64_t timeout_ms, bool *refused)
{
    char err[256], refusal[128];
    *refused = false;
    if (!t->ctx) {
        t->ctx = dlock__connect(&t->url, timeout_ms, err, sizeof err, refusal, sizeof refusal);
        if (!t->ctx) {
            *refused = refusal[0] != '\0';
            snprintf(t->why, sizeof t->why, "%s", without_where(t, err));
            return -1;
        }
    } else {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
        redisSetTimeout(t->ctx, tv);
    }
    dlock__pipe_guard g;
    dlock__sigpipe_block(&g);
    redisReply *r = redisCommand(t->ctx, "PING");
    dlock__sigpipe_unblock(&g, r == NULL);
    bool pong = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (!pong) {
        if (r && r->type == REDIS_REPLY_ERROR)
            *refused = dlock__error_is_refusal(r->str);
        snprintf(t->why, sizeof t->why, "PING: %s",
                 !r ? t->ctx->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "not PONG");
        drop(t);  /* out of step, or the server's state is unknown: start afresh next time */
    }
    freeReplyObject(r);
    return pong ? 0 : -1;
}

static void say_dead(const target *t, const char *verb, double s, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s (%s) %s %.1f s (last: %s)", t->name, t->url.where, verb, s,
             t->why);
}

/* One server, until it answers PONG, refuses us, or the deadline passes. */
static int check_one(lb_health *h, target *t, int64_t deadline_us, char *err, size_t errlen)
{
    for (;;) {
        int64_t left_ms = (deadline_us - dlock__mono_us() + 999) / 1000;
        bool refused = false;
        if (left_ms > 0 && ping(t, left_ms, &refused) == 0)
            return 0;
        if (refused) {
            snprintf(err, errlen, "%s (%s): %s", t->name, t->url.where, t->why);
            atomic_store(&t->dead, true);
            return -1;
        }
        left_ms = (deadline_us - dlock__mono_us()) / 1000;
        if (left_ms <= 0) {
            say_dead(t, "did not answer within", (double)h->limit_ms / 1000, err, errlen);
            atomic_store(&t->dead, true);
            return -1;
        }
        lb_sleep_ms(left_ms < RETRY_MS ? left_ms : RETRY_MS);
    }
}

int lb_health_check(lb_health *h, char *err, size_t errlen)
{
    for (int i = 0; i < h->n; i++) {
        int64_t deadline_us = dlock__mono_us() + h->limit_ms * 1000;  /* each its own */
        if (h->t[i].used && check_one(h, &h->t[i], deadline_us, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* ---- the watch ------------------------------------------------------------------------- */

static bool stopping(lb_health *h)
{
    pthread_mutex_lock(&h->mu);
    bool stop = h->stop;
    pthread_mutex_unlock(&h->mu);
    return stop;
}

/* PINGs every watched server once: the first that is dead, or NULL. */
static target *watch_round(lb_health *h)
{
    int64_t ping_ms = h->limit_ms < PING_TIMEOUT_MS ? h->limit_ms : PING_TIMEOUT_MS;
    for (int i = 0; i < h->n && !stopping(h); i++) {
        target *t = &h->t[i];
        bool refused;
        if (!t->watched)
            continue;
        if (ping(t, ping_ms, &refused) == 0)
            t->last_ok_us = dlock__mono_us();
        else if (dlock__mono_us() - t->last_ok_us >= h->limit_ms * 1000)
            return t;
    }
    return NULL;
}

static void *watch_main(void *arg)
{
    lb_health *h = arg;
    for (;;) {
        target *dead = watch_round(h);
        if (dead) {
            char why[512];
            say_dead(dead, "stopped answering: no PONG for",
                     (double)(dlock__mono_us() - dead->last_ok_us) / 1e6, why, sizeof why);
            atomic_store(&dead->dead, true);
            h->on_dead(h->ud, why);
            return NULL;  /* its work is done: the run ends */
        }
        struct timespec ts = dlock__mono_timespec(dlock__mono_us() + LB_HEALTH_PERIOD_MS * 1000);
        pthread_mutex_lock(&h->mu);
        while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT)
            ;
        bool stop = h->stop;
        pthread_mutex_unlock(&h->mu);
        if (stop)
            return NULL;
    }
}

int lb_health_start(lb_health *h, void (*on_dead)(void *ud, const char *why), void *ud,
                    char *err, size_t errlen)
{
    h->on_dead = on_dead;
    h->ud = ud;
    h->stop = false;
    int64_t now = dlock__mono_us();
    for (int i = 0; i < h->n; i++)
        h->t[i].last_ok_us = now;  /* the check has just seen each answer */
    int rc = pthread_create(&h->thread, NULL, watch_main, h);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the servers' watch: %s", strerror(rc));
        return -1;
    }
    h->running = true;
    return 0;
}

void lb_health_stop(lb_health *h)
{
    if (!h || !h->running)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    h->running = false;
}

void lb_health_name(const lb_health *h, int server, char *buf, size_t len)
{
    const target *t = &h->t[server];
    if (t->same_as >= 0)
        t = &h->t[t->same_as];
    snprintf(buf, len, "%s (%s)", t->name, t->url.where);
}

bool lb_health_dead(const lb_health *h, int server)
{
    if (!h || server < 0 || server >= h->n)
        return false;
    const target *t = &h->t[server];
    if (t->same_as >= 0)
        t = &h->t[t->same_as];
    return atomic_load(&t->dead);
}

void lb_health_free(lb_health *h)
{
    if (!h)
        return;
    lb_health_stop(h);
    for (int i = 0; i < h->n; i++) {
        drop(&h->t[i]);
        dlock__url_clear(&h->t[i].url);
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
