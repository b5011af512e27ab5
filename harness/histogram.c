/* histogram.c -- log-linear latency histogram, in the spirit of HdrHistogram.
 *
 * Why this shape: the harness records one sample per lock acquisition from many client threads,
 * and must report p50..p999 and max to 0.1 % over a range from a loopback round trip (a few us)
 * to a wait that ends in a timeout (minutes).  A sorted sample buffer would grow with the run;
 * fixed-width buckets cannot cover six decades at 0.1 %.  A log-linear histogram can: fixed
 * memory, O(1) record, and per-thread histograms merge by adding counters.
 *
 * Bucket math.  Values are microseconds.  Values 0..2047 get one counter each (exact).  Above,
 * each power of two [2^e, 2^(e+1)), e >= 11, is cut into 1024 equal sub-buckets of width
 * 2^(e-10), so a counter stands for at most 1/1024 (< 0.1 %) of the values it holds.  With
 *
 *     shift = msb(v | 2047) - 10          (0 for v < 2048, e - 10 above; msb from clz)
 *     index = (shift << 10) + (v >> shift)
 *
 * the two regions join without a branch: for shift > 0, v >> shift lies in [1024, 2047], so
 * each power of two takes the next 1024 indexes after the previous one.  Inverting, for
 * index >= 2048: shift = (index >> 10) - 1 and the lowest value is ((index & 1023) | 1024) <<
 * shift.  One hour (3.6e9 us < 2^32) needs shifts 0..21: 22 HdrHistogram "buckets" of 2048
 * sub-buckets, 23 * 1024 = 23,552 counters.
 *
 * Counters are 32-bit, which halves the memory (92 KiB instead of 184 KiB per client thread).
 * One counter would need 4.29e9 samples of the same value; a record costs a lock acquisition
 * (a network round trip), so a thread cannot get there, and should a merge or a record ever
 * reach it, the counter saturates instead of wrapping and the event is counted.
 */
#include "histogram.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HALF_BITS 10                          /* log2 of the sub-buckets used per power of two */
#define HALF      (1 << HALF_BITS)            /* 1024 */
#define NCOUNTS   ((LB_HIST_BUCKETS + 1) * HALF)

_Static_assert(LB_HIST_SUB_BUCKETS == 2 * HALF, "sub-buckets are 2 x the half count");
_Static_assert(LB_HIST_MAX_US < ((int64_t)LB_HIST_SUB_BUCKETS << (LB_HIST_BUCKETS - 1)),
               "LB_HIST_BUCKETS powers of two must reach LB_HIST_MAX_US");
_Static_assert(LB_HIST_MAX_US >= ((int64_t)LB_HIST_SUB_BUCKETS << (LB_HIST_BUCKETS - 2)),
               "LB_HIST_BUCKETS is the smallest count that reaches LB_HIST_MAX_US");

struct lb_hist {
    int64_t  count;      /* samples recorded, exact even if a counter saturated */
    int64_t  sum;        /* of the clamped values: 3.6e9 x 2.5e9 samples still fits */
    int64_t  min;        /* INT64_MAX while empty */
    int64_t  max;        /* -1 while empty */
    int64_t  clamped;
    int64_t  saturated;  /* increments lost to a counter at UINT32_MAX */
    uint32_t counts[NCOUNTS];
};

/* ---- bucket math ------------------------------------------------------------------------ */

static inline unsigned hist_shift(uint64_t v)
{
    /* OR-ing in 2047 puts every small value in the shift-0 region, so no branch is needed. */
    return (unsigned)(63 - __builtin_clzll(v | (LB_HIST_SUB_BUCKETS - 1))) - HALF_BITS;
}

static inline size_t hist_index(uint64_t v)
{
    unsigned s = hist_shift(v);
    return ((size_t)s << HALF_BITS) + (size_t)(v >> s);
}

static unsigned index_shift(size_t i)
{
    return i < LB_HIST_SUB_BUCKETS ? 0 : (unsigned)(i >> HALF_BITS) - 1;
}

static int64_t index_lowest(size_t i)
{
    unsigned s = index_shift(i);
    if (s == 0)
        return (int64_t)i;
    return (int64_t)((i & (HALF - 1)) | HALF) << s;
}

static int64_t index_highest(size_t i)
{
    return index_lowest(i) + ((int64_t)1 << index_shift(i)) - 1;
}

static int64_t clamp_to_range(const lb_hist *h, int64_t v)
{
    return v < h->min ? h->min : v > h->max ? h->max : v;
}

/* ---- life cycle ------------------------------------------------------------------------- */

lb_hist *lb_hist_new(void)
{
    lb_hist *h = malloc(sizeof *h);
    if (h)
        lb_hist_reset(h);   /* may become a calloc: pages then fault in on first use, a
                               few dozen per histogram over a run */
    return h;
}

void lb_hist_free(lb_hist *h)
{
    free(h);
}

void lb_hist_reset(lb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = INT64_MAX;
    h->max = -1;
}

size_t lb_hist_bytes(void)
{
    return sizeof(lb_hist);
}

const void *lb_hist_raw(const lb_hist *h)
{
    return h;
}

int lb_hist_load(lb_hist *h, const void *raw, size_t len)
{
    if (len != sizeof *h)
        return -1;
    memcpy(h, raw, len);
    return 0;
}

/* ---- recording -------------------------------------------------------------------------- */

/* Kept out of line: out-of-range values are rare and should not bloat the hot path. */
static __attribute__((noinline, cold)) int64_t record_clamp(lb_hist *h, int64_t v)
{
    h->clamped++;
    return v < 0 ? 0 : LB_HIST_MAX_US;
}

void lb_hist_record(lb_hist *h, int64_t value_us)
{
    /* One unsigned compare catches both negatives and values above the range. */
    if (__builtin_expect((uint64_t)value_us > (uint64_t)LB_HIST_MAX_US, 0))
        value_us = record_clamp(h, value_us);
    uint32_t *c = &h->counts[hist_index((uint64_t)value_us)];
    if (__builtin_expect(++*c == 0, 0)) {   /* wrapped: undo and saturate */
        *c = UINT32_MAX;
        h->saturated++;
    }
    h->count++;
    h->sum += value_us;
    h->min = value_us < h->min ? value_us : h->min;
    h->max = value_us > h->max ? value_us : h->max;
}

int lb_hist_merge(lb_hist *dst, const lb_hist *src)
{
    uint64_t over = 0;
    for (size_t i = 0; i < NCOUNTS; i++) {
        uint64_t s = (uint64_t)dst->counts[i] + src->counts[i];
        over |= s >> 32;   /* branch-free so the loop vectorizes */
        dst->counts[i] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
    }
    dst->count += src->count;
    dst->sum += src->sum;
    dst->clamped += src->clamped;
    dst->saturated += src->saturated + (over != 0);
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    return over ? -1 : 0;
}

/* ---- queries ---------------------------------------------------------------------------- */

int64_t lb_hist_count(const lb_hist *h)   { return h->count; }
int64_t lb_hist_min(const lb_hist *h)     { return h->count ? h->min : 0; }
int64_t lb_hist_max(const lb_hist *h)     { return h->count ? h->max : 0; }
int64_t lb_hist_clamped(const lb_hist *h) { return h->clamped; }

double lb_hist_mean(const lb_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

double lb_hist_stddev(const lb_hist *h)
{
    if (h->count == 0)
        return 0.0;
    double mean = lb_hist_mean(h), acc = 0.0;
    for (size_t i = 0; i < NCOUNTS; i++) {
        if (h->counts[i] == 0)
            continue;
        /* The mid-point of the bucket, kept inside the exact range so a lone sample adds 0. */
        double mid = (double)clamp_to_range(h, (index_lowest(i) + index_highest(i)) / 2);
        acc += (double)h->counts[i] * (mid - mean) * (mid - mean);
    }
    return sqrt(acc / (double)h->count);
}

/* Rank (1..count) of the sample at percentile p.  The product p/100 * count is usually meant to
 * be an integer (p = 99.9 of 100000 samples is rank 99900), but floating point can land just
 * above it and ceil() would then skip a rank: a relative slack of 1e-12 absorbs that. */
static int64_t rank_at(const lb_hist *h, double p)
{
    double r = p / 100.0 * (double)h->count;
    int64_t k = (int64_t)ceil(r - r * 1e-12);
    return k < 1 ? 1 : k > h->count ? h->count : k;
}

int64_t lb_hist_value_at_percentile(const lb_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0.0))   /* also catches NaN */
        return h->min;
    if (p >= 100.0)
        return h->max;
    int64_t k = rank_at(h, p), cum = 0;
    for (size_t i = 0; i < NCOUNTS; i++) {
        cum += h->counts[i];
        if (cum >= k)
            return clamp_to_range(h, index_highest(i));
    }
    return h->max;   /* only when saturated counters hold fewer than count samples */
}

/* ---- hgrm output ------------------------------------------------------------------------ */

/* The tick after `level` (percent): each half of the remaining distance to 100 % gets
 * ticks_per_half ticks, so steps are 10 % below 50 %, 5 % up to 75 %, 2.5 % up to 87.5 % ...
 * ilogb gives floor(log2) exactly, where log(x)/log(2) can fall just short of an integer. */
static double next_level(double level, int ticks_per_half)
{
    int halvings = ilogb(100.0 / (100.0 - level));
    return level + 100.0 / ((double)ticks_per_half * ldexp(1.0, halvings + 1));
}

static int write_row(FILE *f, double value, double level, int64_t cum)
{
    double q = level / 100.0;
    return fprintf(f, "%12.3f %2.12f %10" PRId64 " %14.2f\n", value, q, cum, 1.0 / (1.0 - q));
}

/* Rows as HdrHistogram's percentile iterator emits them: walk the buckets in order and print
 * every tick the running count has reached; stop after the tick at which the last sample is
 * counted, then print the 100 % row. */
static int write_rows(const lb_hist *h, FILE *f, double div)
{
    double level = 0.0;
    int64_t cum = 0;
    for (size_t i = 0; i < NCOUNTS && cum < h->count; i++) {
        if (h->counts[i] == 0)
            continue;
        cum += h->counts[i];
        while (cum >= rank_at(h, level)) {
            int64_t v = level == 0.0 ? h->min : clamp_to_range(h, index_highest(i));
            if (write_row(f, (double)v / div, level, cum) < 0)
                return -1;
            if (cum >= h->count)
                break;
            level = next_level(level, 5);
        }
    }
    return fprintf(f, "%12.3f %2.12f %10" PRId64 "\n", (double)h->max / div, 1.0, h->count);
}

static int write_footer(const lb_hist *h, FILE *f, double div)
{
    if (fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
                lb_hist_mean(h) / div, lb_hist_stddev(h) / div) < 0)
        return -1;
    if (fprintf(f, "#[Max     = %12.3f, Total count    = %12" PRId64 "]\n",
                (double)lb_hist_max(h) / div, h->count) < 0)
        return -1;
    return fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n",
                   LB_HIST_BUCKETS, LB_HIST_SUB_BUCKETS);
}

int lb_hist_write_hgrm(const lb_hist *h, FILE *f, double unit_divisor)
{
    if (!(unit_divisor > 0.0))
        return -1;
    if (fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
                "1/(1-Percentile)") < 0)
        return -1;
    if (h->count > 0 && write_rows(h, f, unit_divisor) < 0)
        return -1;
    if (write_footer(h, f, unit_divisor) < 0)
        return -1;
    return ferror(f) ? -1 : 0;
}

/* ---- microbenchmark --------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

double lb_hist_bench_ns_per_record(uint64_t n)
{
    if (n == 0 || n > SIZE_MAX / sizeof(int64_t))
        return -1.0;
    int64_t *values = malloc((size_t)n * sizeof *values);
    lb_hist *h = lb_hist_new();
    if (!values || !h) {
        free(values);
        lb_hist_free(h);
        return -1.0;
    }
    /* A 32-bit mantissa shifted right by 1..32 bits: log-uniform from 1 us to 2^31 us (~35
     * min), so every power of two and most of the counters are hit, the pessimistic case for
     * the caches.  The call goes through a volatile pointer so it is not inlined into the
     * loop: the runner calls lb_hist_record from another file and pays the call too. */
    uint64_t seed = 42;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t x = splitmix64(&seed);
        values[i] = 1 + (int64_t)((x >> 32) >> ((x & 31) + 1));
    }
    void (*volatile record)(lb_hist *, int64_t) = lb_hist_record;
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        record(h, values[i]);
    double ns = (now_ns() - t0) / (double)n;
    free(values);
    lb_hist_free(h);
    return ns;
}
