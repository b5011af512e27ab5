/* test_backoff.c -- each back-off policy's formula and range, and reproducible jitter. */
#include <math.h>

#include "scripted.h"

#define SAMPLES 2000

static dlock_backoff policy(dlock_backoff_policy p, int64_t base, int64_t cap)
{
    return (dlock_backoff){.policy = p, .base_ms = base, .cap_ms = cap};
}

/* Every sample of attempt n lies in [lo, hi] (µs); returns the sample mean. */
static double sample_range(dlock_backoff b, int n, int64_t lo, int64_t hi)
{
    dlock__rng r;
    dlock__rng_seed(&r, 42);
    double sum = 0;
    for (int i = 0; i < SAMPLES; i++) {
        int64_t prev = 0;
        int64_t d = dlock__backoff_us(&b, n, &prev, &r);
        assert_in_range(d, lo, hi);
        sum += (double)d;
    }
    return sum / SAMPLES;
}

static void deterministic_policies(void **state)
{
    dlock_backoff none = policy(DLOCK_BACKOFF_NONE, 5, 100);
    dlock_backoff constant = policy(DLOCK_BACKOFF_CONSTANT, 5, 100);
    dlock_backoff linear = policy(DLOCK_BACKOFF_LINEAR, 5, 100);
    dlock_backoff expo = policy(DLOCK_BACKOFF_EXPONENTIAL, 5, 100);
    dlock__rng r;
    int64_t prev = 0;
    dlock__rng_seed(&r, 1);
    for (int n = 1; n <= 70; n++) {
        assert_int_equal(dlock__backoff_us(&none, n, &prev, &r), 0);
        assert_int_equal(dlock__backoff_us(&constant, n, &prev, &r), 5000);
        assert_int_equal(dlock__backoff_us(&linear, n, &prev, &r), fmin(100000, 5000.0 * n));
        assert_int_equal(dlock__backoff_us(&expo, n, &prev, &r), fmin(100000, ldexp(5000, n)));
    }
    /* exponential: 10, 20, 40, 80, then capped at 100 ms */
    assert_int_equal(dlock__backoff_us(&expo, 1, &prev, &r), 10000);
    assert_int_equal(dlock__backoff_us(&expo, 4, &prev, &r), 80000);
    assert_int_equal(dlock__backoff_us(&expo, 5, &prev, &r), 100000);
}

static void full_jitter_is_uniform_below_the_exponential(void **state)
{
    dlock_backoff b = policy(DLOCK_BACKOFF_FULL_JITTER, 5, 2000);
    for (int n = 1; n <= 12; n++) {
        int64_t v = (int64_t)fmin(2000000, ldexp(5000, n));
        double mean = sample_range(b, n, 0, v);
        assert_true(mean > 0.45 * v && mean < 0.55 * v);
    }
}

static void equal_jitter_keeps_half(void **state)
{
    dlock_backoff b = policy(DLOCK_BACKOFF_EQUAL_JITTER, 5, 2000);
    for (int n = 1; n <= 12; n++) {
        int64_t v = (int64_t)fmin(2000000, ldexp(5000, n));
        double mean = sample_range(b, n, v / 2, v);
        assert_true(mean > 0.7 * v && mean < 0.8 * v);
    }
}

static void decorrelated_jitter_grows_from_base_and_caps(void **state)
{
    dlock_backoff b = policy(DLOCK_BACKOFF_DECORRELATED_JITTER, 5, 2000);
    dlock__rng r;
    dlock__rng_seed(&r, 7);
    for (int run = 0; run < 200; run++) {
        int64_t prev = 0;
        for (int n = 1; n <= 30; n++) {
            int64_t before = prev > 0 ? prev : 5000;
            int64_t d = dlock__backoff_us(&b, n, &prev, &r);
            assert_in_range(d, 5000, (int64_t)fmin(2000000, before * 3));
            assert_int_equal(prev, d);
        }
    }
}

static void servicestack_uses_its_own_base_and_cap(void **state)
{
    /* ServiceStack's ceilings: 200, 400, 800 ... 12800, then 20000 ms, whatever base and cap */
    dlock_backoff b = policy(DLOCK_BACKOFF_SERVICESTACK, 1, 100);
    const int64_t ceiling_ms[] = {200, 400, 800, 1600, 3200, 6400, 12800, 20000, 20000};
    for (int n = 1; n <= 9; n++) {
        int64_t hi = ceiling_ms[n - 1] * 1000;
        double mean = sample_range(b, n, 0, hi);
        assert_true(mean > 0.4 * hi && mean < 0.6 * hi);
    }
}

static void same_seed_same_sequence(void **state)
{
    dlock_backoff b = policy(DLOCK_BACKOFF_FULL_JITTER, 1, 1000);
    dlock__rng r1, r2, r3;
    int64_t p1 = 0, p2 = 0, p3 = 0;
    int differ = 0;
    dlock__rng_seed(&r1, 99);
    dlock__rng_seed(&r2, 99);
    dlock__rng_seed(&r3, 100);
    for (int n = 1; n <= 50; n++) {
        int64_t a = dlock__backoff_us(&b, n, &p1, &r1);
        assert_int_equal(a, dlock__backoff_us(&b, n, &p2, &r2));
        differ += a != dlock__backoff_us(&b, n, &p3, &r3);
    }
    assert_true(differ > 40);
}

static void uniform_is_in_unit_interval(void **state)
{
    dlock__rng r;
    double lo = 1, hi = 0;
    dlock__rng_seed(&r, 3);
    for (int i = 0; i < 100000; i++) {
        double u = dlock__rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        lo = fmin(lo, u);
        hi = fmax(hi, u);
    }
    assert_true(lo < 0.001 && hi > 0.999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(deterministic_policies),
        cmocka_unit_test(full_jitter_is_uniform_below_the_exponential),
        cmocka_unit_test(equal_jitter_keeps_half),
        cmocka_unit_test(decorrelated_jitter_grows_from_base_and_caps),
        cmocka_unit_test(servicestack_uses_its_own_base_and_cap),
        cmocka_unit_test(same_seed_same_sequence),
        cmocka_unit_test(uniform_is_in_unit_interval),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
