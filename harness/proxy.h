/* proxy.h -- the fault proxy: a TCP relay that delays, partitions and resets connections.
 *
 * One event-loop thread per proxy. A link is a listening socket on 127.0.0.1 (kernel-chosen port)
 * that relays every accepted connection to one target; lockbench makes one link per
 * (client, server) pair so that faults apply per client. Faults are set per link and act on both
 * directions of every connection of the link.
 *
 * The control calls may come from any thread. The ones that change a fault return once the loop
 * has applied it, so a caller that timestamps the return knows the fault is in force. Each returns
 * 0 (or a link id >= 0) on success and -1 with errno set on failure (EINVAL: unknown link or bad
 * value; ETIMEDOUT: the loop did not answer). */
#ifndef LB_PROXY_H
#define LB_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lb_proxy lb_proxy;

/* Per-link counters, read with lb_proxy_get_stats. Bytes count what was delivered, not what is
 * still held. */
typedef struct {
    uint64_t bytes_to_server;     /* client -> target */
    uint64_t bytes_to_client;     /* target -> client */
    uint64_t connections;         /* accepted since the link was made */
    uint64_t open_connections;    /* accepted and not yet closed */
    uint64_t resets;              /* connections closed by lb_proxy_reset */
    uint64_t bytes_held;          /* read and not yet delivered, both directions, right now */
} lb_proxy_stats;

/* Starts the loop thread. seed makes each link's jitter sequence reproducible. NULL on failure,
 * with the reason in err. */
lb_proxy *lb_proxy_start(uint64_t seed, char *err, size_t errlen);

/* Stops the loop, closes every listening socket and connection (clients see EOF), frees p.
 * Accepts NULL. Must not race with other calls on the same proxy. */
void lb_proxy_stop(lb_proxy *p);

/* Makes a link to host:port (resolved now; numeric or a name) with no fault. Stores the local
 * listening port in *listen_port and returns the link id (>= 0), or -1. */
int lb_proxy_add_link(lb_proxy *p, const char *host, int port, int *listen_port);

/* One-way latency, applied in each direction, with uniform jitter in [-jitter, +jitter]; a chunk
 * never overtakes the one before it. 0, 0 relays immediately. Applies to bytes read from now on. */
int lb_proxy_set_latency(lb_proxy *p, int link, int64_t latency_us, int64_t jitter_us);

/* on: nothing passes either way; bytes already read are held, new connections wait in the listen
 * backlog. off: the held bytes are delivered and relaying resumes. */
int lb_proxy_set_partition(lb_proxy *p, int link, bool on);

/* Closes every connection of the link: RST to the client, plain close to the target. Connections
 * waiting in the backlog (during a partition) are accepted and reset too. Held bytes are dropped
 * with their connection, as a reset would. */
int lb_proxy_reset(lb_proxy *p, int link);

/* Aims the link at host:port (resolved now) and resets its connections as lb_proxy_reset does:
 * what a failover does to the clients of a server that moved. New connections go to the new
 * target; the link's faults (latency, partition) stay as they were. */
int lb_proxy_set_target(lb_proxy *p, int link, const char *host, int port);

int lb_proxy_get_stats(lb_proxy *p, int link, lb_proxy_stats *out);

#endif
