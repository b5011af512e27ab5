/* histogram.h -- log-linear latency histogram (microseconds, 1 us to 1 h, <= 0.1 % error).
 *
 * The harness keeps one histogram per client thread, records every acquire latency into it
 * without a lock, an allocation or a system call, and merges the per-thread histograms once the
 * threads have joined.  Percentiles, the summary figures and latency.hgrm come from the merge.
 *
 *     lb_hist *h = lb_hist_new();            once per thread, before the start barrier
 *     lb_hist_record(h, elapsed_us);         per sample
 *     lb_hist_merge(total, h);               after the join
 *     lb_hist_value_at_percentile(total, 99.0);
 *     lb_hist_write_hgrm(total, f, 1000.0);  values in milliseconds
 *     lb_hist_free(h);
 *
 * A histogram is not thread-safe: one writer at a time, and no reader while it writes.
 *
 * Layout: 2048 sub-buckets per power of two (3 significant digits), so every value is known to
 * within 1/1024 of itself; values 0..2047 are exact.  Counters are 32-bit: 23,552 of them, about
 * 92 KiB per histogram (lb_hist_bytes() gives the exact figure).
 */
#ifndef LB_HISTOGRAM_H
#define LB_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LB_HIST_MAX_US      INT64_C(3600000000)  /* one hour: larger values are clamped to it */
#define LB_HIST_SUB_BUCKETS 2048                 /* sub-buckets per power of two */
#define LB_HIST_BUCKETS     22                   /* powers of two needed to reach LB_HIST_MAX_US */

typedef struct lb_hist lb_hist;

/* Allocates a zeroed histogram and touches all of its memory, so the first samples take no page
 * faults.  NULL when out of memory. */
lb_hist *lb_hist_new(void);
/* Accepts NULL. */
void     lb_hist_free(lb_hist *h);
/* Forgets every sample; the memory is kept. */
void     lb_hist_reset(lb_hist *h);
/* Size in bytes of one histogram, counters included. */
size_t   lb_hist_bytes(void);

/* The histogram as lb_hist_bytes() bytes, and back: for a process of the same build (the ranks
 * of an MPI run send theirs to rank 0). lb_hist_load returns 0, or -1 when len is not the size. */
const void *lb_hist_raw(const lb_hist *h);
int         lb_hist_load(lb_hist *h, const void *raw, size_t len);

/* Records one latency in microseconds.  0 is recorded as 0 (the lowest bucket is exact);
 * a negative value is recorded as 0 and one above LB_HIST_MAX_US as LB_HIST_MAX_US, and both
 * count in lb_hist_clamped().  count, sum, min and max are exact (of the clamped values). */
void     lb_hist_record(lb_hist *h, int64_t value_us);

/* Adds src's samples to dst (per-thread histograms into one).  Returns 0, or -1 when a counter
 * of dst reached UINT32_MAX and was saturated (percentiles above it are then approximate). */
int      lb_hist_merge(lb_hist *dst, const lb_hist *src);

int64_t  lb_hist_count(const lb_hist *h);
int64_t  lb_hist_min(const lb_hist *h);        /* 0 when empty */
int64_t  lb_hist_max(const lb_hist *h);        /* 0 when empty */
double   lb_hist_mean(const lb_hist *h);       /* exact (sum / count); 0 when empty */
double   lb_hist_stddev(const lb_hist *h);     /* from the buckets' mid-points; 0 when empty */
int64_t  lb_hist_clamped(const lb_hist *h);    /* samples recorded outside [0, LB_HIST_MAX_US] */

/* The value at or below which p percent of the samples lie (nearest rank: the sample of rank
 * ceil(p/100 * count)), reported as the highest value its bucket stands for, as HdrHistogram
 * does, and clamped to [min, max]: never below the true sample, at most 0.1 % above it.
 * p <= 0 gives min, p >= 100 gives max, an empty histogram gives 0. */
int64_t  lb_hist_value_at_percentile(const lb_hist *h, double p);

/* Writes HdrHistogram's percentile distribution text (the .hgrm format): the header
 * "Value Percentile TotalCount 1/(1-Percentile)", one row per percentile tick (ticks halve the
 * distance to 100 %, five per half), the last row at percentile 1.0, then the Mean/StdDeviation,
 * Max/Total count and Buckets/SubBuckets footer.  Values are divided by unit_divisor (1000.0
 * turns microseconds into milliseconds).  A row's value is lb_hist_value_at_percentile() of its
 * percentile, so the first row is the exact min and the last the exact max.
 * Returns 0, or -1 on a write error or a unit_divisor that is not positive. */
int      lb_hist_write_hgrm(const lb_hist *h, FILE *f, double unit_divisor);

/* Microbenchmark for `make bench`: records n pseudo-random values (spread log-uniformly from
 * 1 us to about 35 min, generated beforehand) and returns the mean cost of lb_hist_record in
 * nanoseconds, call included, timed with CLOCK_MONOTONIC.  Returns -1 on allocation failure
 * or n == 0. */
double   lb_hist_bench_ns_per_record(uint64_t n);

#endif
