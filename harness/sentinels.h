/* sentinels.h -- managed Redis Sentinels: `redis-server --sentinel` processes (started through
 * servers.c, so they live in temporary directories of their own and go down with lockbench)
 * watching managed primaries, so a killed primary leads to a real promotion and clients that
 * connect with a sentinel:// URL follow it.
 *
 * One set of sentinels watches every primary of a run, each under the name "lockbench-<i>",
 * with a quorum of a majority (2 of 3, 3 of 5) and short timings: a primary is judged down
 * after LB_SENTINEL_DOWN_AFTER_MS, so a promotion takes a second or three. */
#ifndef LB_SENTINELS_H
#define LB_SENTINELS_H

#include <stddef.h>
#include <stdint.h>

#include "servers.h"

#define LB_SENTINELS_MAX           5
#define LB_SENTINEL_MASTERS_MAX    9
#define LB_SENTINEL_DOWN_AFTER_MS  300
#define LB_SENTINEL_FAILOVER_MS    3000   /* failover-timeout: a stalled failover is retried
                                             after twice this. It also bounds the wait for the
                                             promoted replica to report itself master, which a
                                             sentinel checks by INFO once a second: at 1 s, a
                                             promotion that worked was often abandoned */
#define LB_SENTINEL_PING_MS        100    /* how often they PING a node, and reconnect a
                                             lost link at most: below down-after (sentinels.c) */
#define LB_SENTINEL_HELLO_MS       100    /* how often they announce themselves while the
                                             set starts (see sentinels.c) */
#define LB_SENTINEL_READY_MS       15000  /* how long the start waits for the sentinels to see
                                             the primaries, their replicas and each other */

typedef struct lb_sentinels lb_sentinels;

/* Starts count (3 or 5) sentinels watching the primaries on 127.0.0.1:ports[0..n-1], and waits
 * (polling to a deadline) until every sentinel names each primary, sees at least `replicas`
 * replicas of it and knows the other sentinels -- what a promotion needs. NULL with err filled
 * on failure (nothing left running). */
lb_sentinels *lb_sentinels_start(int count, const int *ports, int n, int replicas, char *err,
                                 size_t errlen);
void          lb_sentinels_stop(lb_sentinels *s);   /* accepts NULL; stops and removes them all */

int           lb_sentinels_count(const lb_sentinels *s);
lb_server    *lb_sentinels_server(const lb_sentinels *s, int i);
/* sentinel://127.0.0.1:P1,...,127.0.0.1:Pk/lockbench-<i>: how a client reaches primary i. */
const char   *lb_sentinels_url(const lb_sentinels *s, int i);

/* The port a majority of the sentinels name for primary i, or -1 when they do not agree. */
int           lb_sentinels_primary_port(const lb_sentinels *s, int i);
/* Polls until a majority name a primary for i other than 127.0.0.1:old_port (a promotion): its
 * port, or -1 at the deadline with err saying what they name. */
int           lb_sentinels_wait_failover(const lb_sentinels *s, int i, int old_port,
                                         int64_t timeout_ms, char *err, size_t errlen);

/* The scenario's wiring (redis.sentinels): count sentinels watching the primaries of the n
 * managed groups (replicas.h; every group has replicas), into *out, and in urls[i] the
 * sentinel:// URL group i's clients use instead of its front link (valid until
 * lb_sentinels_stop). Each primary is monitored at its ingress, the proxied address it
 * announces (see sentinels.c); the groups leave roles to the sentinels from then on
 * (lb_group_leave_roles). count 0 starts nothing and leaves urls and *out (NULL) alone. 0, or
 * -1 with err filled (nothing left running). */
struct lb_group;
int lb_sentinels_for_groups(int count, struct lb_group *const *groups, int n,
                            const char **urls, lb_sentinels **out, char *err, size_t errlen);

/* Which node of group i the sentinels name as its primary now (a majority of them), recorded
 * in the group (lb_group_set_primary) so server faults act on it: the node, or -1 when they do
 * not agree or name no node of the group (the group is left as it was). */
int lb_sentinels_sync_group(const lb_sentinels *s, int i, struct lb_group *g);

#endif
