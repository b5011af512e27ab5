/* time.c -- the two clocks libdlock reads. Intervals, deadlines and lease validity use the
 * monotonic clock; only the legacy algorithm's expiry values use the wall clock (and that
 * through dlock_options.wallclock when set, so tests can skew it). */
#include <time.h>

#include "internal.h"

int64_t dlock__mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t dlock__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
