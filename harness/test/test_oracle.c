/* test_oracle.c -- the oracle on hand-made histories, and under real concurrency. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>

#include "oracle.h"

/* A history step: client enters (+1) or leaves (-1) key; `overlap` is what enter must say. */
typedef struct step {
    int key, delta;
    bool overlap;
} step;

static void replay(const step *h, size_t n, size_t nkeys, int64_t want_overlaps)
{
    lb_oracle *o = lb_oracle_new(nkeys);
    assert_non_null(o);
    for (size_t i = 0; i < n; i++) {
        if (h[i].delta > 0)
            assert_int_equal(lb_oracle_enter(o, (size_t)h[i].key), h[i].overlap);
        else
            lb_oracle_leave(o, (size_t)h[i].key);
    }
    assert_int_equal(lb_oracle_overlaps(o), want_overlaps);
    lb_oracle_free(o);
}

static void sequential_holders_never_overlap(void **state)
{
    const step h[] = {{0, +1, false}, {0, -1, false}, {0, +1, false}, {0, -1, false},
                      {0, +1, false}, {0, -1, false}};
    replay(h, sizeof h / sizeof *h, 1, 0);
}

static void keys_are_independent(void **state)
{
    const step h[] = {{0, +1, false}, {1, +1, false}, {2, +1, false},
                      {1, -1, false}, {0, -1, false}, {2, -1, false}};
    replay(h, sizeof h / sizeof *h, 3, 0);
}

/* B enters while A is paused inside (its lease expired); C enters while both are inside:
 * two overlaps, one per offending entry, not one per pair. */
static void each_entry_into_an_occupied_key_counts_once(void **state)
{
    const step h[] = {{0, +1, false}, {0, +1, true}, {0, +1, true},
                      {0, -1, false}, {0, -1, false}, {0, -1, false}, {0, +1, false}};
    replay(h, sizeof h / sizeof *h, 1, 2);
}

/* A crashes inside: it leaves, so the next holder does not overlap with a dead client. */
static void a_crashed_client_is_not_live(void **state)
{
    const step h[] = {{0, +1, false}, {0, -1, false} /* crash */, {0, +1, false}};
    replay(h, sizeof h / sizeof *h, 1, 0);
}

#define THREADS 8
#define ROUNDS 20000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* Real mutual exclusion (a mutex) must show zero overlaps. */
static void *worker(void *arg)
{
    lb_oracle *o = arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&mu);
        bool overlap = lb_oracle_enter(o, 0);
        lb_oracle_leave(o, 0);
        pthread_mutex_unlock(&mu);
        if (overlap)
            return (void *)1;
    }
    return NULL;
}

/* Two threads inside at once, by construction: the first enters and waits in there until the
 * second has entered. */
typedef struct both_inside {
    lb_oracle *o;
    sem_t first_in, second_in;
    bool first_overlapped, second_overlapped;
} both_inside;

static void *first(void *arg)
{
    both_inside *b = arg;
    b->first_overlapped = lb_oracle_enter(b->o, 0);
    sem_post(&b->first_in);
    sem_wait(&b->second_in);
    lb_oracle_leave(b->o, 0);
    return NULL;
}

static void *second(void *arg)
{
    both_inside *b = arg;
    sem_wait(&b->first_in);
    b->second_overlapped = lb_oracle_enter(b->o, 0);
    sem_post(&b->second_in);
    lb_oracle_leave(b->o, 0);
    return NULL;
}

static void concurrent_counts_are_exact(void **state)
{
    pthread_t t[THREADS];
    lb_oracle *o = lb_oracle_new(1);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, o);
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    assert_int_equal(lb_oracle_overlaps(o), 0);

    both_inside b = {.o = o};
    sem_init(&b.first_in, 0, 0);
    sem_init(&b.second_in, 0, 0);
    pthread_create(&t[0], NULL, first, &b);
    pthread_create(&t[1], NULL, second, &b);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    assert_false(b.first_overlapped);
    assert_true(b.second_overlapped);
    assert_int_equal(lb_oracle_overlaps(o), 1);
    sem_destroy(&b.first_in);
    sem_destroy(&b.second_in);
    lb_oracle_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sequential_holders_never_overlap),
        cmocka_unit_test(keys_are_independent),
        cmocka_unit_test(each_entry_into_an_occupied_key_counts_once),
        cmocka_unit_test(a_crashed_client_is_not_live),
        cmocka_unit_test(concurrent_counts_are_exact),
    };
    return cmocka_run_group_tests_name("oracle", tests, NULL, NULL);
}
