/* stats.h -- the small statistics lockbench reports and gates on.
 *
 * Medians (the figure reported for repeated runs, robust against one slow repeat), Jain's
 * fairness index (how evenly the lock was shared among clients), the two-sided Mann-Whitney U
 * test the gate uses to tell a real change from noise between two sets of repeats, the Wilcoxon
 * signed-rank test it uses instead when the repeats were run in pairs, and the
 * Holm-Bonferroni adjustment that keeps a gate testing many metrics at once from crying wolf.
 * All functions are pure: they never modify their inputs and keep no state. */
#ifndef LB_STATS_H
#define LB_STATS_H

#include <stdbool.h>
#include <stddef.h>

/* Largest sample size (each side) for which lb_mann_whitney uses the exact distribution; the
 * number of arrangements, C(40, 20) ~ 1.4e11, is still exact in a double. */
#define LB_MWU_EXACT_MAX 20

typedef struct {
    double u;      /* min(U1, U2): the statistic printed in Mann-Whitney tables */
    double u1;     /* U of the first sample: pairs (a_i, b_j) with a_i > b_j, a tie counting 1/2 */
    double z;      /* normal approximation's z (continuity-corrected, >= 0); 0 when exact */
    double p;      /* two-sided p-value, in [0, 1] */
    bool   exact;  /* true: exact distribution; false: normal approximation */
} lb_mwu;

/* Median of x[0..n-1] (mean of the two middle values when n is even); NAN when n is 0, when
 * memory runs out or when any value is NaN. x is not modified. */
double lb_median(const double *x, size_t n);

/* Jain's fairness index (sum x)^2 / (n * sum x^2), in [1/n, 1] for non-negative x: 1 when all
 * get the same, k/n when k share equally and the rest get nothing. Defined as 1 when n is 0 or
 * every x is 0: nobody got more than anybody else, so nothing was unfair. */
double lb_jain_index(const double *x, size_t n);

/* Two-sided Mann-Whitney U test of a[0..na-1] against b[0..nb-1]. Exact distribution (counting
 * recurrence) when there are no ties and na, nb <= LB_MWU_EXACT_MAX; otherwise the normal
 * approximation with tie correction and continuity correction. p = 1 when every value ties.
 * Returns 0, or -1 (out untouched) when a sample is empty, a value is NaN or memory runs out. */
int lb_mann_whitney(const double *a, size_t na, const double *b, size_t nb, lb_mwu *out);

/* P(U <= u) under the null hypothesis for samples of n1 and n2 values without ties (exact).
 * NAN when n1 or n2 exceeds LB_MWU_EXACT_MAX or memory runs out. */
double lb_mwu_exact_cdf(size_t n1, size_t n2, double u);

/* Largest number of pairs lb_wilcoxon_signed_rank takes (as many as the gate folds rounds). */
#define LB_WSR_MAX 256

typedef struct {
    double w_plus;  /* sum of the ranks of the positive differences (ties: mean ranks) */
    size_t n;       /* the differences that are not 0: the ones ranked */
    double p;       /* two-sided p-value, exact, in [0, 1] */
} lb_wsr;

/* Two-sided Wilcoxon signed-rank test of the paired differences d[0..n-1]: is their
 * distribution symmetric about 0? A difference of 0 is dropped (Wilcoxon's rule); equal |d|
 * share the mean of their ranks. The p-value is exact, ties included: given the |d|, each of
 * the 2^n sign patterns is equally likely under the null hypothesis, and W+ is counted over
 * them. p = 1 when every difference is 0. Returns 0, or -1 (out untouched) when n is 0 or
 * above LB_WSR_MAX, a value is NaN or memory runs out. */
int lb_wilcoxon_signed_rank(const double *d, size_t n, lb_wsr *out);

/* Holm-Bonferroni adjusted p-values of the tests p[0..n-1], into adjusted[0..n-1] (which may be
 * p itself). With the m p-values that are not NaN sorted, p(1) <= ... <= p(m), the k-th gets
 * max over j <= k of min(1, (m - j + 1) p(j)); a NaN (no test was run) stays NaN and is not
 * counted in m. Rejecting every hypothesis whose adjusted p is below alpha keeps the chance of
 * any false rejection among the m at most alpha, whatever their dependence. Returns 0, or -1
 * (adjusted untouched) when memory runs out. */
int lb_holm_adjust(const double *p, size_t n, double *adjusted);

#endif
