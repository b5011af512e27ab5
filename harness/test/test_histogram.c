/* test_histogram.c -- the latency histogram against exact percentiles of known data.
 *
 * Every percentile check compares with the nearest-rank sample of the sorted data and allows
 * what the histogram promises: never below the true sample, at most 0.1 % above it.  The hgrm
 * test parses the file back the way a plotting script would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"

#define REL_ERR 0.001

/* Fails with both values printed, so a broken bound says by how much. */
#define assert_close(got, exact, what)                                                    \
    do {                                                                                  \
        int64_t g_ = (got), e_ = (exact);                                                 \
        if (g_ < e_ || (double)(g_ - e_) > (double)e_ * REL_ERR) {                        \
            print_error("%s: got %" PRId64 ", exact %" PRId64 " (%+.4f %%)\n", (what), g_, \
                        e_, e_ ? 100.0 * (double)(g_ - e_) / (double)e_ : 0.0);           \
            fail();                                                                       \
        }                                                                                 \
    } while (0)

/* ---- data --------------------------------------------------------------------------------- */

typedef struct {
    int64_t *v;
    size_t   n;
} dataset;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int64_t uniform_in(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* log-uniform in [lo, hi]: as many samples per decade, like latencies from us to minutes */
static int64_t log_uniform_in(uint64_t *s, double lo, double hi)
{
    double u = (double)(rng_next(s) >> 11) / 9007199254740992.0;
    return (int64_t)(lo * pow(hi / lo, u));
}

static dataset data_new(size_t n)
{
    dataset d = { calloc(n, sizeof(int64_t)), n };
    assert_non_null(d.v);
    return d;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static lb_hist *hist_of(const dataset *d)
{
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    for (size_t i = 0; i < d->n; i++)
        lb_hist_record(h, d->v[i]);
    return h;
}

/* Nearest rank on sorted data: the smallest sample with at least p % of the data at or below. */
static int64_t exact_percentile(const dataset *sorted, double p)
{
    double r = p / 100.0 * (double)sorted->n;
    size_t k = (size_t)ceil(r - 1e-7);
    if (k < 1)
        k = 1;
    if (k > sorted->n)
        k = sorted->n;
    return sorted->v[k - 1];
}

/* Checks p = 0, 0.1, ..., 100 and the far tail against the data (which it sorts). */
static void check_percentiles(const lb_hist *h, dataset *d)
{
    static const double tail[] = { 99.5, 99.9, 99.95, 99.99, 99.995, 99.999 };
    char what[64];
    qsort(d->v, d->n, sizeof d->v[0], cmp_i64);
    for (int i = 0; i <= 1000; i++) {
        double p = i / 10.0;
        snprintf(what, sizeof what, "p%.1f", p);
        assert_close(lb_hist_value_at_percentile(h, p), exact_percentile(d, p), what);
    }
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) {
        snprintf(what, sizeof what, "p%.3f", tail[i]);
        assert_close(lb_hist_value_at_percentile(h, tail[i]), exact_percentile(d, tail[i]), what);
    }
    assert_int_equal(lb_hist_value_at_percentile(h, 0.0), d->v[0]);
    assert_int_equal(lb_hist_value_at_percentile(h, 100.0), d->v[d->n - 1]);
    assert_int_equal(lb_hist_min(h), d->v[0]);
    assert_int_equal(lb_hist_max(h), d->v[d->n - 1]);
    assert_int_equal(lb_hist_count(h), (int64_t)d->n);
}

static char *hgrm_of(const lb_hist *h, double divisor)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(lb_hist_write_hgrm(h, f, divisor), 0);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* ---- percentiles against known data --------------------------------------------------------- */

static void test_uniform_percentiles(void **state)
{
    dataset d = data_new(100000);
    for (size_t i = 0; i < d.n; i++)
        d.v[i] = (int64_t)i + 1;
    lb_hist *h = hist_of(&d);
    check_percentiles(h, &d);
    assert_true(lb_hist_mean(h) == 50000.5);   /* the mean is exact, not from buckets */
    assert_int_equal(lb_hist_clamped(h), 0);
    lb_hist_free(h);
    free(d.v);
}

static void test_bimodal_percentiles(void **state)
{
    /* Fast acquisitions around 200 us, a tenth of them waiting ~50 ms behind a holder. */
    uint64_t seed = 7;
    dataset d = data_new(55000);
    for (size_t i = 0; i < d.n; i++)
        d.v[i] = i % 11 == 10 ? uniform_in(&seed, 40000, 60000) : uniform_in(&seed, 150, 250);
    lb_hist *h = hist_of(&d);
    check_percentiles(h, &d);
    lb_hist_free(h);
    free(d.v);
}

static void test_single_value(void **state)
{
    dataset d = data_new(1000);
    for (size_t i = 0; i < d.n; i++)
        d.v[i] = 12345;   /* inside a 16-wide bucket: only the clamp to [min, max] makes it exact */
    lb_hist *h = hist_of(&d);
    check_percentiles(h, &d);
    assert_int_equal(lb_hist_value_at_percentile(h, 50.0), 12345);
    assert_true(lb_hist_mean(h) == 12345.0);
    assert_true(lb_hist_stddev(h) == 0.0);
    lb_hist_free(h);
    free(d.v);
}

static void test_wide_range_percentiles(void **state)
{
    /* 1 us to 30 min, spread evenly over the decades, plus both ends of the range. */
    uint64_t seed = 11;
    dataset d = data_new(200000);
    for (size_t i = 0; i < d.n; i++)
        d.v[i] = log_uniform_in(&seed, 1.0, 1.8e9);
    d.v[0] = 1;
    d.v[1] = LB_HIST_MAX_US;
    lb_hist *h = hist_of(&d);
    check_percentiles(h, &d);
    assert_int_equal(lb_hist_clamped(h), 0);
    lb_hist_free(h);
    free(d.v);
}

/* The bucket of every value v, read back through p50 of {v, MAX}: the highest value of v's
 * bucket.  It must lie in [v, v + v/1024] and never decrease as v grows. */
static int64_t bucket_top(lb_hist *h, int64_t v)
{
    lb_hist_reset(h);
    lb_hist_record(h, v);
    lb_hist_record(h, LB_HIST_MAX_US);
    return lb_hist_value_at_percentile(h, 50.0);
}

static void check_bucket(lb_hist *h, int64_t v, int64_t *prev)
{
    int64_t top = bucket_top(h, v);
    char what[48];
    snprintf(what, sizeof what, "bucket of %" PRId64, v);
    assert_close(top, v, what);
    if (v < 2048)
        assert_int_equal(top, v);   /* the linear region is exact */
    if (prev) {
        assert_true(top >= *prev);
        *prev = top;
    }
}

static void test_bucket_error_bound(void **state)
{
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    int64_t prev = 0;
    for (int64_t v = 1; v <= 10000; v++)
        check_bucket(h, v, &prev);
    for (int e = 11; e < 32; e++)   /* both sides of every power of two */
        for (int64_t dv = -2; dv <= 2; dv++)
            check_bucket(h, ((int64_t)1 << e) + dv, NULL);
    uint64_t seed = 3;
    for (int i = 0; i < 20000; i++)
        check_bucket(h, uniform_in(&seed, 1, LB_HIST_MAX_US - 1), NULL);
    lb_hist_free(h);
}

/* ---- exactness, clamping, merging ------------------------------------------------------------ */

static void test_min_max_exact(void **state)
{
    /* Both lie inside 2048-wide buckets, so a bucket bound would be off by up to 2047. */
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    lb_hist_record(h, 3000001);
    lb_hist_record(h, 2500003);
    lb_hist_record(h, 3777777);
    assert_int_equal(lb_hist_min(h), 2500003);
    assert_int_equal(lb_hist_max(h), 3777777);
    assert_int_equal(lb_hist_value_at_percentile(h, 0.0), 2500003);
    assert_int_equal(lb_hist_value_at_percentile(h, 100.0), 3777777);
    assert_int_equal(lb_hist_value_at_percentile(h, 1.0), 2500003 + 2047 - 2500003 % 2048);
    assert_int_equal(lb_hist_value_at_percentile(h, -5.0), 2500003);
    assert_int_equal(lb_hist_value_at_percentile(h, 250.0), 3777777);
    assert_int_equal(lb_hist_value_at_percentile(h, NAN), 2500003);
    assert_true(lb_hist_mean(h) == (3000001.0 + 2500003.0 + 3777777.0) / 3.0);
    lb_hist_free(h);
}

static void test_clamping(void **state)
{
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    lb_hist_record(h, -5);
    lb_hist_record(h, INT64_MIN);
    lb_hist_record(h, 0);                      /* in range: the lowest bucket is exact */
    lb_hist_record(h, LB_HIST_MAX_US);         /* in range */
    lb_hist_record(h, LB_HIST_MAX_US + 1);
    lb_hist_record(h, INT64_MAX);
    assert_int_equal(lb_hist_count(h), 6);
    assert_int_equal(lb_hist_clamped(h), 4);
    assert_int_equal(lb_hist_min(h), 0);
    assert_int_equal(lb_hist_max(h), LB_HIST_MAX_US);
    assert_int_equal(lb_hist_value_at_percentile(h, 50.0), 0);
    assert_int_equal(lb_hist_value_at_percentile(h, 51.0), LB_HIST_MAX_US);
    assert_int_equal(lb_hist_value_at_percentile(h, 100.0), LB_HIST_MAX_US);
    assert_true(lb_hist_mean(h) == (double)LB_HIST_MAX_US / 2.0);
    lb_hist_free(h);
}

static void fill_thread(lb_hist *part, lb_hist *all, int t, uint64_t *seed)
{
    for (int i = 0; i < 20000 + 5000 * t; i++) {
        int64_t v = t == 0 ? uniform_in(seed, 1, 3000)
                  : t == 1 ? log_uniform_in(seed, 10.0, 5e8)
                  : t == 2 ? uniform_in(seed, 40000, 60000)
                  : i % 500 == 0 ? (i % 1000 ? -1 : LB_HIST_MAX_US + 7)       /* clamped */
                           : uniform_in(seed, 1, LB_HIST_MAX_US);
        lb_hist_record(part, v);
        lb_hist_record(all, v);
    }
}

static void test_merge_equals_single(void **state)
{
    lb_hist *all = lb_hist_new(), *merged = lb_hist_new(), *part[4];
    assert_non_null(all);
    assert_non_null(merged);
    uint64_t seed = 5;
    for (int t = 0; t < 4; t++) {
        part[t] = lb_hist_new();
        assert_non_null(part[t]);
        fill_thread(part[t], all, t, &seed);
    }
    lb_hist *empty = lb_hist_new();
    assert_non_null(empty);
    for (int t = 0; t < 4; t++)
        assert_int_equal(lb_hist_merge(merged, part[t]), 0);
    assert_int_equal(lb_hist_merge(merged, empty), 0);   /* an idle thread changes nothing */

    assert_int_equal(lb_hist_count(merged), lb_hist_count(all));
    assert_int_equal(lb_hist_min(merged), lb_hist_min(all));
    assert_int_equal(lb_hist_max(merged), lb_hist_max(all));
    assert_int_equal(lb_hist_clamped(merged), lb_hist_clamped(all));
    assert_true(lb_hist_clamped(all) > 0);
    assert_true(lb_hist_mean(merged) == lb_hist_mean(all));
    for (int i = 0; i <= 10000; i++)
        assert_int_equal(lb_hist_value_at_percentile(merged, i / 100.0),
                         lb_hist_value_at_percentile(all, i / 100.0));
    char *a = hgrm_of(all, 1000.0), *m = hgrm_of(merged, 1000.0);
    assert_string_equal(m, a);
    free(a);
    free(m);
    for (int t = 0; t < 4; t++)
        lb_hist_free(part[t]);
    lb_hist_free(empty);
    lb_hist_free(merged);
    lb_hist_free(all);
}

static void test_counters_saturate(void **state)
{
    /* Merging a histogram into itself doubles its counters: after 32 merges 2^32 no longer
     * fits in 32 bits.  Two values, so a counter that wrapped to 0 instead of saturating would
     * move p25 from the lower one to the upper one. */
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    lb_hist_record(h, 777);
    lb_hist_record(h, 900);
    for (int i = 1; i < 32; i++)
        assert_int_equal(lb_hist_merge(h, h), 0);
    assert_int_equal(lb_hist_merge(h, h), -1);
    assert_int_equal(lb_hist_count(h), INT64_C(1) << 33);
    assert_int_equal(lb_hist_value_at_percentile(h, 25.0), 777);
    lb_hist_record(h, 777);   /* ++ on a counter at UINT32_MAX */
    assert_int_equal(lb_hist_value_at_percentile(h, 25.0), 777);
    assert_int_equal(lb_hist_value_at_percentile(h, 100.0), 900);
    lb_hist_free(h);
}

static void test_empty_and_reset(void **state)
{
    lb_hist *h = lb_hist_new(), *fresh = lb_hist_new();
    assert_non_null(h);
    assert_non_null(fresh);
    assert_int_equal(lb_hist_count(h), 0);
    assert_int_equal(lb_hist_min(h), 0);
    assert_int_equal(lb_hist_max(h), 0);
    assert_int_equal(lb_hist_value_at_percentile(h, 50.0), 0);
    assert_true(lb_hist_mean(h) == 0.0 && lb_hist_stddev(h) == 0.0);

    for (int64_t v = -3; v < 5000; v += 7)
        lb_hist_record(h, v * 997);
    assert_true(lb_hist_count(h) > 0);
    lb_hist_reset(h);
    char *a = hgrm_of(h, 1.0), *b = hgrm_of(fresh, 1.0);
    assert_string_equal(a, b);
    assert_int_equal(lb_hist_count(h), 0);
    assert_int_equal(lb_hist_clamped(h), 0);
    assert_int_equal(lb_hist_max(h), 0);
    lb_hist_record(h, 42);   /* min and max start over too */
    assert_int_equal(lb_hist_min(h), 42);
    assert_int_equal(lb_hist_max(h), 42);
    free(a);
    free(b);
    lb_hist_free(h);
    lb_hist_free(fresh);
    lb_hist_free(NULL);
}

/* ---- hgrm output ----------------------------------------------------------------------------- */

typedef struct {
    double  value, pct, inv;
    int64_t total;
    int     fields;
} hgrm_row;

static const char *next_line(const char **p, char *line, size_t size)
{
    const char *nl = strchr(*p, '\n');
    assert_non_null(nl);   /* every line, the last one too, ends in a newline */
    size_t len = (size_t)(nl - *p);
    assert_true(len < size);
    memcpy(line, *p, len);
    line[len] = '\0';
    *p = nl + 1;
    return line;
}

/* Parses the data rows into rows[]; returns how many, leaves *p at the footer. */
static int parse_rows(const char **p, hgrm_row *rows, int max)
{
    char line[256];
    int n = 0;
    while (**p != '#') {
        assert_true(n < max);
        hgrm_row *r = &rows[n++];
        r->fields = sscanf(next_line(p, line, sizeof line), "%lf %lf %" SCNd64 " %lf", &r->value,
                           &r->pct, &r->total, &r->inv);
        assert_true(r->fields == 3 || r->fields == 4);
    }
    return n;
}

static void check_footer(const char **p, double mean, double sd, double max, int64_t count)
{
    char line[256];
    double m, s, x;
    int64_t c;
    int buckets, subs;
    assert_int_equal(sscanf(next_line(p, line, sizeof line),
                            "#[Mean    = %lf, StdDeviation   = %lf]", &m, &s), 2);
    assert_true(fabs(m - mean) <= 0.0005 + 1e-9);
    assert_true(fabs(s - sd) <= sd * REL_ERR + 0.0005);
    assert_int_equal(sscanf(next_line(p, line, sizeof line),
                            "#[Max     = %lf, Total count    = %" SCNd64 "]", &x, &c), 2);
    assert_true(fabs(x - max) <= 0.0005);
    assert_int_equal(c, count);
    assert_int_equal(sscanf(next_line(p, line, sizeof line),
                            "#[Buckets = %d, SubBuckets     = %d]", &buckets, &subs), 2);
    assert_int_equal(buckets, LB_HIST_BUCKETS);
    assert_int_equal(subs, LB_HIST_SUB_BUCKETS);
    assert_string_equal(*p, "");
}

static void check_header(const char **p)
{
    char line[256];
    assert_string_equal(next_line(p, line, sizeof line),
                        "       Value     Percentile TotalCount 1/(1-Percentile)");
    assert_string_equal(next_line(p, line, sizeof line), "");
}

static void test_hgrm_format(void **state)
{
    /* 1..100000 us: the count at or below v is v, so each row's TotalCount is its value. */
    enum { N = 100000 };
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    for (int64_t v = 1; v <= N; v++)
        lb_hist_record(h, v);
    char *text = hgrm_of(h, 1000.0);
    const char *p = text;
    hgrm_row rows[400];

    check_header(&p);
    int n = parse_rows(&p, rows, 400);
    static const double first[] = { 0, .1, .2, .3, .4, .5, .55, .6, .65, .7, .75, .775, .8 };
    assert_true(n > 13);
    for (int i = 0; i < 13; i++)
        assert_true(fabs(rows[i].pct - first[i]) < 1e-12);
    for (int i = 0; i < n; i++) {
        assert_int_equal(rows[i].fields, i == n - 1 ? 3 : 4);
        assert_int_equal(rows[i].total, llround(rows[i].value * 1000.0));
        if (i < n - 1) {
            assert_true(fabs(rows[i].inv - 1.0 / (1.0 - rows[i].pct)) < 0.01);
            int64_t rank = (int64_t)ceil(rows[i].pct * N - 1e-7);   /* = the sample */
            assert_close(llround(rows[i].value * 1000.0), rank < 1 ? 1 : rank, "row value");
        }
        if (i > 0) {
            assert_true(rows[i].value >= rows[i - 1].value);
            assert_true(rows[i].pct > rows[i - 1].pct);
            assert_true(rows[i].total >= rows[i - 1].total);
        }
    }
    assert_true(rows[0].value == 0.001);           /* the exact min */
    assert_true(rows[n - 1].pct == 1.0);
    assert_int_equal(rows[n - 1].total, N);
    assert_true(rows[n - 1].value == 100.0);       /* the exact max, not its bucket's top */
    check_footer(&p, 50.0005, N / sqrt(12.0) / 1000.0, 100.0, N);
    free(text);
    lb_hist_free(h);
}

static void test_hgrm_exact_ends(void **state)
{
    /* min and max inside 2048-wide buckets: the first row must be the exact min and the last
     * the exact max, not the bounds of their buckets. */
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    lb_hist_record(h, 3000001);
    lb_hist_record(h, 2500003);
    lb_hist_record(h, 3777777);
    char *text = hgrm_of(h, 1000.0);
    const char *p = text;
    hgrm_row rows[64];
    check_header(&p);
    int n = parse_rows(&p, rows, 64);
    assert_true(n >= 2);
    assert_true(rows[0].pct == 0.0 && rows[0].value == 2500.003);
    assert_int_equal(rows[0].total, 1);
    assert_true(rows[n - 1].pct == 1.0 && rows[n - 1].value == 3777.777);
    assert_int_equal(rows[n - 1].total, 3);
    check_footer(&p, (2500003.0 + 3000001.0 + 3777777.0) / 3e3, lb_hist_stddev(h) / 1e3,
                 3777.777, 3);
    free(text);
    lb_hist_free(h);
}

static void test_hgrm_empty_and_bad_divisor(void **state)
{
    lb_hist *h = lb_hist_new();
    assert_non_null(h);
    char *text = hgrm_of(h, 1000.0);
    const char *p = text;
    check_header(&p);
    assert_int_equal(*p, '#');   /* no rows */
    check_footer(&p, 0.0, 0.0, 0.0, 0);
    free(text);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(lb_hist_write_hgrm(h, f, 0.0), -1);
    assert_int_equal(lb_hist_write_hgrm(h, f, NAN), -1);
    fclose(f);
    lb_hist_free(h);
}

/* ---- cost ---------------------------------------------------------------------------------- */

static void test_memory_budget(void **state)
{
    /* 23,552 32-bit counters plus the exact figures; the budget per client is 256 KiB. */
    assert_true(lb_hist_bytes() >= 23552 * sizeof(uint32_t));
    assert_true(lb_hist_bytes() <= 96 * 1024);
}

static void test_bench_record_cost(void **state)
{
    double ns = lb_hist_bench_ns_per_record(2000000);
    print_message("# lb_hist_record: %.2f ns per record (%zu bytes per histogram)\n", ns,
                  lb_hist_bytes());
    /* A wide bound: this also runs under sanitizers and on loaded CI machines. */
    assert_true(ns > 0.0 && ns < 1000.0);
    assert_true(lb_hist_bench_ns_per_record(0) < 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform_percentiles),
        cmocka_unit_test(test_bimodal_percentiles),
        cmocka_unit_test(test_single_value),
        cmocka_unit_test(test_wide_range_percentiles),
        cmocka_unit_test(test_bucket_error_bound),
        cmocka_unit_test(test_min_max_exact),
        cmocka_unit_test(test_clamping),
        cmocka_unit_test(test_merge_equals_single),
        cmocka_unit_test(test_counters_saturate),
        cmocka_unit_test(test_empty_and_reset),
        cmocka_unit_test(test_hgrm_format),
        cmocka_unit_test(test_hgrm_exact_ends),
        cmocka_unit_test(test_hgrm_empty_and_bad_divisor),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_bench_record_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
