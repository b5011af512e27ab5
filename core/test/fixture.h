/* fixture.h -- the integration tests' redis-server processes (managed by harness/servers.c)
 * and plain hiredis access to them, shared so each test file keeps only its tests. */
#ifndef DLOCK_TEST_FIXTURE_H
#define DLOCK_TEST_FIXTURE_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dlock.h"
#include "servers.h"

#define FX_MAX_SERVERS 9

extern lb_server *fx_servers[FX_MAX_SERVERS];
extern const char *fx_urls[FX_MAX_SERVERS];

int            fx_start(int n);     /* starts n servers; 0, or -1 (printed) */
int            fx_stop(void **state);  /* a cmocka group teardown: stops them all */
int            fx_reset(void **state); /* a cmocka setup: every server up, resumed and empty */
redisContext  *fx_raw(int i);        /* a plain connection to server i, NULL when it is down */
char          *fx_get(int i, const char *key);  /* GET on server i; NULL when missing; free it */
/* A command on server i whose integer or string reply is read as a number (nil: -1). */
long long      fx_int(int i, const char *fmt, const char *arg);
dlock_client  *fx_client(int n);     /* a client of the first n servers (fails the test) */
int64_t        fx_now_ms(void);      /* monotonic */
void           fx_sleep_ms(int64_t ms);

/* A client hook (dlock_client_set_hook) counting the commands named `name` that the client
 * sends, from whichever thread sends them. */
typedef struct fx_counter {
    const char *name;
    atomic_int n;
} fx_counter;
int            fx_count_hook(void *counter, const char *command);

#endif
