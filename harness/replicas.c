/* replicas.c -- a managed server with its replicas (see replicas.h).
 *
 * Start-up: every node starts as a plain server (servers.c), then gets its ingress link and
 * the settings that make it a member: it announces its ingress, and a full sync goes through a
 * file (`repl-diskless-sync no`): Redis 7's diskless sync waits 5 s for more replicas, and then
 * streams no command to the new replica until its first ACK, up to a second later -- a write
 * made meanwhile would reach no replica, whatever the scenario's faults. The file is deleted
 * once used (`rdb-del-sync-files yes`), so a node without persistence still restarts empty.
 * The replicas are pointed at the primary's ingress, and CONFIG REWRITE saves each node's
 * role, so a restart keeps it. Start-up ends when a marker published on the primary has
 * reached every replica: the command stream flows end to end.
 *
 * A failover follows Sentinel's steps: rank the replicas that answer by replication offset,
 * REPLICAOF NO ONE on the best, REPLICAOF the new primary on the others (by its announced,
 * proxied address), then the clients' address moves. What the old primary had not yet shipped
 * is lost: the bytes still held in its ingress link (a replication delay) are dropped with the
 * link's connections, as a dead primary's in-flight bytes never arrive. */
#include "replicas.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connect.h"
#include "monotonic.h"
#include "proxy.h"

#define CONTROL_TIMEOUT_MS 1000   /* a control command on a node; a silent one is skipped */
#define SYNC_TIMEOUT_MS    10000  /* start-up: replicas caught up */
#define SYNC_POLL_MS       5
#define MAX_DELAYS         64

typedef struct {
    lb_server *srv;
    int ingress;        /* proxy link to this node, -1 without replicas */
    int ingress_port;
    bool down;          /* killed by a fault and not restarted */
} node;

struct lb_group {
    lb_proxy *proxy;    /* NULL without replicas */
    int n;
    int primary;
    node nodes[1 + LB_GROUP_MAX_REPLICAS];
    int front;          /* the clients' link, -1 without replicas */
    int paused;         /* the node paused, -1 = none */
    int partitions;
    int64_t delays[MAX_DELAYS];              /* replication latencies in effect, oldest first */
    int ndelays;
    bool sentinels;     /* roles are the sentinels' (lb_group_leave_roles) */
    char url[LB_SERVER_URL_MAX];
};

/* ---- commands on a node -------------------------------------------------------------------- */

/* One command on a fresh connection to the node's own port; NULL when it cannot be reached or
 * does not answer in time. A node may die under us: its SIGPIPE is swallowed. */
static redisReply *node_command(const node *nd, const char *fmt, ...)
{
    struct timeval tv = {.tv_sec = CONTROL_TIMEOUT_MS / 1000,
                         .tv_usec = (CONTROL_TIMEOUT_MS % 1000) * 1000};
    dlock__pipe_guard guard;
    redisReply *r = NULL;
    if (nd->down || !lb_server_is_running(nd->srv))
        return NULL;
    dlock__sigpipe_block(&guard);
    redisContext *c = redisConnectWithTimeout("127.0.0.1", lb_server_port(nd->srv), tv);
    bool failed = c == NULL || c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK;
    if (!failed) {
        va_list ap;
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
        failed = r == NULL;
    }
    if (c)
        redisFree(c);
    dlock__sigpipe_unblock(&guard, failed);
    return r;
}

/* A command that must answer +OK; 0 or -1 with err naming the node and the reply. */
static int node_ok(const lb_group *g, int k, char *err, size_t errlen, const char *what,
                   redisReply *r)
{
    int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
    if (rc < 0 && err)
        snprintf(err, errlen, "node %d (port %d): %s: %s", k, lb_server_port(g->nodes[k].srv),
                 what, !r ? "no answer" : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

/* REPLICAOF the given node's ingress (or NO ONE for -1), saved in the node's config file. */
static int point(lb_group *g, int k, int to, char *err, size_t errlen)
{
    redisReply *r = to < 0 ? node_command(&g->nodes[k], "REPLICAOF NO ONE")
                           : node_command(&g->nodes[k], "REPLICAOF 127.0.0.1 %d",
                                          g->nodes[to].ingress_port);
    if (node_ok(g, k, err, errlen, "REPLICAOF", r) < 0)
        return -1;
    return node_ok(g, k, err, errlen, "CONFIG REWRITE",
                   node_command(&g->nodes[k], "CONFIG REWRITE"));
}

/* A field of INFO replication ("master_repl_offset"), copied into out; false when absent. */
static bool info_field(const redisReply *r, const char *name, char *out, size_t outlen)
{
    char key[64];
    snprintf(key, sizeof key, "\n%s:", name);
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, key) : NULL;
    if (!p)
        return false;
    p += strlen(key);
    size_t len = strcspn(p, "\r\n");
    snprintf(out, outlen, "%.*s", (int)len, p);
    return true;
}

int64_t lb_group_offset(const lb_group *g, int k)
{
    char v[32];
    redisReply *r = node_command(&g->nodes[k], "INFO replication");
    int64_t off = info_field(r, "master_repl_offset", v, sizeof v) ? strtoll(v, NULL, 10) : -1;
    freeReplyObject(r);
    return off;
}

/* ---- start and stop ------------------------------------------------------------------------ */

/* The node's ingress link, the settings every member has, and its config saved. */
static int join(lb_group *g, int k, char *err, size_t errlen)
{
    node *nd = &g->nodes[k];
    nd->ingress = lb_proxy_add_link(g->proxy, "127.0.0.1", lb_server_port(nd->srv),
                                    &nd->ingress_port);
    if (nd->ingress < 0) {
        snprintf(err, errlen, "node %d: proxy link: %s", k, strerror(errno));
        return -1;
    }
    redisReply *r = node_command(nd, "CONFIG SET replica-announce-ip 127.0.0.1 "
                                      "replica-announce-port %d repl-diskless-sync no "
                                      "rdb-del-sync-files yes",
                                 nd->ingress_port);
    return node_ok(g, k, err, errlen, "CONFIG SET", r);
}

static int start_replicas(lb_group *g, char *err, size_t errlen)
{
    char why[200];
    if (!(g->proxy = lb_proxy_start(0, why, sizeof why))) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    for (int k = 0; k < g->n; k++)
        if (join(g, k, err, errlen) < 0)
            return -1;
    int port;
    g->front = lb_proxy_add_link(g->proxy, "127.0.0.1", lb_server_port(g->nodes[0].srv), &port);
    if (g->front < 0) {
        snprintf(err, errlen, "front link: %s", strerror(errno));
        return -1;
    }
    snprintf(g->url, sizeof g->url, "redis://127.0.0.1:%d", port);
    if (point(g, 0, -1, err, errlen) < 0)   /* saves the primary's settings */
        return -1;
    for (int k = 1; k < g->n; k++)
        if (point(g, k, 0, err, errlen) < 0)
            return -1;
    return lb_group_wait_sync(g, SYNC_TIMEOUT_MS, err, errlen);
}

lb_group *lb_group_start(lb_persistence persistence, int replicas, char *err, size_t errlen)
{
    if (replicas < 0 || replicas > LB_GROUP_MAX_REPLICAS) {
        snprintf(err, errlen, "replicas: %d is not from 0 to %d", replicas, LB_GROUP_MAX_REPLICAS);
        return NULL;
    }
    lb_group *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->front = -1;
    g->paused = -1;
    for (int k = 0; k <= replicas; k++, g->n++) {
        g->nodes[k].ingress = g->nodes[k].ingress_port = -1;
        if (!(g->nodes[k].srv = lb_server_start(persistence, err, errlen))) {
            lb_group_stop(g);
            return NULL;
        }
    }
    snprintf(g->url, sizeof g->url, "%s", lb_server_url(g->nodes[0].srv));
    if (replicas > 0 && start_replicas(g, err, errlen) < 0) {
        lb_group_stop(g);
        return NULL;
    }
    return g;
}

/* The proxy goes first: its links would otherwise see every node die and reset. */
void lb_group_stop(lb_group *g)
{
    if (!g)
        return;
    lb_proxy_stop(g->proxy);
    for (int k = 0; k < g->n; k++)
        lb_server_stop(g->nodes[k].srv);
    free(g);
}

const char *lb_group_url(const lb_group *g)
{
    return g->url;
}

int lb_group_nodes(const lb_group *g)
{
    return g->n;
}

lb_server *lb_group_node(const lb_group *g, int k)
{
    return k >= 0 && k < g->n ? g->nodes[k].srv : NULL;
}

int lb_group_primary(const lb_group *g)
{
    return g->primary;
}

int lb_group_ingress_port(const lb_group *g, int k)
{
    return k >= 0 && k < g->n ? g->nodes[k].ingress_port : -1;
}

/* ---- sync ---------------------------------------------------------------------------------- */

/* Whether replica k is in sync with an offset of at least want; its state goes into why. */
static bool in_sync(const lb_group *g, int k, int64_t want, char *why, size_t whylen)
{
    char link[32] = "?", off[32] = "-1";
    redisReply *r = node_command(&g->nodes[k], "INFO replication");
    bool answered = r && r->type == REDIS_REPLY_STRING;
    info_field(r, "master_link_status", link, sizeof link);
    info_field(r, "master_repl_offset", off, sizeof off);
    freeReplyObject(r);
    if (answered)
        snprintf(why, whylen, "master_link_status:%s, offset %s of %lld", link, off,
                 (long long)want);
    else
        snprintf(why, whylen, "no answer");
    return answered && strcmp(link, "up") == 0 && strtoll(off, NULL, 10) >= want;
}

int lb_group_wait_sync(lb_group *g, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = dlock__mono_us() + (int64_t)timeout_ms * 1000;
    if (g->n > 1)   /* PUBLISH is replicated: its offset is reached only through the stream */
        freeReplyObject(node_command(&g->nodes[g->primary], "PUBLISH lockbench:sync 1"));
    int64_t want = lb_group_offset(g, g->primary);
    if (g->n > 1 && want < 0) {
        snprintf(err, errlen, "node %d (the primary) does not answer INFO", g->primary);
        return -1;
    }
    for (int k = 0; k < g->n; k++) {
        char why[160];
        if (k == g->primary || g->nodes[k].down)
            continue;
        while (!in_sync(g, k, want, why, sizeof why)) {
            if (dlock__mono_us() >= deadline) {
                snprintf(err, errlen, "replica node %d (port %d) did not sync with its primary "
                         "within %d ms (%s)", k, lb_server_port(g->nodes[k].srv), timeout_ms, why);
                return -1;
            }
            lb_sleep_ms(SYNC_POLL_MS);
        }
    }
    return 0;
}

/* ---- faults -------------------------------------------------------------------------------- */

static void mark_killed(lb_group *g, int k)
{
    g->nodes[k].down = true;
    if (g->paused == k)
        g->paused = -1;
}

int lb_group_kill(lb_group *g)
{
    int k = g->primary;
    if (g->nodes[k].down || lb_server_kill(g->nodes[k].srv) < 0)
        return -1;
    mark_killed(g, k);
    return k;
}

/* The running replica with the highest offset (the lowest node on a tie); -1 when none answers. */
static int most_up_to_date(const lb_group *g, int old)
{
    int best = -1;
    int64_t best_off = -1;
    for (int k = 0; k < g->n; k++) {
        if (k == old || g->nodes[k].down)
            continue;
        int64_t off = lb_group_offset(g, k);
        if (off > best_off) {
            best = k;
            best_off = off;
        }
    }
    return best;
}

/* The nodes other than the new primary follow it; the old one too when it was demoted. */
static int repoint_others(lb_group *g, int old, int best, bool kill_old, char *err, size_t errlen)
{
    int rc = 0;
    for (int k = 0; k < g->n; k++) {
        if (k == best || g->nodes[k].down || (k == old && kill_old))
            continue;
        char why[256];
        if (point(g, k, best, why, sizeof why) < 0 && rc == 0) {
            snprintf(err, errlen, "%s", why);
            rc = -1;   /* the others are still re-pointed */
        }
    }
    return rc;
}

int lb_group_failover(lb_group *g, bool kill_old, char *err, size_t errlen)
{
    int old = g->primary;
    bool replica_up = false;
    for (int k = 0; k < g->n; k++)
        replica_up |= k != old && !g->nodes[k].down;
    if (g->n < 2 || !replica_up) {   /* checked before the kill: a failover that cannot promote
                                        leaves the primary alone */
        snprintf(err, errlen, g->n < 2 ? "the server has no replicas"
                                       : "every replica of node %d is down: nothing to promote",
                 old);
        return -1;
    }
    if (kill_old && !g->nodes[old].down) {
        if (lb_server_kill(g->nodes[old].srv) < 0) {
            snprintf(err, errlen, "node %d: kill: %s", old, strerror(errno));
            return -1;
        }
        mark_killed(g, old);
    }
    lb_proxy_reset(g->proxy, g->nodes[old].ingress);   /* its unshipped writes are lost */
    int best = most_up_to_date(g, old);
    if (best < 0) {
        snprintf(err, errlen, "no replica of node %d answers: nothing to promote", old);
        return -1;
    }
    if (point(g, best, -1, err, errlen) < 0)
        return -1;
    g->primary = best;
    if (lb_proxy_set_target(g->proxy, g->front, "127.0.0.1",
                            lb_server_port(g->nodes[best].srv)) < 0) {
        snprintf(err, errlen, "front link: %s", strerror(errno));
        return -1;
    }
    return repoint_others(g, old, best, kill_old, err, errlen) < 0 ? -1 : best;
}

int lb_group_restart(lb_group *g, int k, char *err, size_t errlen)
{
    if (k < 0 || k >= g->n || !g->nodes[k].down) {
        snprintf(err, errlen, "node %d is not down", k);
        return -1;
    }
    if (lb_server_restart(g->nodes[k].srv, err, errlen) < 0)
        return -1;
    g->nodes[k].down = false;
    return k == g->primary || g->sentinels ? 0 : point(g, k, g->primary, err, errlen);
}

int lb_group_node_at(const lb_group *g, int port)
{
    for (int k = 0; port > 0 && k < g->n; k++)
        if (g->nodes[k].ingress_port == port || lb_server_port(g->nodes[k].srv) == port)
            return k;
    return -1;
}

int lb_group_set_primary(lb_group *g, int k)
{
    if (k < 0 || k >= g->n || k == g->primary)
        return k < 0 || k >= g->n ? -1 : 0;
    g->primary = k;
    if (g->front >= 0 &&
        lb_proxy_set_target(g->proxy, g->front, "127.0.0.1", lb_server_port(g->nodes[k].srv)) < 0)
        return -1;
    return 0;
}

void lb_group_leave_roles(lb_group *g)
{
    g->sentinels = true;
}

int lb_group_pause(lb_group *g)
{
    int k = g->primary;
    if (g->nodes[k].down || lb_server_pause(g->nodes[k].srv) < 0)
        return -1;
    g->paused = k;
    return 0;
}

int lb_group_resume(lb_group *g)
{
    int k = g->paused;
    g->paused = -1;
    return k < 0 ? 0 : lb_server_resume(g->nodes[k].srv);
}

/* Sets every ingress link of the group: only replication runs over them. */
static int links_set(lb_group *g, int64_t latency_us, int partition)
{
    int rc = 0;
    for (int k = 0; k < g->n; k++) {
        int link = g->nodes[k].ingress;
        if (partition >= 0)
            rc |= lb_proxy_set_partition(g->proxy, link, partition > 0);
        else
            rc |= lb_proxy_set_latency(g->proxy, link, latency_us, 0);
    }
    return rc ? -1 : 0;
}

int lb_group_repl_delay(lb_group *g, int64_t latency_us, bool on)
{
    if (!g->proxy)
        return 0;
    if (on && g->ndelays < MAX_DELAYS) {
        g->delays[g->ndelays++] = latency_us;
    } else if (!on) {
        for (int i = g->ndelays - 1; i >= 0; i--) {
            if (g->delays[i] == latency_us) {
                memmove(&g->delays[i], &g->delays[i + 1], (size_t)(g->ndelays - i - 1) *
                        sizeof g->delays[0]);
                g->ndelays--;
                break;
            }
        }
    }
    return links_set(g, g->ndelays ? g->delays[g->ndelays - 1] : 0, -1);
}

int lb_group_repl_partition(lb_group *g, bool on)
{
    if (!g->proxy)
        return 0;
    g->partitions += on ? 1 : -1;
    if (g->partitions < 0)
        g->partitions = 0;
    if (g->partitions != (on ? 1 : 0))
        return 0;   /* already cut, or another partition still holds */
    return links_set(g, 0, on ? 1 : 0);
}
