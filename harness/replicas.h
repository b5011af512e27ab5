/* replicas.h -- a managed server with its replicas: what `redis.replicas` starts, and the
 * failover, kill, pause and replication faults that act on it.
 *
 * A group is one managed primary (node 0 when it starts) and R replicas (nodes 1..R), all real
 * redis-server processes (servers.h). With R = 0 it is the plain server: its URL is the
 * server's, and no proxy is involved. With R > 0 the group owns a fault proxy (proxy.h) with:
 *
 *   - one ingress link per node, the node's proxied address: every replica replicates from its
 *     primary's ingress (`replicaof 127.0.0.1 <ingress>`) and every node announces its own
 *     (`replica-announce-ip`/`replica-announce-port`), so whoever re-points a replica from what
 *     the nodes report -- this module, or a Sentinel -- keeps the link proxied. The replication
 *     faults set latency or partition on these links;
 *   - one front link, the address clients are given (lb_group_url): it relays to the current
 *     primary. A failover re-aims it at the promoted replica and resets its connections, as a
 *     failover drops the connections of a server that moved, so clients follow with no change
 *     to the lock library (a reconnect reaches the new primary).
 *
 * The harness's own commands (REPLICAOF, INFO, CONFIG) go straight to a node's port, never
 * through the proxy: the control must not be delayed or cut by the faults it applies. Every
 * change of role is saved into the node's config file (CONFIG REWRITE), so a node restarted
 * later keeps its place. Calls come from one thread (the main thread: a restarted server dies
 * with the thread that spawned it). */
#ifndef LB_REPLICAS_H
#define LB_REPLICAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "servers.h"

#define LB_GROUP_MAX_REPLICAS 4

typedef struct lb_group lb_group;

/* Starts the primary and its replicas and, with replicas, waits (polling INFO to a deadline)
 * until every replica's link is up and it has the primary's replication offset. NULL on
 * failure, with the reason in err. */
lb_group   *lb_group_start(lb_persistence persistence, int replicas, char *err, size_t errlen);
/* Stops every node and the proxy; accepts NULL. */
void        lb_group_stop(lb_group *g);

/* "redis://127.0.0.1:PORT": the front link with replicas, the server itself without. */
const char *lb_group_url(const lb_group *g);
int         lb_group_nodes(const lb_group *g);          /* 1 + replicas */
lb_server  *lb_group_node(const lb_group *g, int node);
int         lb_group_primary(const lb_group *g);        /* the node clients reach */
int         lb_group_ingress_port(const lb_group *g, int node);  /* -1 without replicas */

/* Polls until every running replica has an up link and the primary's offset, for at most
 * timeout_ms. 0, or -1 with the replica and its state in err. */
int lb_group_wait_sync(lb_group *g, int timeout_ms, char *err, size_t errlen);
/* A node's master_repl_offset (what it has applied, for a replica); -1 when it does not answer. */
int64_t lb_group_offset(const lb_group *g, int node);

/* Promotes the most up-to-date running replica (the highest replication offset; the lowest
 * node on a tie): the old primary is killed first (kill_old) or demoted after the promotion
 * (REPLICAOF the new primary), replication bytes still in flight from it are dropped, the new
 * primary gets REPLICAOF NO ONE, the other replicas are re-pointed to it, and the front link
 * follows. Returns the promoted node, or -1 with err filled (no replica answers; then nothing
 * was done: the old primary runs on). */
int lb_group_failover(lb_group *g, bool kill_old, char *err, size_t errlen);

/* kill-server: SIGKILL the current primary (no failover: its clients find nothing). The node
 * killed is returned (-1 when none is running). */
int lb_group_kill(lb_group *g);
/* Restarts node k, killed by lb_group_kill or a failover, on its port and files. If it is no
 * longer the primary it comes back as a replica of the current one, as Sentinel re-points a
 * returning old primary. 0, or -1 with err filled. */
int lb_group_restart(lb_group *g, int k, char *err, size_t errlen);
/* Sentinels watching the group (redis.sentinels) promote and re-point on their own; the group
 * then follows what they report instead of deciding:
 *
 *   - lb_group_node_at: the node a sentinel names by its address (its ingress port, the one it
 *     announces; its own port too), -1 when none is;
 *   - lb_group_set_primary: the node the sentinels promoted becomes the one kill-server and
 *     pause-server act on, and the front link follows it;
 *   - lb_group_leave_roles: from now on lb_group_restart only restarts a killed node: a returning
 *     old primary is the sentinels' to re-point (as they do once it has been up for a while),
 *     and a REPLICAOF of ours, racing their reconfiguration, could aim it elsewhere. */
int  lb_group_node_at(const lb_group *g, int port);
int  lb_group_set_primary(lb_group *g, int node);
void lb_group_leave_roles(lb_group *g);

/* pause-server: SIGSTOP / SIGCONT of the current primary. */
int lb_group_pause(lb_group *g);
int lb_group_resume(lb_group *g);

/* The replication links of the group. Delays overlap as client delays do (the latest in effect
 * sets the latency; when it ends the one before applies again); partitions heal when the last
 * one ends. No-ops (0) without replicas. */
int lb_group_repl_delay(lb_group *g, int64_t latency_us, bool on);
int lb_group_repl_partition(lb_group *g, bool on);

#endif
