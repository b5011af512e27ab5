/* monotonic.h -- the monotonic clock: intervals, deadlines, and condition variables whose timed
 * waits take monotonic deadlines. Internal, shared with lockbench. */
#ifndef DLOCK_MONOTONIC_H
#define DLOCK_MONOTONIC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t         dlock__mono_us(void);
struct timespec dlock__mono_timespec(int64_t us);       /* a dlock__mono_us() value, as timespec */
void            dlock__cond_init_monotonic(pthread_cond_t *cv);

#endif
