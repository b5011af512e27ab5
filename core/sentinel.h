/* sentinel.h -- sentinel:// URLs: a primary found through Redis Sentinel, by one resolver per
 * process and (sentinels, master name), shared by every connection of such a URL. Internal. */
#ifndef DLOCK_SENTINEL_H
#define DLOCK_SENTINEL_H

#include "connect.h"
#include "internal.h"

#define DLOCK__MAX_SENTINELS 16
/* A resolver asks the sentinels again at most this often, however many clients find its
 * answer wrong: what bounds the queries of a failover, whatever the number of clients. */
#define DLOCK__SENTINEL_REQUERY_MS 100
/* On a loop, how long one sentinel has to answer before the next is asked. */
#define DLOCK__SENTINEL_ASK_MS 1000

typedef struct dlock__resolver dlock__resolver;

/* The sentinel part of a parsed URL, and what its connection last used. */
typedef struct dlock__sentinel {
    int n;
    char *host[DLOCK__MAX_SENTINELS];
    int port[DLOCK__MAX_SENTINELS];
    char *master;
    dlock__resolver *r;   /* the process's resolver for these sentinels and master: first use */
    uint64_t gen;         /* the resolver's generation of the address last connected to; 0 none */
} dlock__sentinel;

/* sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db] (port 26379 by
 * default; at most DLOCK__MAX_SENTINELS hosts). 0, or -1 with err naming the part. */
int  dlock__sentinel_url_parse(dlock__url *u, const char *url, char *err, size_t errlen);
void dlock__sentinel_free(dlock__sentinel *s);  /* accepts NULL; cancels its query in flight */

/* dlock__connect and dlock__connect_nonblock for a sentinel:// URL. Blocking: the resolver's
 * address (asking the sentinels first when it has none or it is suspect, or waiting for the
 * query another thread has in flight), then AUTH, SELECT and ROLE, which must say master.
 * Non-blocking: the address the resolver has (none yet: NULL, err says so), with ROLE as one
 * more setup command whose reply dlock__role_is_master judges. */
redisContext *dlock__sentinel_connect(const dlock__url *u, int64_t timeout_ms, char *err,
                                      size_t errlen, char *refusal, size_t refusal_len);
redisContext *dlock__sentinel_connect_nonblock(const dlock__url *u, char *err, size_t errlen,
                                               int *setup);

/* u's connection failed, timed out, or its server is not (or no longer) the primary: the
 * address it used is suspect, and the next connect that is due asks the sentinels again. */
void dlock__sentinel_failed(const dlock__url *u);
/* The resolver knows a newer address than the one u's connection uses: drop it. Lock-free. */
bool dlock__sentinel_outdated(const dlock__url *u);
/* On a loop: when u's resolver has no address or a suspect one and no query in flight, asks the
 * sentinels in turn without blocking, through io on loop (the answer lands in the resolver for
 * the next connect; the query is cancelled if u is freed first). */
void dlock__sentinel_ask_async(const dlock__url *u, const dlock__io *io, void *loop);

/* A ROLE reply: true for a primary; else why (e.g. "ROLE says slave"). */
bool dlock__role_is_master(const redisReply *r, char *why, size_t whylen);
/* An error reply that says the server is no longer the primary, or has lost it. */
bool dlock__error_says_moved(const char *reply);

/* SENTINEL get-master-addr-by-name commands this process has sent (for tests and reports). */
uint64_t dlock__sentinel_queries(void);

#endif
