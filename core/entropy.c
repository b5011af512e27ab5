/* entropy.c -- random bytes for the drivers: lock tokens and back-off jitter seeds. The machines
 * (op.c, the algorithms, backoff.c) draw none themselves; a driver hands them what they need,
 * so a simulator can hand them a replayable stream instead.
 *
 * Bytes come from getrandom(2), 512 at a time: a pool per thread, so taking a lock costs no
 * system call of its own. A forked child empties its copy (the parent's next tokens must not
 * be the child's too). */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "internal.h"

#define POOL 512

static __thread unsigned char pool[POOL];
static __thread size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    explicit_bzero(pool, sizeof pool);
    pool_left = 0;
}

static void pool_register(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

int dlock__random_bytes(void *out, size_t n)
{
    if (n > POOL)
        return -1;
    pthread_once(&pool_once, pool_register);
    if (pool_left < n) {
        size_t got = 0;
        while (got < sizeof pool) {
            ssize_t k = getrandom(pool + got, sizeof pool - got, 0);
            if (k < 0 && errno != EINTR)
                return -1;
            if (k > 0)
                got += (size_t)k;
        }
        pool_left = sizeof pool;
    }
    pool_left -= n;
    memcpy(out, pool + pool_left, n);
    explicit_bzero(pool + pool_left, n);  /* bytes handed out are gone from the pool */
    return 0;
}
