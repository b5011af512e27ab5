/* sentinels.c -- managed Redis Sentinels (see sentinels.h). The processes are servers.c's (its
 * temporary directories, its registry that kills them at exit and on signals, PDEATHSIG); this
 * file writes their sentinel lines and asks them, by polling to a deadline, what they know. */
#include "sentinels.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "connect.h"
#include "monotonic.h"
#include "replicas.h"

#define POLL_MS 20
#define ASK_TIMEOUT_MS 500

struct lb_sentinels {
    int n, nmasters;
    lb_server *s[LB_SENTINELS_MAX];
    char *urls[LB_SENTINEL_MASTERS_MAX];
};

static int64_t now_ms(void)
{
    return dlock__mono_us() / 1000;
}

/* The lines every sentinel of the set gets: one monitor per primary, a majority quorum. */
static char *sentinel_conf(int count, const int *ports, int n)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fputs("sentinel announce-ip 127.0.0.1\n", f);   /* loopback only, whatever the host has */
    for (int i = 0; i < n; i++) {
        fprintf(f, "sentinel monitor lockbench-%d 127.0.0.1 %d %d\n", i, ports[i], count / 2 + 1);
        fprintf(f, "sentinel down-after-milliseconds lockbench-%d %d\n", i,
                LB_SENTINEL_DOWN_AFTER_MS);
        fprintf(f, "sentinel failover-timeout lockbench-%d %d\n", i, LB_SENTINEL_FAILOVER_MS);
        fprintf(f, "sentinel parallel-syncs lockbench-%d 1\n", i);
    }
    return fclose(f) == 0 ? out : (free(out), NULL);
}

/* One command to one sentinel on a short-lived connection: its reply or NULL. */
static redisReply *ask(const lb_server *s, const char *fmt, int i)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = ASK_TIMEOUT_MS * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", lb_server_port(s), tv);
    redisReply *r = NULL;
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
        dlock__pipe_guard g;
        dlock__sigpipe_block(&g);
        r = redisCommand(c, fmt, i);
        dlock__sigpipe_unblock(&g, r == NULL);
    }
    redisFree(c);
    return r;
}

/* The port sentinel s names for primary i; -1 when it names none. */
static int named_port(const lb_server *s, int i)
{
    redisReply *r = ask(s, "SENTINEL get-master-addr-by-name lockbench-%d", i);
    int port = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(r->element[1]->str);
    freeReplyObject(r);
    return port;
}

/* How many entries sentinel s lists for primary i under what ("replicas", "sentinels"). */
static int listed(const lb_server *s, const char *what, int i)
{
    char fmt[64];
    snprintf(fmt, sizeof fmt, "SENTINEL %s lockbench-%%d", what);
    redisReply *r = ask(s, fmt, i);
    int n = r && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : -1;
    freeReplyObject(r);
    return n;
}

/* Whether every sentinel is ready for a failover of every primary; else what is missing. */
static bool all_ready(const lb_sentinels *s, const int *ports, int replicas, char *why,
                      size_t whylen)
{
    for (int k = 0; k < s->n; k++) {
        for (int i = 0; i < s->nmasters; i++) {
            int port = named_port(s->s[k], i), seen, peers;
            if (port != ports[i])
                snprintf(why, whylen, "sentinel %d names port %d for lockbench-%d, not %d", k,
                         port, i, ports[i]);
            else if ((seen = listed(s->s[k], "replicas", i)) < replicas)
                snprintf(why, whylen, "sentinel %d sees %d of the %d replicas of lockbench-%d",
                         k, seen, replicas, i);
            else if ((peers = listed(s->s[k], "sentinels", i)) < s->n - 1)
                snprintf(why, whylen, "sentinel %d knows %d of the %d other sentinels", k, peers,
                         s->n - 1);
            else
                continue;
            return false;
        }
    }
    return true;
}

/* Redis 7's SENTINEL DEBUG sets the sentinels' internal periods (an older Redis refuses it: the
 * start then takes longer, and see LB_SENTINEL_PING_MS).
 *
 * PING-PERIOD (1 s): a sentinel reconnects a lost link to a node at most once per period, and a
 * node it cannot reach for down-after is down. A promotion loses those links: the SLAVEOF a
 * sentinel sends comes with CLIENT KILL TYPE normal, which cuts every sentinel's connection to
 * the promoted replica (and to each replica re-pointed). With down-after at 300 ms and
 * reconnects 1 s apart, the sentinels then judged the new primary down some 340 ms after
 * promoting it, every time, and with a second replica promoted that one too. With the period
 * below down-after, as it is with Sentinel's defaults (1 s against 30 s), they reconnect first.
 *
 * PUBLISH-PERIOD (2 s): sentinels find each other by the hello each publishes on the
 * primaries, which would cost every run two seconds before a failover can be agreed. Short
 * while the set starts, the default again once it is ready. */
static void sentinel_debug(const lb_sentinels *s, const char *param, int ms)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SENTINEL DEBUG %s %%d", param);
    for (int k = 0; k < s->n; k++)
        freeReplyObject(ask(s->s[k], cmd, ms));
}

/* The period the sentinel runs with (SENTINEL DEBUG's PUBLISH-PERIOD), or -1. */
static int publish_period(const lb_server *s)
{
    redisReply *r = ask(s, "SENTINEL DEBUG", 0);
    int ms = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcasecmp(k->str, "publish-period") == 0)
            ms = v->type == REDIS_REPLY_INTEGER ? (int)v->integer
                 : v->type == REDIS_REPLY_STRING ? atoi(v->str) : -1;
    }
    freeReplyObject(r);
    return ms;
}

static int make_urls(lb_sentinels *s)
{
    for (int i = 0; i < s->nmasters; i++) {
        size_t len = 0;
        FILE *f = open_memstream(&s->urls[i], &len);
        if (!f)
            return -1;
        fputs("sentinel://", f);
        for (int k = 0; k < s->n; k++)
            fprintf(f, "%s127.0.0.1:%d", k ? "," : "", lb_server_port(s->s[k]));
        fprintf(f, "/lockbench-%d", i);
        if (fclose(f) != 0)
            return -1;
    }
    return 0;
}

lb_sentinels *lb_sentinels_start(int count, const int *ports, int n, int replicas, char *err,
                                 size_t errlen)
{
    if ((count != 3 && count != 5) || n < 1 || n > LB_SENTINEL_MASTERS_MAX) {
        snprintf(err, errlen, "sentinels: need 3 or 5 watching 1 to %d primaries",
                 LB_SENTINEL_MASTERS_MAX);
        return NULL;
    }
    lb_sentinels *s = calloc(1, sizeof *s);
    char *conf = sentinel_conf(count, ports, n);
    if (!s || !conf) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->nmasters = n;
    for (; s->n < count; s->n++)
        if (!(s->s[s->n] = lb_server_start_sentinel(conf, err, errlen)))
            goto fail;
    if (make_urls(s) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    int period = publish_period(s->s[0]);
    sentinel_debug(s, "ping-period", LB_SENTINEL_PING_MS);
    if (period > LB_SENTINEL_HELLO_MS)
        sentinel_debug(s, "publish-period", LB_SENTINEL_HELLO_MS);
    char why[160] = "";
    for (int64_t deadline = now_ms() + LB_SENTINEL_READY_MS; !all_ready(s, ports, replicas, why,
                                                                          sizeof why);) {
        if (now_ms() >= deadline) {
            snprintf(err, errlen, "sentinels not ready within %d ms: %s", LB_SENTINEL_READY_MS,
                     why);
            goto fail;
        }
        lb_sleep_ms(POLL_MS);
    }
    if (period > LB_SENTINEL_HELLO_MS)
        sentinel_debug(s, "publish-period", period);
    free(conf);
    return s;
fail:
    free(conf);
    lb_sentinels_stop(s);
    return NULL;
}

void lb_sentinels_stop(lb_sentinels *s)
{
    if (!s)
        return;
    for (int k = 0; k < s->n; k++)
        lb_server_stop(s->s[k]);
    for (int i = 0; i < s->nmasters; i++)
        free(s->urls[i]);
    free(s);
}

int lb_sentinels_count(const lb_sentinels *s)
{
    return s->n;
}

lb_server *lb_sentinels_server(const lb_sentinels *s, int i)
{
    return s->s[i];
}

const char *lb_sentinels_url(const lb_sentinels *s, int i)
{
    return s->urls[i];
}

int lb_sentinels_primary_port(const lb_sentinels *s, int i)
{
    int ports[LB_SENTINELS_MAX];
    for (int k = 0; k < s->n; k++)
        ports[k] = named_port(s->s[k], i);
    for (int k = 0; k < s->n; k++) {
        int votes = 0;
        for (int j = 0; j < s->n; j++)
            votes += ports[j] == ports[k];
        if (ports[k] > 0 && votes > s->n / 2)
            return ports[k];
    }
    return -1;
}

int lb_sentinels_wait_failover(const lb_sentinels *s, int i, int old_port, int64_t timeout_ms,
                               char *err, size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int port = lb_sentinels_primary_port(s, i);
        if (port > 0 && port != old_port)
            return port;
        if (now_ms() >= deadline) {
            snprintf(err, errlen, "no promotion of lockbench-%d within %lld ms: the sentinels "
                     "name port %d", i, (long long)timeout_ms, port);
            return -1;
        }
        lb_sleep_ms(POLL_MS);
    }
}

/* What the sentinels monitor: each primary's ingress (replicas.h), not its own port. A sentinel
 * learns the replicas from the primary's INFO, which lists the address each one announces --
 * its ingress -- and it names, re-points (SLAVEOF) and reaches every node by the address it
 * learned. Monitoring the primary by its ingress too gives every node one address in the
 * sentinels' view: the promoted replica's SLAVEOF targets, a returning old primary's
 * re-pointing and the address clients are given all go through the proxy, so replication stays
 * proxied after a promotion, as with lockbench's own failover. (Monitored by its own port, the
 * old primary would come back under two names: the port monitored and the ingress it announces
 * once it replicates.) The price: the replication faults, which act on the ingress links, also
 * delay or cut what the clients and the sentinels send to a node. */
int lb_sentinels_for_groups(int count, lb_group *const *groups, int n, const char **urls,
                            lb_sentinels **out, char *err, size_t errlen)
{
    int ports[LB_SENTINEL_MASTERS_MAX] = {0};
    *out = NULL;
    if (count == 0)
        return 0;
    if (n < 1 || n > LB_SENTINEL_MASTERS_MAX) {
        snprintf(err, errlen, "sentinels: at most %d primaries", LB_SENTINEL_MASTERS_MAX);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        ports[i] = lb_group_ingress_port(groups[i], lb_group_primary(groups[i]));
        if (ports[i] < 0) {
            snprintf(err, errlen, "sentinels: server %d has no replicas to promote", i);
            return -1;
        }
    }
    if (!(*out = lb_sentinels_start(count, ports, n, lb_group_nodes(groups[0]) - 1, err,
                                    errlen)))
        return -1;
    for (int i = 0; i < n; i++) {
        urls[i] = lb_sentinels_url(*out, i);
        lb_group_leave_roles(groups[i]);
    }
    return 0;
}

int lb_sentinels_sync_group(const lb_sentinels *s, int i, lb_group *g)
{
    int k = lb_group_node_at(g, lb_sentinels_primary_port(s, i));
    if (k >= 0)
        lb_group_set_primary(g, k);
    return k;
}
