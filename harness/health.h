/* health.h -- whether a run's servers answer: a PING before the clients start, and a watch
 * while they run.
 *
 * A server that never answers -- stopped, black-holed, refusing our credentials -- leaves every
 * client waiting for ever: its run would never end. So before the clients start every server
 * of the run (the lock servers and the protected resource) must answer a PING, and while they
 * run a thread of its own PINGs, on connections of its own, the servers the scenario's events
 * leave alone. A server that gives no PONG for the command timeout (the longest of the
 * scenario's groups) plus LB_HEALTH_GRACE_MS ends the run: run.c reports it, naming the server,
 * and exits 3. A server that a kill-server or pause-server event of the scenario targets is not
 * watched: its silence is the experiment.
 *
 * One check per run, not per sample: the drivers' hot paths do not see it. */
#ifndef LB_HEALTH_H
#define LB_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

/* How long past the command timeout a server may stay silent: long enough that a server busy
 * with a slow command (a large AOF rewrite, a heavy client) is not taken for dead, short
 * enough that a run against a dead one ends within seconds. */
#define LB_HEALTH_GRACE_MS 2000
/* How often the watch PINGs each server. */
#define LB_HEALTH_PERIOD_MS 200

typedef struct lb_health lb_health;

/* The servers of a run of variant v: lock server i (0 <= i < nlock) at lock_urls[i], and the
 * protected resource at resource_url (index nlock; not watched twice when it is a lock
 * server's URL). The URLs must outlive h. NULL when out of memory. */
lb_health *lb_health_new(const lb_scenario *v, const char *const *lock_urls, int nlock,
                         const char *resource_url);
void       lb_health_free(lb_health *h);  /* stops the watch first; accepts NULL */

/* The check before a run: each server answers PING with PONG within the limit (a server that
 * is still starting or loading is given until then; one that refuses us fails at once). 0, or
 * -1 with err naming the first server that did not and why (never the password). */
int  lb_health_check(lb_health *h, char *err, size_t errlen);

/* Starts the watch. on_dead(ud, why) is called at most once, from the watch's own thread, for
 * the first watched server that gives no PONG within the limit; why names it. 0, or -1 with
 * err filled (no thread could be started). */
int  lb_health_start(lb_health *h, void (*on_dead)(void *ud, const char *why), void *ud,
                     char *err, size_t errlen);
/* Stops the watch (waits for its thread: at most one PING's timeout); accepts NULL. */
void lb_health_stop(lb_health *h);

/* "server 0 (127.0.0.1:6379)", "protected resource (...)": how messages name server i. */
void lb_health_name(const lb_health *h, int server, char *buf, size_t len);

/* Whether server i (nlock: the resource) was found dead by the check or the watch: run.c does
 * not spend a timeout on it to clean up. */
bool lb_health_dead(const lb_health *h, int server);

#endif
