/* test_stats.c -- medians, Jain's index, the Mann-Whitney U and Wilcoxon signed-rank tests against
 * hand-checked values.
 *
 * Where the expected numbers come from:
 *  - Critical values: the standard table of Mann-Whitney critical U for a two-sided test at
 *    alpha = 0.05 (e.g. in Siegel & Castellan, or any statistics textbook appendix): the largest
 *    U that is significant. For each (n1, n2, Ucrit) below, the exact two-sided p must be
 *    <= 0.05 at Ucrit and > 0.05 at Ucrit + 1.
 *  - Exact p-values by hand: with no ties, the number of orderings of n1 a's and n2 b's with
 *    U = k equals the number of partitions of k into at most n1 parts, none larger than n2.
 *    For 5 vs 5: k = 0, 1, 2, 3 give 1, 1, 2 ({2}, {1,1}), 3 ({3}, {2,1}, {1,1,1}) orderings out
 *    of C(10, 5) = 252, so P(U <= 2) = 4/252 and P(U <= 3) = 7/252; for 3 vs 4, P(U = 0) =
 *    1/C(7, 3) = 1/35. Two-sided p doubles them. These agree with enumerating every ordering.
 *  - The tie example is worked through in full in test_mwu_ties_normal_approximation.
 *  - Wilcoxon signed-rank: with no ties, the sign patterns of ranks 1..n with W+ = k are the
 *    subsets of {1..n} summing to k, 2^n patterns in all; for n = 6, W+ >= 19 means the
 *    complement sums to <= 2 ({}, {1}, {2}), and by symmetry as many have W+ <= 2: p = 6/64.
 *    All n positive (or negative) is the most extreme: p = 2/2^n. The tie example's 68/256
 *    comes from enumerating all 256 sign patterns with mean ranks.
 *  - Holm's adjusted p-values and decisions are worked by hand above each test: sort, multiply
 *    the j-th smallest by m - j + 1, carry the running maximum, cap at 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "close.h"
#include "stats.h"

/* ---- median --------------------------------------------------------------------------------- */

static void test_median(void **state)
{
    double odd[] = {5, 1, 3}, even[] = {4, 1, 3, 2}, one[] = {7.5};
    assert_close(lb_median(odd, 3), 3, 0);
    assert_close(lb_median(even, 4), 2.5, 0);
    assert_close(lb_median(one, 1), 7.5, 0);
    /* the input is left in its order */
    assert_close(odd[0], 5, 0);
    assert_close(even[0], 4, 0);
}

static void test_median_empty_or_nan(void **state)
{
    double x[] = {1, NAN, 3};
    assert_true(isnan(lb_median(NULL, 0)));
    assert_true(isnan(lb_median(x, 3)));
}

/* ---- Jain's index --------------------------------------------------------------------------- */

static void test_jain_index(void **state)
{
    double equal[] = {10, 10, 10, 10}, one_gets_all[] = {0, 0, 12, 0}, two_of_four[] = {5, 0, 5, 0};
    double mixed[] = {1, 2, 3};
    assert_close(lb_jain_index(equal, 4), 1.0, 1e-12);
    assert_close(lb_jain_index(one_gets_all, 4), 0.25, 1e-12);   /* 1/n */
    assert_close(lb_jain_index(two_of_four, 4), 0.5, 1e-12);     /* k/n */
    assert_close(lb_jain_index(mixed, 3), 36.0 / 42.0, 1e-12);   /* 6^2 / (3 * 14) */
}

static void test_jain_index_degenerate(void **state)
{
    double zeros[] = {0, 0, 0};
    assert_close(lb_jain_index(NULL, 0), 1.0, 0);
    assert_close(lb_jain_index(zeros, 3), 1.0, 0);
}

/* ---- Mann-Whitney: exact distribution ------------------------------------------------------- */

static void test_mwu_exact_cdf_by_hand(void **state)
{
    assert_close(lb_mwu_exact_cdf(5, 5, 0), 1.0 / 252, 1e-15);
    assert_close(lb_mwu_exact_cdf(5, 5, 2), 4.0 / 252, 1e-15);
    assert_close(lb_mwu_exact_cdf(5, 5, 3), 7.0 / 252, 1e-15);
    assert_close(lb_mwu_exact_cdf(3, 4, 0), 1.0 / 35, 1e-15);
    assert_close(lb_mwu_exact_cdf(3, 4, 12), 1.0, 1e-15);        /* U <= n1*n2: everything */
    assert_close(lb_mwu_exact_cdf(1, 1, 0), 0.5, 1e-15);
    assert_true(isnan(lb_mwu_exact_cdf(21, 5, 3)));
}

static void test_mwu_exact_critical_values(void **state)
{
    /* n1, n2, critical U (two-sided, alpha = 0.05) from the standard table */
    static const struct { size_t n1, n2; double ucrit; } table[] = {
        {3, 5, 0},  {4, 4, 0},  {4, 6, 2},   {5, 5, 2},   {6, 6, 5},   {6, 9, 10},
        {7, 7, 8},  {8, 8, 13}, {9, 11, 23}, {10, 10, 23}, {15, 15, 64}, {20, 20, 127},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        double at = 2 * lb_mwu_exact_cdf(table[i].n1, table[i].n2, table[i].ucrit);
        double above = 2 * lb_mwu_exact_cdf(table[i].n1, table[i].n2, table[i].ucrit + 1);
        if (!(at <= 0.05 && above > 0.05))
            fail_msg("n1=%zu n2=%zu: p(U=%g) = %.5f, p(U=%g) = %.5f", table[i].n1, table[i].n2,
                     table[i].ucrit, at, table[i].ucrit + 1, above);
    }
}

static void test_mwu_exact_test(void **state)
{
    double a[] = {1, 2, 3, 4, 5}, b[] = {6, 7, 8, 9, 10};
    double c[] = {1, 2, 3, 4, 7}, d[] = {5, 6, 8, 9, 10};   /* 7 beats 5 and 6: U = 2 */
    lb_mwu r;
    assert_int_equal(lb_mann_whitney(a, 5, b, 5, &r), 0);
    assert_true(r.exact);
    assert_close(r.u, 0, 0);
    assert_close(r.u1, 0, 0);
    assert_close(r.p, 2.0 / 252, 1e-15);

    assert_int_equal(lb_mann_whitney(c, 5, d, 5, &r), 0);
    assert_close(r.u, 2, 0);
    assert_close(r.p, 8.0 / 252, 1e-15);   /* 0.0317 < 0.05: U = 2 is the critical value */

    /* swapping the samples: U1 becomes n1*n2 - U1, the test is the same */
    assert_int_equal(lb_mann_whitney(d, 5, c, 5, &r), 0);
    assert_close(r.u1, 23, 0);
    assert_close(r.u, 2, 0);
    assert_close(r.p, 8.0 / 252, 1e-15);
}

static void test_mwu_exact_unequal_sizes(void **state)
{
    double a[] = {1.1, 2.2, 3.3}, b[] = {4.4, 5.5, 6.6, 7.7};
    double same[] = {1, 4, 6}, other[] = {2, 3, 5, 7};   /* U1 = 0+2+3 = 5, mean 6 */
    lb_mwu r;
    assert_int_equal(lb_mann_whitney(a, 3, b, 4, &r), 0);
    assert_true(r.exact);
    assert_close(r.p, 2.0 / 35, 1e-15);   /* 0.057: not significant even fully separated */

    assert_int_equal(lb_mann_whitney(same, 3, other, 4, &r), 0);
    assert_close(r.u1, 5, 0);
    assert_true(r.p > 0.5);
}

/* ---- Mann-Whitney: normal approximation ----------------------------------------------------- */

/* a = {1, 2, 2, 3, 4}, b = {2, 3, 5, 5, 6, 7}. Pooled and sorted, with midranks:
 *   1a:1  2a,2a,2b:3  3a,3b:5.5  4a:7  5b,5b:8.5  6b:10  7b:11
 *   R1 = 1 + 3 + 3 + 5.5 + 7 = 19.5, U1 = 19.5 - 5*6/2 = 4.5, mean n1n2/2 = 15
 *   ties: groups of 3, 2, 2 -> T = 24 + 6 + 6 = 36
 *   var = 5*6/12 * (12 - 36/(11*10)) = 2.5 * 11.672727 = 29.181818
 *   z = (|4.5 - 15| - 0.5) / sqrt(29.181818) = 10 / 5.402020 = 1.851159
 *   p = erfc(z / sqrt 2) = 0.064147 */
static void test_mwu_ties_normal_approximation(void **state)
{
    double a[] = {1, 2, 2, 3, 4}, b[] = {2, 3, 5, 5, 6, 7};
    lb_mwu r;
    assert_int_equal(lb_mann_whitney(a, 5, b, 6, &r), 0);
    assert_false(r.exact);
    assert_close(r.u1, 4.5, 0);
    assert_close(r.u, 4.5, 0);
    assert_close(r.z, 1.851159, 1e-6);
    assert_close(r.p, 0.064147, 1e-6);
}

/* 25 vs 25, fully separated, no ties: past the exact limit. mean 312.5,
 * var = 25*25*51/12 = 2656.25, z = (312.5 - 0.5) / sqrt(2656.25) = 6.053722. */
static void test_mwu_large_samples_normal(void **state)
{
    double a[25], b[25];
    for (int i = 0; i < 25; i++) {
        a[i] = i;
        b[i] = 100 + i;
    }
    lb_mwu r;
    assert_int_equal(lb_mann_whitney(a, 25, b, 25, &r), 0);
    assert_false(r.exact);
    assert_close(r.u, 0, 0);
    assert_close(r.z, 312.0 / sqrt(2656.25), 1e-9);
    assert_close(r.p, erfc(312.0 / sqrt(2656.25) / sqrt(2.0)), 1e-15);
    assert_true(r.p < 1e-8);
}

/* At 20 vs 20, U = 127 (the table's critical value): the approximation agrees with the exact
 * p = 0.0491 to within a few thousandths, as it should at this size. */
static void test_mwu_normal_close_to_exact(void **state)
{
    double exact = 2 * lb_mwu_exact_cdf(20, 20, 127);
    double z = (200 - 127 - 0.5) / sqrt(20.0 * 20 * 41 / 12);
    assert_close(erfc(z / sqrt(2.0)), exact, 0.003);
}

static void test_mwu_all_tied(void **state)
{
    double a[] = {3, 3, 3, 3, 3}, b[] = {3, 3, 3, 3, 3, 3};
    lb_mwu r;
    assert_int_equal(lb_mann_whitney(a, 5, b, 6, &r), 0);
    assert_close(r.p, 1.0, 0);
    assert_close(r.u1, 15, 0);
}

static void test_mwu_identical_samples(void **state)
{
    double a[] = {1, 2, 3, 4, 5};
    lb_mwu r;
    assert_int_equal(lb_mann_whitney(a, 5, a, 5, &r), 0);   /* every value ties once */
    assert_close(r.p, 1.0, 0);
}

static void test_mwu_bad_input(void **state)
{
    double a[] = {1, 2}, n[] = {1, NAN};
    lb_mwu r = {.p = 42};
    assert_int_equal(lb_mann_whitney(a, 2, a, 0, &r), -1);
    assert_int_equal(lb_mann_whitney(a, 0, a, 2, &r), -1);
    assert_int_equal(lb_mann_whitney(a, 2, n, 2, &r), -1);
    assert_close(r.p, 42, 0);   /* untouched on error */
}

/* ---- Wilcoxon signed-rank ------------------------------------------------------------------ */

static void test_wsr_exact_no_ties(void **state)
{
    const double d[] = {1, -2, 3, 4, 5, 6};
    lb_wsr r;
    assert_int_equal(lb_wilcoxon_signed_rank(d, 6, &r), 0);
    assert_close(r.w_plus, 19, 0);
    assert_int_equal(r.n, 6);
    assert_close(r.p, 6.0 / 64, 1e-15);
    const double neg[] = {-1, 2, -3, -4, -5, -6};   /* the mirror image: the same p */
    assert_int_equal(lb_wilcoxon_signed_rank(neg, 6, &r), 0);
    assert_close(r.w_plus, 2, 0);
    assert_close(r.p, 6.0 / 64, 1e-15);
}

/* Every difference on one side: the smallest p for n pairs, 2/2^n. Five pairs cannot reach
 * 0.05 (2/32); twelve give 2/4096, small enough for Holm over sixteen metrics. */
static void test_wsr_all_one_sign(void **state)
{
    double d[12];
    lb_wsr r;
    for (int i = 0; i < 12; i++)
        d[i] = -0.1 - 0.01 * i;
    assert_int_equal(lb_wilcoxon_signed_rank(d, 5, &r), 0);
    assert_close(r.p, 2.0 / 32, 1e-15);
    assert_int_equal(lb_wilcoxon_signed_rank(d, 12, &r), 0);
    assert_close(r.w_plus, 0, 0);
    assert_close(r.p, 2.0 / 4096, 1e-15);
}

/* |d| 1,1,1,2,2,2,3,4 take mean ranks 2,2,2,5,5,5,7,8; the positive ones sum to W+ = 27 of 36. */
static void test_wsr_ties_exact(void **state)
{
    const double d[] = {1, 1, -1, 2, 2, 2, -3, 4};
    lb_wsr r;
    assert_int_equal(lb_wilcoxon_signed_rank(d, 8, &r), 0);
    assert_close(r.w_plus, 27, 0);
    assert_close(r.p, 68.0 / 256, 1e-15);
}

/* Zeros are dropped before ranking; nothing but zeros is no evidence at all. */
static void test_wsr_zeros(void **state)
{
    const double d[] = {0, 1, 2, 0, 3, 4, 5}, z[] = {0, 0, 0};
    lb_wsr r;
    assert_int_equal(lb_wilcoxon_signed_rank(d, 7, &r), 0);
    assert_int_equal(r.n, 5);
    assert_close(r.p, 2.0 / 32, 1e-15);
    assert_int_equal(lb_wilcoxon_signed_rank(z, 3, &r), 0);
    assert_int_equal(r.n, 0);
    assert_close(r.p, 1, 0);
}

static void test_wsr_bad_input(void **state)
{
    double d[LB_WSR_MAX + 1] = {1, NAN};
    lb_wsr r = {.p = 42};
    assert_int_equal(lb_wilcoxon_signed_rank(d, 0, &r), -1);
    assert_int_equal(lb_wilcoxon_signed_rank(d, 2, &r), -1);
    for (int i = 0; i <= LB_WSR_MAX; i++)
        d[i] = i + 1;
    assert_int_equal(lb_wilcoxon_signed_rank(d, LB_WSR_MAX + 1, &r), -1);
    assert_close(r.p, 42, 0);   /* untouched on error */
    assert_int_equal(lb_wilcoxon_signed_rank(d, LB_WSR_MAX, &r), 0);
    assert_true(r.p > 0 && r.p < 1e-70);   /* 2/2^256 */
}

/* ---- Holm-Bonferroni ------------------------------------------------------------------------ */

static const double alpha = 0.05;

/* Rejected at alpha: what the gate decides from an adjusted p. */
static void assert_decisions(const double *adjusted, const bool *expected, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((adjusted[i] < alpha) != expected[i])
            fail_msg("hypothesis %zu: adjusted p %.6g, expected %s", i, adjusted[i],
                     expected[i] ? "rejected" : "kept");
}

/* p = {0.01, 0.04, 0.03, 0.005}, m = 4. Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03,
 * 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> running max 0.06. So 0.005 and 0.01 are rejected; the
 * step-down stops at 0.03, and 0.04 is kept although 0.04 x 1 alone is below 0.05. */
static void test_holm_step_down_stops(void **state)
{
    const double p[] = {0.01, 0.04, 0.03, 0.005};
    const bool rejected[] = {true, false, false, true};
    double adj[4];
    assert_int_equal(lb_holm_adjust(p, 4, adj), 0);
    assert_close(adj[0], 0.03, 1e-15);
    assert_close(adj[1], 0.06, 1e-15);
    assert_close(adj[2], 0.06, 1e-15);
    assert_close(adj[3], 0.02, 1e-15);
    assert_decisions(adj, rejected, 4);
}

/* p = {0.3, 0.012, 0.02}, m = 3: 0.012 x 3 = 0.036 and 0.02 x 2 = 0.04 are rejected, 0.3 kept.
 * Bonferroni (every p x 3) would keep 0.02 (0.06): Holm rejects more at the same guarantee. */
static void test_holm_beats_bonferroni(void **state)
{
    const double p[] = {0.3, 0.012, 0.02};
    const bool rejected[] = {false, true, true};
    double adj[3];
    assert_int_equal(lb_holm_adjust(p, 3, adj), 0);
    assert_close(adj[0], 0.3, 1e-15);
    assert_close(adj[1], 0.036, 1e-15);
    assert_close(adj[2], 0.04, 1e-15);
    assert_decisions(adj, rejected, 3);
    assert_true(p[2] * 3 >= alpha);   /* Bonferroni's verdict on the same figure */
}

/* The gate's case: one metric of 5 vs 5 repeats fully separated, p = 2/252 = 0.0079, among 8
 * metrics whose other tests find nothing (p = 1): adjusted 8 x 2/252 = 0.0635, kept. Among 6
 * metrics: 6 x 2/252 = 0.0476, rejected. Five repeats a side cannot fail a gate of 8 metrics. */
static void test_holm_five_repeats_among_many(void **state)
{
    double p[8], adj[8];
    p[0] = 2.0 / 252;
    for (int i = 1; i < 8; i++)
        p[i] = 1;
    assert_int_equal(lb_holm_adjust(p, 8, adj), 0);
    assert_close(adj[0], 16.0 / 252, 1e-15);
    assert_false(adj[0] < alpha);
    for (int i = 1; i < 8; i++)
        assert_close(adj[i], 1, 0);
    assert_int_equal(lb_holm_adjust(p, 6, adj), 0);
    assert_close(adj[0], 12.0 / 252, 1e-15);
    assert_true(adj[0] < alpha);
}

/* NaN is no test: p = {NaN, 0.02, NaN, 0.01} is a family of m = 2: 0.01 x 2 = 0.02, then
 * max(0.02, 0.02 x 1) = 0.02; both rejected, the NaNs stay NaN. */
static void test_holm_skips_untested(void **state)
{
    const double p[] = {NAN, 0.02, NAN, 0.01};
    double adj[4];
    assert_int_equal(lb_holm_adjust(p, 4, adj), 0);
    assert_true(isnan(adj[0]));
    assert_true(isnan(adj[2]));
    assert_close(adj[1], 0.02, 1e-15);
    assert_close(adj[3], 0.02, 1e-15);
}

/* Capped at 1: {0.5, 0.7, 0.6} -> 1.5, 1.2, 0.7 -> 1, 1, 1. Ties: {0.02, 0.02} -> 0.04 each.
 * One test: unchanged. In place: adjusted may be p itself. None: nothing to do. */
static void test_holm_edges(void **state)
{
    double big[] = {0.5, 0.7, 0.6}, tie[] = {0.02, 0.02}, one[] = {0.03}, adj[3];
    assert_int_equal(lb_holm_adjust(big, 3, adj), 0);
    for (int i = 0; i < 3; i++)
        assert_close(adj[i], 1, 0);
    assert_int_equal(lb_holm_adjust(tie, 2, adj), 0);
    assert_close(adj[0], 0.04, 1e-15);
    assert_close(adj[1], 0.04, 1e-15);
    assert_int_equal(lb_holm_adjust(one, 1, adj), 0);
    assert_close(adj[0], 0.03, 0);
    assert_int_equal(lb_holm_adjust(tie, 2, tie), 0);
    assert_close(tie[0], 0.04, 1e-15);
    assert_close(tie[1], 0.04, 1e-15);
    assert_int_equal(lb_holm_adjust(NULL, 0, adj), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_median),
        cmocka_unit_test(test_median_empty_or_nan),
        cmocka_unit_test(test_jain_index),
        cmocka_unit_test(test_jain_index_degenerate),
        cmocka_unit_test(test_mwu_exact_cdf_by_hand),
        cmocka_unit_test(test_mwu_exact_critical_values),
        cmocka_unit_test(test_mwu_exact_test),
        cmocka_unit_test(test_mwu_exact_unequal_sizes),
        cmocka_unit_test(test_mwu_ties_normal_approximation),
        cmocka_unit_test(test_mwu_large_samples_normal),
        cmocka_unit_test(test_mwu_normal_close_to_exact),
        cmocka_unit_test(test_mwu_all_tied),
        cmocka_unit_test(test_mwu_identical_samples),
        cmocka_unit_test(test_mwu_bad_input),
        cmocka_unit_test(test_wsr_exact_no_ties),
        cmocka_unit_test(test_wsr_all_one_sign),
        cmocka_unit_test(test_wsr_ties_exact),
        cmocka_unit_test(test_wsr_zeros),
        cmocka_unit_test(test_wsr_bad_input),
        cmocka_unit_test(test_holm_step_down_stops),
        cmocka_unit_test(test_holm_beats_bonferroni),
        cmocka_unit_test(test_holm_five_repeats_among_many),
        cmocka_unit_test(test_holm_skips_untested),
        cmocka_unit_test(test_holm_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
