/* stats.c -- medians, Jain's fairness index, the Mann-Whitney U and Wilcoxon signed-rank tests
 * and Holm's adjustment.
 *
 * The gate compares a handful of repeats per side (typically 5-10), where a t-test's normality
 * assumption cannot be checked and a single slow repeat would dominate a mean; the rank-based
 * Mann-Whitney U test needs no distribution assumption, which is why google-benchmark's compare.py
 * uses it too. For such small samples the normal approximation is poor, so the exact null
 * distribution is computed whenever it is valid (no ties).
 *
 * One gate run tests every performance metric of every variant: sixteen independent tests at
 * p < 0.05 would flag an unchanged tree in 1 - 0.95^16 = 56 % of runs (dependent ones in 5 to
 * 80 %). Holm's step-down procedure bounds the chance of any false alarm among them by alpha
 * without assuming the tests independent (the metrics of one run are not), and rejects
 * everything Bonferroni would, often more. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int lb__cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static bool lb__has_nan(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]))
            return true;
    return false;
}

double lb_median(const double *x, size_t n)
{
    if (n == 0 || lb__has_nan(x, n))
        return NAN;
    double *s = malloc(n * sizeof *s);
    if (!s)
        return NAN;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, lb__cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

double lb_jain_index(const double *x, size_t n)
{
    double sum = 0, sumsq = 0;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        sumsq += x[i] * x[i];
    }
    if (n == 0 || sumsq == 0)
        return 1.0;
    return sum * sum / ((double)n * sumsq);
}

/* ---- exact distribution ------------------------------------------------------------------- */

/* Number of orderings of n1 a's and n2 b's with U = k, for k = 0 .. n1*n2, into counts[].
 * Recurrence on the largest value: if it is an a, it beats all j b's (U drops by j and one a
 * fewer remains); if it is a b, it beats nothing:  c(i, j, k) = c(i-1, j, k-j) + c(i, j-1, k).
 * Rows i-1 and i are kept, each (n2+1) x (n1*n2+1). Returns -1 when memory runs out. */
static int lb__mwu_counts(size_t n1, size_t n2, double *counts)
{
    size_t width = n1 * n2 + 1, rows = n2 + 1;
    double *prev = calloc(rows * width, sizeof *prev);
    double *cur = calloc(rows * width, sizeof *cur);
    if (!prev || !cur) {
        free(prev);
        free(cur);
        return -1;
    }
    for (size_t j = 0; j < rows; j++)
        prev[j * width] = 1;   /* no a's: the only ordering has U = 0 */
    for (size_t i = 1; i <= n1; i++) {
        memset(cur, 0, rows * width * sizeof *cur);
        cur[0] = 1;            /* no b's: U = 0 */
        for (size_t j = 1; j < rows; j++)
            for (size_t k = 0; k < width; k++)
                cur[j * width + k] = (k >= j ? prev[j * width + k - j] : 0) + cur[(j - 1) * width + k];
        double *t = prev;
        prev = cur;
        cur = t;
    }
    memcpy(counts, prev + n2 * width, width * sizeof *counts);
    free(prev);
    free(cur);
    return 0;
}

double lb_mwu_exact_cdf(size_t n1, size_t n2, double u)
{
    if (n1 > LB_MWU_EXACT_MAX || n2 > LB_MWU_EXACT_MAX)
        return NAN;
    size_t width = n1 * n2 + 1;
    double *c = malloc(width * sizeof *c);
    if (!c || lb__mwu_counts(n1, n2, c) != 0) {
        free(c);
        return NAN;
    }
    double below = 0, total = 0;
    for (size_t k = 0; k < width; k++) {
        total += c[k];
        if ((double)k <= u)
            below += c[k];
    }
    free(c);
    return below / total;
}

/* ---- ranks ---------------------------------------------------------------------------------- */

typedef struct {
    double value;
    bool   first;   /* from sample a */
} lb__obs;

static int lb__cmp_obs(const void *pa, const void *pb)
{
    return lb__cmp_double(&((const lb__obs *)pa)->value, &((const lb__obs *)pb)->value);
}

/* Sum of the (mid)ranks of sample a in the pooled sample, and the tie term sum(t^3 - t) over
 * groups of t equal values, which shrinks the variance of U. */
static void lb__rank_sum(lb__obs *o, size_t n, double *rank_sum_a, double *tie_term)
{
    *rank_sum_a = 0;
    *tie_term = 0;
    qsort(o, n, sizeof *o, lb__cmp_obs);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && o[j].value == o[i].value)
            j++;
        double t = (double)(j - i), midrank = (double)(i + 1 + j) / 2;   /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++)
            if (o[k].first)
                *rank_sum_a += midrank;
        *tie_term += t * t * t - t;
        i = j;
    }
}

/* Normal approximation: mean n1n2/2, variance n1n2/12 * ((N+1) - T/(N(N-1))), and |U - mean|
 * reduced by 1/2 because U moves in steps of (at least) 1/2. */
static void lb__mwu_normal(double n1, double n2, double tie_term, lb_mwu *r)
{
    double n = n1 + n2;
    double var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)));
    double dev = fabs(r->u1 - n1 * n2 / 2) - 0.5;
    r->exact = false;
    if (var <= 0 || dev <= 0) {   /* every value ties, or U sits at its mean */
        r->z = 0;
        r->p = 1.0;
        return;
    }
    r->z = dev / sqrt(var);
    r->p = fmin(1.0, erfc(r->z / sqrt(2.0)));
}

int lb_mann_whitney(const double *a, size_t na, const double *b, size_t nb, lb_mwu *out)
{
    if (na == 0 || nb == 0 || lb__has_nan(a, na) || lb__has_nan(b, nb))
        return -1;
    lb__obs *o = malloc((na + nb) * sizeof *o);
    if (!o)
        return -1;
    for (size_t i = 0; i < na; i++)
        o[i] = (lb__obs){a[i], true};
    for (size_t i = 0; i < nb; i++)
        o[na + i] = (lb__obs){b[i], false};
    double rank_sum, tie_term;
    lb__rank_sum(o, na + nb, &rank_sum, &tie_term);
    free(o);

    lb_mwu r = {0};
    r.u1 = rank_sum - (double)na * (double)(na + 1) / 2;
    r.u = fmin(r.u1, (double)na * (double)nb - r.u1);
    if (tie_term == 0 && na <= LB_MWU_EXACT_MAX && nb <= LB_MWU_EXACT_MAX) {
        double cdf = lb_mwu_exact_cdf(na, nb, r.u);
        if (isnan(cdf))
            return -1;
        r.exact = true;
        r.p = fmin(1.0, 2 * cdf);   /* the null distribution is symmetric about n1n2/2 */
    } else {
        lb__mwu_normal((double)na, (double)nb, tie_term, &r);
    }
    *out = r;
    return 0;
}

/* ---- Wilcoxon signed-rank ------------------------------------------------------------------- */

/* Base and head run in turn, pair by pair, share whatever the machine did at that moment; the
 * signed-rank test looks only at the difference within each pair, so a slow minute that falls on
 * both runs of a pair does not blur the comparison, as it does for Mann-Whitney's pooled ranks.
 * With ties, the ranks are halves: doubled, they are integers, and the count of sign patterns
 * by doubled rank sum is the usual subset-sum recurrence, exact for any ties. */
int lb_wilcoxon_signed_rank(const double *d, size_t n, lb_wsr *out)
{
    if (n == 0 || n > LB_WSR_MAX || lb__has_nan(d, n))
        return -1;
    double *a = malloc(n * sizeof *a);
    unsigned *r2 = malloc(n * sizeof *r2);
    size_t m = 0;
    for (size_t i = 0; a && r2 && i < n; i++)
        if (d[i] != 0)
            a[m++] = fabs(d[i]);
    double *count = a && r2 ? calloc((size_t)(m * (m + 1) + 1), sizeof *count) : NULL;
    if (!count) {
        free(a);
        free(r2);
        return -1;
    }
    qsort(a, m, sizeof *a, lb__cmp_double);
    /* Doubled mean ranks: values a[i..j-1] tie for ranks i+1..j, whose mean doubled is i+1+j. */
    for (size_t i = 0, j; i < m; i = j) {
        for (j = i; j < m && a[j] == a[i]; j++)
            ;
        for (size_t k = i; k < j; k++)
            r2[k] = (unsigned)(i + 1 + j);
    }
    lb_wsr res = {.n = m, .p = 1.0};
    unsigned w2 = 0, total = 0;   /* doubled: W+ and the sum of all ranks, m(m+1) */
    for (size_t i = 0; i < n; i++)
        if (d[i] > 0) {
            size_t k = (size_t)((double *)bsearch(&(double){fabs(d[i])}, a, m, sizeof *a,
                                                  lb__cmp_double) - a);
            w2 += r2[k];
        }
    for (size_t k = 0; k < m; k++)
        total += r2[k];
    res.w_plus = w2 / 2.0;
    if (m > 0) {
        count[0] = 1;
        unsigned reach = 0;
        for (size_t k = 0; k < m; k++) {
            reach += r2[k];
            for (unsigned s = reach; s >= r2[k]; s--)
                count[s] += count[s - r2[k]];
        }
        /* Two-sided: every sign pattern at least as far from the mean, total/2, as W+ is. */
        long dev = labs(2 * (long)w2 - (long)total);
        double tail = 0;
        for (unsigned s = 0; s <= total; s++)
            if (labs(2 * (long)s - (long)total) >= dev)
                tail += count[s];
        res.p = fmin(1.0, tail / ldexp(1.0, (int)m));
    }
    free(a);
    free(r2);
    free(count);
    *out = res;
    return 0;
}

/* ---- Holm-Bonferroni -------------------------------------------------------------------------- */

typedef struct {
    double p;
    size_t at;
} lb__ranked_p;

/* By p, then by position, so equal p-values keep a fixed order (their adjusted values agree
 * anyway: the running maximum carries the first one's to the next). */
static int lb__cmp_ranked(const void *pa, const void *pb)
{
    const lb__ranked_p *a = pa, *b = pb;
    int c = lb__cmp_double(&a->p, &b->p);
    return c ? c : (a->at > b->at) - (a->at < b->at);
}

int lb_holm_adjust(const double *p, size_t n, double *adjusted)
{
    lb__ranked_p *r = malloc((n ? n : 1) * sizeof *r);
    if (!r)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(p[i]))
            r[m++] = (lb__ranked_p){p[i], i};
    qsort(r, m, sizeof *r, lb__cmp_ranked);
    for (size_t i = 0; i < n; i++)
        if (isnan(p[i]))
            adjusted[i] = NAN;
    /* The running maximum makes the procedure step down: once one hypothesis is kept, every
     * one with a larger p is kept too, however small its own (m - j + 1) p(j). */
    double running = 0;
    for (size_t j = 0; j < m; j++) {
        running = fmax(running, fmin(1.0, (double)(m - j) * r[j].p));
        adjusted[r[j].at] = running;
    }
    free(r);
    return 0;
}
