/* test_workload.c -- the client workload machine with scripted outcomes and a fake clock.
 *
 * Each test plays a driver: it feeds the machine times and outcomes and asserts the exact
 * steps it answers, and what it recorded (the acquisition log, the counts, the oracle). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dlock.h"
#include "workload.h"

typedef struct fixture {
    lb_client_group g;
    lb_client_result out;
    lb_meter meter;
    lb_oracle *oracle;
    uint64_t rng;
    lb_wl_tally tally;
    lb_wl m;
    lb_wl_step s;
} fixture;

static void setup(fixture *f, lb_critical_section cs, int64_t iterations, int64_t hold_ms,
                  int64_t think_ms)
{
    memset(f, 0, sizeof *f);
    f->g.count = 1;
    f->g.lock.backoff.cap_ms = 100;
    f->g.workload = (lb_workload){.iterations = iterations, .duration_ms = -1,
                                  .hold_ms = {.kind = LB_DIST_FIXED, .a = hold_ms, .b = hold_ms},
                                  .think_ms = {.kind = LB_DIST_FIXED, .a = think_ms, .b = think_ms},
                                  .critical_section = cs, .release = true};
    assert_int_equal(lb_meter_init(&f->meter, 1, false), 0);
    f->oracle = lb_oracle_new(1);
    f->rng = 1;
    atomic_init(&f->tally.acquired, 0);
    atomic_init(&f->tally.timeouts, 0);
    atomic_init(&f->tally.errors, 0);
}

static void begin(fixture *f, int64_t deadline_us)
{
    lb_wl_setup st = {.g = &f->g, .out = &f->out, .meter = &f->meter, .oracle = f->oracle,
                      .rng = &f->rng, .tally = &f->tally, .deadline_us = deadline_us};
    assert_int_equal(lb_wl_init(&f->m, &st), 0);
    lb_wl_input in = {.now_us = 0};
    f->s = lb_wl_next(&f->m, &in);
}

static void teardown(fixture *f)
{
    lb_wl_free(&f->m);
    lb_meter_free(&f->meter);
    lb_oracle_free(f->oracle);
}

static void feed(fixture *f, lb_wl_input in)
{
    f->s = lb_wl_next(&f->m, &in);
}

static void expect(const fixture *f, lb_wl_do what)
{
    assert_int_equal(f->s.what, what);
}

static void expect_until(const fixture *f, lb_wl_do what, int64_t until_us)
{
    assert_int_equal(f->s.what, what);
    assert_int_equal(f->s.until_us, until_us);
}

static const lb_acquisition *record(const fixture *f, size_t i)
{
    static lb_acq_cursor cur;
    const lb_acquisition *a = NULL;
    lb_acq_cursor_init(&cur, &f->meter.log);
    for (size_t k = 0; k <= i; k++)
        a = lb_acq_cursor_next(&cur);
    assert_non_null(a);
    return a;
}

/* The seed's iteration: acquire, GET, holding point, hold, SET +1, release; then think. */
static void a_counter_iteration_in_order(void **state)
{
    fixture f;
    setup(&f, LB_CS_COUNTER, 2, 5, 3);
    begin(&f, INT64_MAX);
    expect(&f, LB_WL_ACQUIRE);
    feed(&f, (lb_wl_input){.now_us = 1000, .rc = DLOCK_OK, .attempts = 2, .commands = 3, .fence = 0});
    expect(&f, LB_WL_READ);
    assert_int_equal(lb_oracle_overlaps(f.oracle), 0);
    feed(&f, (lb_wl_input){.now_us = 1100, .ok = true, .value = 41});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 1200});
    expect_until(&f, LB_WL_HOLD, 1200 + 5000);
    feed(&f, (lb_wl_input){.now_us = 6200});
    expect(&f, LB_WL_WRITE);
    assert_int_equal(f.s.value, 42);
    assert_int_equal(f.s.fence, 0);
    feed(&f, (lb_wl_input){.now_us = 6300, .rc = DLOCK_OK});
    expect(&f, LB_WL_RELEASE);
    feed(&f, (lb_wl_input){.now_us = 6400, .rc = DLOCK_OK});
    expect_until(&f, LB_WL_THINK, 6400 + 3000);
    feed(&f, (lb_wl_input){.now_us = 9400});
    expect(&f, LB_WL_ACQUIRE);

    const lb_acquisition *a = record(&f, 0);
    assert_int_equal(a->call_us, 0);
    assert_int_equal(a->end_us, 1000);
    assert_int_equal(a->left_us, 6300);
    assert_int_equal(a->released_us, 6400);
    assert_int_equal(a->attempts, 2);
    assert_int_equal(a->commands, 3);
    assert_int_equal(a->result, LB_RES_OK);
    assert_int_equal(a->end, LB_END_RELEASED);
    assert_int_equal(f.out.acquisitions, 1);
    assert_int_equal(f.out.cs_attempted, 1);
    assert_int_equal(f.out.cs_acked, 1);
    assert_int_equal(lb_hist_count(f.meter.acquire_hist), 1);
    assert_int_equal(atomic_load(&f.tally.acquired), 1);

    /* the last iteration has no think time after it */
    feed(&f, (lb_wl_input){.now_us = 9500, .rc = DLOCK_ETIMEDOUT});
    expect(&f, LB_WL_DONE);
    assert_int_equal(f.out.timeouts, 1);
    assert_int_equal(lb_hist_count(f.meter.timeout_hist), 1);
    assert_int_equal(atomic_load(&f.tally.timeouts), 1);
    teardown(&f);
}

/* The read and the write of a fenced counter carry the lock's token; a stale write is counted,
 * not acknowledged. */
static void a_fenced_write_carries_the_token(void **state)
{
    fixture f;
    setup(&f, LB_CS_COUNTER, 1, 0, 0);
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK, .fence = 77});
    expect(&f, LB_WL_READ);
    assert_int_equal(f.s.fence, 77);
    feed(&f, (lb_wl_input){.now_us = 20, .ok = true, .value = 1, .rc = DLOCK_OK});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 30});
    expect(&f, LB_WL_WRITE);  /* a zero hold is no step */
    assert_int_equal(f.s.fence, 77);
    feed(&f, (lb_wl_input){.now_us = 40, .rc = DLOCK_ESTALE});
    expect(&f, LB_WL_RELEASE);
    assert_int_equal(f.out.stale_rejected, 1);
    assert_int_equal(f.out.cs_acked, 0);
    assert_int_equal(record(&f, 0)->fence, 77);
    teardown(&f);
}

/* A fenced read the store refuses (it saw a newer token): the holder has been overtaken, so it
 * neither holds nor writes; the refusal counts as a stale critical section, entered but not
 * acknowledged, and the lock is released. The next iteration reads fenced again, and without
 * fencing the read is a plain GET. */
static void a_refused_fenced_read_ends_the_critical_section(void **state)
{
    fixture f;
    setup(&f, LB_CS_COUNTER, 2, 5, 0);
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK, .fence = 5});
    expect(&f, LB_WL_READ);
    assert_int_equal(f.s.fence, 5);
    feed(&f, (lb_wl_input){.now_us = 20, .rc = DLOCK_ESTALE});
    expect(&f, LB_WL_RELEASE);  /* no holding point, no hold, no write */
    const lb_acquisition *a = record(&f, 0);
    assert_int_equal(a->left_us, 20);
    feed(&f, (lb_wl_input){.now_us = 30, .rc = DLOCK_ENOTOWNER});
    expect(&f, LB_WL_ACQUIRE);
    assert_int_equal(f.out.cs_attempted, 1);
    assert_int_equal(f.out.cs_acked, 0);
    assert_int_equal(f.out.stale_rejected, 1);
    assert_int_equal(f.out.errors, 0);
    assert_int_equal(lb_oracle_overlaps(f.oracle), 0);

    /* a read that failed otherwise (no reply) is not stale: the client holds, and skips the
     * write it has no value for */
    feed(&f, (lb_wl_input){.now_us = 40, .rc = DLOCK_OK, .fence = 6});
    expect(&f, LB_WL_READ);
    assert_int_equal(f.s.fence, 6);
    feed(&f, (lb_wl_input){.now_us = 50, .rc = DLOCK_EIO});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 60});
    expect_until(&f, LB_WL_HOLD, 60 + 5000);
    feed(&f, (lb_wl_input){.now_us = 5060});
    expect(&f, LB_WL_RELEASE);
    assert_int_equal(f.out.stale_rejected, 1);
    assert_int_equal(f.out.cs_attempted, 2);
    assert_int_equal(f.out.cs_acked, 0);
    teardown(&f);

    setup(&f, LB_CS_COUNTER, 1, 0, 0);  /* fencing off: the lock has no token */
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK, .fence = 0});
    expect(&f, LB_WL_READ);
    assert_int_equal(f.s.fence, 0);     /* a plain GET ... */
    feed(&f, (lb_wl_input){.now_us = 20, .ok = true, .value = 41});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 30});
    if (f.s.what == LB_WL_HOLD)         /* a hold of zero goes straight on */
        feed(&f, (lb_wl_input){.now_us = 30});
    expect(&f, LB_WL_WRITE);
    assert_int_equal(f.s.fence, 0);     /* ... and a plain SET of the value read plus one */
    assert_int_equal(f.s.value, 42);
    feed(&f, (lb_wl_input){.now_us = 40, .rc = DLOCK_OK});
    expect(&f, LB_WL_RELEASE);
    assert_int_equal(f.out.cs_acked, 1);
    assert_int_equal(f.out.stale_rejected, 0);
    teardown(&f);
}

/* A crash inside the critical section ends the hold there, never released, and the oracle no
 * longer counts the client as inside; the client comes back with a new iteration. */
static void a_crash_while_holding_ends_the_hold(void **state)
{
    fixture f;
    setup(&f, LB_CS_INCR, 0, 1000, 0);
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 20});
    expect(&f, LB_WL_HOLD);
    feed(&f, (lb_wl_input){.now_us = 500, .crashed = true});
    expect(&f, LB_WL_CRASHED);
    const lb_acquisition *a = record(&f, 0);
    assert_int_equal(a->end, LB_END_CRASHED);
    assert_int_equal(a->left_us, 500);
    assert_int_equal(a->released_us, 500);
    assert_false(lb_oracle_enter(f.oracle, 0));  /* nobody inside */
    lb_oracle_leave(f.oracle, 0);
    lb_wl_input in = {.now_us = 2000};
    f.s = lb_wl_restart(&f.m, &in);
    expect(&f, LB_WL_ACQUIRE);
    assert_int_equal(record(&f, 1)->call_us, 2000);
    teardown(&f);
}

/* inside_check: the critical section begins with the INCR of the store's count of clients
 * inside and ends with its DECR, before the release; a reply above 1 is an overlap the store
 * saw. Off (the default), neither step comes. */
static void the_store_counts_the_clients_inside(void **state)
{
    fixture f;
    setup(&f, LB_CS_COUNTER, 4, 5, 0);
    f.g.workload.inside_check = true;
    begin(&f, INT64_MAX);
    expect(&f, LB_WL_ACQUIRE);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK, .fence = 3});
    expect(&f, LB_WL_ENTER);
    feed(&f, (lb_wl_input){.now_us = 20, .ok = true, .value = 1});
    expect(&f, LB_WL_READ);
    assert_int_equal(f.s.fence, 3);
    feed(&f, (lb_wl_input){.now_us = 30, .ok = true, .value = 7, .rc = DLOCK_OK});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 40});
    expect_until(&f, LB_WL_HOLD, 40 + 5000);
    feed(&f, (lb_wl_input){.now_us = 5040});
    expect(&f, LB_WL_WRITE);
    assert_int_equal(f.s.value, 8);
    feed(&f, (lb_wl_input){.now_us = 5050, .rc = DLOCK_OK});
    expect(&f, LB_WL_EXIT);
    assert_int_equal(record(&f, 0)->left_us, -1);  /* still inside until the DECR answers */
    feed(&f, (lb_wl_input){.now_us = 5060, .ok = true});
    expect(&f, LB_WL_RELEASE);
    assert_int_equal(record(&f, 0)->left_us, 5060);
    assert_int_equal(f.out.store_overlaps, 0);
    feed(&f, (lb_wl_input){.now_us = 5070, .rc = DLOCK_OK});
    expect(&f, LB_WL_ACQUIRE);

    /* another client was inside: the INCR answers 2 */
    feed(&f, (lb_wl_input){.now_us = 6000, .rc = DLOCK_OK, .fence = 4});
    expect(&f, LB_WL_ENTER);
    feed(&f, (lb_wl_input){.now_us = 6010, .ok = true, .value = 2});
    expect(&f, LB_WL_READ);
    assert_int_equal(f.out.store_overlaps, 1);
    /* a refused read ends the critical section: the DECR still comes before the release */
    feed(&f, (lb_wl_input){.now_us = 6020, .rc = DLOCK_ESTALE});
    expect(&f, LB_WL_EXIT);
    feed(&f, (lb_wl_input){.now_us = 6030, .ok = true});
    expect(&f, LB_WL_RELEASE);
    feed(&f, (lb_wl_input){.now_us = 6040, .rc = DLOCK_OK});
    expect(&f, LB_WL_ACQUIRE);

    /* an INCR with no reply counts nothing, but is undone all the same; a client that crashes
     * counted in is taken out (the harness's DECR) before it goes down, its hold over at the
     * crash */
    feed(&f, (lb_wl_input){.now_us = 7000, .rc = DLOCK_OK, .fence = 5});
    expect(&f, LB_WL_ENTER);
    feed(&f, (lb_wl_input){.now_us = 7010, .ok = false});
    expect(&f, LB_WL_READ);
    feed(&f, (lb_wl_input){.now_us = 7020, .ok = true, .value = 8, .rc = DLOCK_OK});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 7030, .crashed = true});
    expect(&f, LB_WL_EXIT);
    assert_int_equal(record(&f, 2)->left_us, 7030);
    assert_int_equal(record(&f, 2)->end, LB_END_CRASHED);
    feed(&f, (lb_wl_input){.now_us = 7040, .ok = true});
    expect(&f, LB_WL_CRASHED);
    assert_int_equal(f.out.store_overlaps, 1);
    /* back, and crashed on entering (the INCR cut short may have counted): the DECR again; a
     * second crash while it is on its way goes down without another */
    lb_wl_input back = {.now_us = 8000};
    f.s = lb_wl_restart(&f.m, &back);
    expect(&f, LB_WL_ACQUIRE);
    feed(&f, (lb_wl_input){.now_us = 8010, .rc = DLOCK_OK, .fence = 6});
    expect(&f, LB_WL_ENTER);
    feed(&f, (lb_wl_input){.now_us = 8020, .crashed = true});
    expect(&f, LB_WL_EXIT);
    feed(&f, (lb_wl_input){.now_us = 8030, .crashed = true});
    expect(&f, LB_WL_CRASHED);
    teardown(&f);

    setup(&f, LB_CS_INCR, 1, 0, 0);   /* off: no step of its own */
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 20});
    expect(&f, LB_WL_INCR);
    feed(&f, (lb_wl_input){.now_us = 30, .ok = true});
    expect(&f, LB_WL_RELEASE);
    teardown(&f);

    setup(&f, LB_CS_NONE, 1, 0, 0);   /* on, with no store work of the section's own */
    f.g.workload.inside_check = true;
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK});
    expect(&f, LB_WL_ENTER);
    feed(&f, (lb_wl_input){.now_us = 20, .ok = true, .value = 1});
    expect(&f, LB_WL_HOLDING);
    feed(&f, (lb_wl_input){.now_us = 30});
    expect(&f, LB_WL_EXIT);
    feed(&f, (lb_wl_input){.now_us = 40, .ok = true});
    expect(&f, LB_WL_RELEASE);
    teardown(&f);
}

/* A crash while waiting for the lock: the call counts as canceled, not as a timeout or error. */
static void a_crash_while_waiting_is_canceled(void **state)
{
    fixture f;
    setup(&f, LB_CS_NONE, 0, 0, 0);
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_ECANCELED, .crashed = true});
    expect(&f, LB_WL_CRASHED);
    assert_int_equal(record(&f, 0)->result, LB_RES_CANCELED);
    assert_int_equal(f.out.errors + f.out.timeouts + f.out.acquisitions, 0);
    teardown(&f);
}

/* After an error the client pauses at least the back-off cap (here 100 ms) before its next try. */
static void an_error_pauses_the_backoff_cap(void **state)
{
    fixture f;
    setup(&f, LB_CS_NONE, 0, 0, 2);
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_EIO});
    expect_until(&f, LB_WL_THINK, 10 + 100000);
    assert_int_equal(f.out.errors, 1);
    assert_int_equal(atomic_load(&f.tally.errors), 1);
    feed(&f, (lb_wl_input){.now_us = 100010});
    expect(&f, LB_WL_ACQUIRE);
    feed(&f, (lb_wl_input){.now_us = 100020, .rc = DLOCK_EBUSY});
    expect_until(&f, LB_WL_THINK, 100020 + 2000);  /* a timeout: the think time only */
    teardown(&f);
}

/* The group's start delays the first acquire; its deadline stops a client that is waiting or
 * thinking, but a holder finishes its critical section and releases. */
static void start_and_deadline(void **state)
{
    fixture f;
    setup(&f, LB_CS_NONE, 0, 50, 10);
    f.g.start_ms = 20;
    begin(&f, 60000);
    expect_until(&f, LB_WL_THINK, 20000);
    feed(&f, (lb_wl_input){.now_us = 20000});
    expect(&f, LB_WL_ACQUIRE);
    feed(&f, (lb_wl_input){.now_us = 21000, .rc = DLOCK_OK});
    feed(&f, (lb_wl_input){.now_us = 21000});
    expect_until(&f, LB_WL_HOLD, 71000);  /* past the deadline: the hold is not cut */
    feed(&f, (lb_wl_input){.now_us = 71000});
    expect(&f, LB_WL_RELEASE);
    feed(&f, (lb_wl_input){.now_us = 71100, .rc = DLOCK_OK});
    expect(&f, LB_WL_DONE);
    teardown(&f);

    setup(&f, LB_CS_NONE, 0, 0, 0);
    f.g.start_ms = 100;
    begin(&f, 60000);
    expect_until(&f, LB_WL_THINK, 60000);  /* a start past the deadline never comes */
    feed(&f, (lb_wl_input){.now_us = 60000});
    expect(&f, LB_WL_DONE);
    teardown(&f);

    setup(&f, LB_CS_NONE, 0, 0, 5000);
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_EBUSY});
    expect(&f, LB_WL_THINK);
    feed(&f, (lb_wl_input){.now_us = 20, .stop = true});  /* Ctrl-C */
    expect(&f, LB_WL_DONE);
    teardown(&f);
}

/* release: false leaves the lock held: the record says kept, and no release is asked. */
static void a_kept_lock_is_not_released(void **state)
{
    fixture f;
    setup(&f, LB_CS_NONE, 1, 0, 0);
    f.g.workload.release = false;
    begin(&f, INT64_MAX);
    feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK});
    feed(&f, (lb_wl_input){.now_us = 20});
    expect(&f, LB_WL_KEEP);
    feed(&f, (lb_wl_input){.now_us = 30});
    expect(&f, LB_WL_DONE);
    assert_int_equal(record(&f, 0)->end, LB_END_KEPT);
    assert_int_equal(record(&f, 0)->released_us, 20);
    teardown(&f);
}

/* A release that finds the lock gone is recorded as such. */
static void release_outcomes_are_recorded(void **state)
{
    static const int rcs[] = {DLOCK_OK, DLOCK_ENOTOWNER, DLOCK_EIO};
    static const lb_hold_end ends[] = {LB_END_RELEASED, LB_END_NOTOWNER, LB_END_FAILED};
    for (int i = 0; i < 3; i++) {
        fixture f;
        setup(&f, LB_CS_NONE, 1, 0, 0);
        begin(&f, INT64_MAX);
        feed(&f, (lb_wl_input){.now_us = 10, .rc = DLOCK_OK});
        feed(&f, (lb_wl_input){.now_us = 20});
        expect(&f, LB_WL_RELEASE);
        feed(&f, (lb_wl_input){.now_us = 30, .rc = rcs[i]});
        assert_int_equal(record(&f, 0)->end, ends[i]);
        teardown(&f);
    }
}

/* ---- the open loop -------------------------------------------------------------------------- */

/* An open-loop fixture: member `member` of a group of `count`, arrivals at `rate` per second,
 * critical section none, hold 0, no iteration limit. */
static void setup_open(fixture *f, double rate, lb_arrival_process process, int64_t max_out,
                       int64_t count)
{
    setup(f, LB_CS_NONE, 0, 0, 0);
    lb_meter_free(&f->meter);
    assert_int_equal(lb_meter_init(&f->meter, 1, true), 0);
    f->g.count = count;
    f->g.workload.duration_ms = 1000;
    f->g.workload.arrival = (lb_arrival){.on = true, .rate_per_s = rate, .process = process,
                                         .max_outstanding = max_out};
}

/* One open-loop cycle from ACQUIRE: granted at t_ok, released at t_rel; returns the next step. */
static void cycle(fixture *f, int64_t t_ok, int64_t t_rel)
{
    expect(f, LB_WL_ACQUIRE);
    feed(f, (lb_wl_input){.now_us = t_ok, .rc = DLOCK_OK, .attempts = 1, .commands = 1});
    expect(f, LB_WL_HOLDING);
    feed(f, (lb_wl_input){.now_us = t_ok});
    expect(f, LB_WL_RELEASE);
    feed(f, (lb_wl_input){.now_us = t_rel, .rc = DLOCK_OK});
}

/* 100 arrivals/s, uniform: one every 10 ms from 0. An idle client takes an arrival when it is
 * due; arrivals due while it is busy queue (its share of max_outstanding 2 is 2) and are timed
 * from when they were due; the third one due while busy finds the queue full and is dropped. */
static void open_loop_arrivals_queue_and_drop(void **state)
{
    fixture f;
    setup_open(&f, 100, LB_ARRIVAL_UNIFORM, 2, 1);
    begin(&f, 1000000);
    cycle(&f, 2000, 3000);                        /* arrival 0: due 0, called 0 */
    expect_until(&f, LB_WL_THINK, 10000);         /* idle until arrival 1 */
    feed(&f, (lb_wl_input){.now_us = 10050});
    cycle(&f, 45000, 45000);                      /* arrival 1: called 50 µs late, slow */
    expect(&f, LB_WL_ACQUIRE);                    /* arrival 2 (due 20 ms) at once */
    feed(&f, (lb_wl_input){.now_us = 46000, .rc = DLOCK_OK, .attempts = 1, .commands = 1});

    const lb_acquisition *a = record(&f, 1);
    assert_int_equal(a->intended_us, 10000);
    assert_int_equal(a->call_us, 10050);
    a = record(&f, 2);
    assert_int_equal(a->intended_us, 20000);
    assert_int_equal(a->call_us, 45000);
    assert_int_equal(f.out.dropped, 1);           /* 20 and 30 ms queued; 40 ms dropped */
    /* acquire_ms from the intended start: 2, 35 and 26 ms; service from the call: 2, 34.95, 1 */
    assert_int_equal(lb_hist_count(f.meter.acquire_hist), 3);
    assert_int_equal(lb_hist_max(f.meter.acquire_hist), 35000);
    assert_int_equal(lb_hist_max(f.meter.service_hist), 34950);
    assert_int_equal(lb_hist_count(f.meter.lag_hist), 3);
    assert_int_equal(lb_hist_max(f.meter.lag_hist), 25000);
    assert_int_equal(f.out.wait_max_us, 35000);
    teardown(&f);
}

/* With max_outstanding 0 nothing queues: an arrival due while the client is busy is dropped,
 * one that finds it idle is taken. */
static void open_loop_without_a_queue(void **state)
{
    fixture f;
    setup_open(&f, 100, LB_ARRIVAL_UNIFORM, 0, 1);
    begin(&f, 1000000);
    cycle(&f, 25000, 25000);                      /* arrivals at 10 and 20 ms come while busy */
    expect_until(&f, LB_WL_THINK, 30000);
    assert_int_equal(f.out.dropped, 2);
    feed(&f, (lb_wl_input){.now_us = 30000});
    expect(&f, LB_WL_ACQUIRE);
    teardown(&f);
}

/* Poisson arrivals: a client's share of the group's rate (1 000/s over 4 clients: 250/s each),
 * drawn from its own stream; the deadline ends the schedule. Over 20 s of fake time with
 * instant service, the count is within 5 % of 5 000, and two members draw different times. */
static void open_loop_poisson_rate(void **state)
{
    int64_t first[2];
    for (int member = 0; member < 2; member++) {
        fixture f;
        setup_open(&f, 1000, LB_ARRIVAL_POISSON, 100, 4);
        f.g.workload.duration_ms = 20000;
        f.rng = 7 + (uint64_t)member;
        lb_wl_setup st = {.g = &f.g, .member = member, .out = &f.out, .meter = &f.meter,
                          .oracle = f.oracle, .rng = &f.rng, .tally = &f.tally,
                          .deadline_us = 20000000};
        assert_int_equal(lb_wl_init(&f.m, &st), 0);
        f.s = lb_wl_next(&f.m, &(lb_wl_input){.now_us = 0});
        int64_t now = 0, n = 0;
        while (f.s.what != LB_WL_DONE && n < 100000) {
            if (f.s.what == LB_WL_THINK) {
                now = f.s.until_us;
                feed(&f, (lb_wl_input){.now_us = now});
            } else {
                if (n++ == 0)
                    first[member] = now;
                cycle(&f, now, now);
            }
        }
        assert_true(n > 4750 && n < 5250);
        assert_int_equal(f.out.dropped, 0);
        assert_int_equal(lb_hist_max(f.meter.lag_hist), 0);  /* never late: never busy */
        teardown(&f);
    }
    assert_true(first[0] != first[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_counter_iteration_in_order),
        cmocka_unit_test(a_fenced_write_carries_the_token),
        cmocka_unit_test(a_refused_fenced_read_ends_the_critical_section),
        cmocka_unit_test(a_crash_while_holding_ends_the_hold),
        cmocka_unit_test(the_store_counts_the_clients_inside),
        cmocka_unit_test(a_crash_while_waiting_is_canceled),
        cmocka_unit_test(an_error_pauses_the_backoff_cap),
        cmocka_unit_test(start_and_deadline),
        cmocka_unit_test(a_kept_lock_is_not_released),
        cmocka_unit_test(release_outcomes_are_recorded),
        cmocka_unit_test(open_loop_arrivals_queue_and_drop),
        cmocka_unit_test(open_loop_without_a_queue),
        cmocka_unit_test(open_loop_poisson_rate),
    };
    return cmocka_run_group_tests_name("workload", tests, NULL, NULL);
}
