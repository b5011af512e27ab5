/* backoff.c -- delays between tries, and the per-client generator behind their jitter.
 *
 * n is the number of failed tries so far (n = 1 after the first failure). Formulas, with
 * v = min(cap, base * 2^n) (AWS "Exponential Backoff And Jitter"):
 *   none 0; constant base; linear min(cap, base*n); exponential v; full-jitter uniform(0, v);
 *   equal-jitter v/2 + uniform(0, v/2); decorrelated-jitter min(cap, uniform(base, 3*prev)),
 *   prev starting at base; servicestack uniform(0, min(100 ms * 2^n, 20 s)), the seed library's.
 * The generator is xoshiro256** seeded through splitmix64: fast, and reproducible from a seed so
 * a scenario's back-off sequence replays exactly. It is not for secrets (tokens use getrandom). */
#include <math.h>

#include "internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dlock__rng_seed(dlock__rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t dlock__rng_next(dlock__rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dlock__rng_uniform(dlock__rng *r)
{
    return (double)(dlock__rng_next(r) >> 11) * 0x1.0p-53;
}

/* min(cap, base * 2^n) without overflow */
static double exp_capped(double base, double cap, int n)
{
    if (n > 62)
        return cap;
    return fmin(cap, ldexp(base, n));
}

static double uniform(dlock__rng *r, double lo, double hi)
{
    return lo + (hi - lo) * dlock__rng_uniform(r);
}

int64_t dlock__backoff_us(const dlock_backoff *b, int n, int64_t *prev_us, dlock__rng *r)
{
    double base = (double)b->base_ms * 1000.0;
    double cap = (double)b->cap_ms * 1000.0;
    double v, d = 0;

    if (n < 1)
        n = 1;
    switch (b->policy) {
    case DLOCK_BACKOFF_NONE:
        d = 0;
        break;
    case DLOCK_BACKOFF_CONSTANT:
        d = base;
        break;
    case DLOCK_BACKOFF_LINEAR:
        d = fmin(cap, base * n);
        break;
    case DLOCK_BACKOFF_EXPONENTIAL:
        d = exp_capped(base, cap, n);
        break;
    case DLOCK_BACKOFF_FULL_JITTER:
        d = uniform(r, 0, exp_capped(base, cap, n));
        break;
    case DLOCK_BACKOFF_EQUAL_JITTER:
        v = exp_capped(base, cap, n);
        d = v / 2 + uniform(r, 0, v / 2);
        break;
    case DLOCK_BACKOFF_DECORRELATED_JITTER: {
        double prev = *prev_us > 0 ? (double)*prev_us : base;
        d = fmin(cap, uniform(r, base, prev * 3));
        *prev_us = (int64_t)d;
        break;
    }
    case DLOCK_BACKOFF_SERVICESTACK:
        d = uniform(r, 0, exp_capped(100e3, 20e6, n));
        break;
    }
    return (int64_t)d;
}
