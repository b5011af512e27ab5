/* workload.c -- one client's workload as a machine (see workload.h).
 *
 * An iteration: the acquire call, recorded; on success the critical section -- counter: GET,
 * the holding point, the hold, SET (with fencing on, the read and the write are both fenced
 * with the lock's token, so the store learns of a newer holder before the older one can write;
 * a read or write the store refuses counts in stale_rejected, and a refused read ends the
 * critical section there, without the hold or the write); incr: the holding point, the hold,
 * INCR; none: the holding point and the hold -- then the release (or, with release false, the
 * lock is kept). Then the think time, at least the error pause after an
 * error, and the next iteration, until the iterations are done, the group's deadline passes or
 * the run is stopped. With workload.inside_check on, the critical section begins with an INCR
 * of the store's count of clients inside (<counter key>:inside; a reply above 1 is an overlap
 * the store saw, counted in store_overlaps, clock-free, whichever process the other client
 * runs in) and ends with its DECR, before the release or keep. A crashed process is inside no
 * more: for a client that crashes counted in, the harness sends the DECR (on the connection its
 * INCR went on, so after it) before the client goes down. A client inside its critical section
 * at the deadline finishes it and releases; a client waiting to start or thinking stops at
 * once. */
#include <math.h>
#include <stdlib.h>

#include "dlock.h"
#include "workload.h"

enum {
    W_TOP = 1,      /* the top of the loop: start, iterations, deadline */
    W_ACQUIRING,
    W_READING,
    W_HOLDING,      /* at the holding point */
    W_HELD,         /* the hold is over */
    W_WRITING,
    W_INCRING,
    W_ENTERING,     /* inside_check: the INCR of the store's count of clients inside */
    W_EXITING,      /* inside_check: its DECR */
    W_UNCOUNTING,   /* inside_check: the DECR for a client that crashed counted in */
    W_RELEASING,
    W_KEPT,
    W_THINKING,
    W_ARRIVING,     /* open loop: idle until the next arrival */
    W_DOWN,         /* crashed */
    W_DONE
};

/* xorshift64*: the workload's randomness, reproducible from the scenario seed */
static double uniform01(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
}

static int64_t sample_us(const lb_dist *d, uint64_t *rng)
{
    switch (d->kind) {
    case LB_DIST_UNIFORM:
        return (int64_t)((d->a + (d->b - d->a) * uniform01(rng)) * 1000.0);
    case LB_DIST_EXPONENTIAL:
        return (int64_t)(-log(1.0 - uniform01(rng)) * (double)d->mean * 1000.0);
    case LB_DIST_FIXED:
    default:
        return d->a * 1000;
    }
}

/* After an error (Redis unreachable, a try-once against a dead server) a client waits the
 * back-off cap, at least 1 ms and at most 1 s, before its next acquire: a dead server must not
 * turn the run into a tight loop that logs errors by the hundred thousand. */
static int64_t error_pause_us(const lb_lock *lk)
{
    int64_t ms = lk->backoff.cap_ms;
    return (ms < 1 ? 1 : ms > 1000 ? 1000 : ms) * 1000;
}

/* ---- the open loop's schedule ------------------------------------------------------------
 * A group's arrivals are dealt to its clients as wrk2 deals its rate to connections: each
 * client takes rate_per_s / count of them, a uniform schedule every count / rate_per_s seconds
 * from a phase of member / rate_per_s (so the group's arrivals fall evenly), a Poisson one with
 * exponential gaps of mean count / rate_per_s drawn from a stream of its own (the merge of
 * independent Poisson streams is Poisson at the group's rate). An arrival that comes while its
 * client is busy waits in the client's queue and is timed from when it was due; one that finds
 * the queue full is dropped. */

/* The client's share of its group's arrivals, rate_per_s / count each, and the ones that came
 * due while it was busy, at most its share of max_outstanding (ceil(max_outstanding / count));
 * an arrival beyond that is dropped. */
struct lb_wl_arrivals {
    int64_t next_us;              /* the schedule's next arrival (INT64_MAX: none) */
    int64_t count;                /* arrivals drawn so far */
    uint64_t rng;                 /* poisson: the gaps' own stream */
    uint32_t qhead, qlen, qcap;
    int64_t queue[];              /* due, not started: a ring of intended starts */
};

static int64_t arrival_at(lb_wl *m, int64_t k, int64_t prev_us)
{
    const lb_arrival *a = &m->w->arrival;
    double per_client_s = (double)m->members / a->rate_per_s;
    if (a->process == LB_ARRIVAL_UNIFORM)
        return m->start_us + (int64_t)(((double)m->member / a->rate_per_s +
                                        (double)k * per_client_s) * 1e6);
    double gap_s = -log(1.0 - uniform01(&m->open->rng)) * per_client_s;
    return (k == 0 ? m->start_us : prev_us) + (int64_t)(gap_s * 1e6);
}

static void next_arrival(lb_wl *m)
{
    m->open->next_us = arrival_at(m, m->open->count, m->open->next_us);
    m->open->count++;
}

int lb_wl_init(lb_wl *m, const lb_wl_setup *st)
{
    const lb_client_group *g = st->g;
    *m = (lb_wl){.w = &g->workload, .out = st->out, .meter = st->meter, .oracle = st->oracle,
                 .tally = st->tally, .rng = st->rng, .key = st->key,
                 .start_us = g->start_ms * 1000, .deadline_us = st->deadline_us,
                 .error_pause_us = error_pause_us(&g->lock), .state = W_TOP,
                 .member = st->member, .members = g->count > 0 ? (int)g->count : 1};
    const lb_arrival *a = &g->workload.arrival;
    if (!a->on)
        return 0;
    uint32_t qcap = (uint32_t)((a->max_outstanding + m->members - 1) / m->members);
    if (!(m->open = malloc(sizeof *m->open + qcap * sizeof m->open->queue[0])))
        return -1;
    *m->open = (struct lb_wl_arrivals){.next_us = INT64_MAX, .qcap = qcap};
    m->open->rng = (*st->rng ^ 0xA0761D6478BD642FULL) * 0x9E3779B97F4A7C15ULL | 1;
    next_arrival(m);
    return 0;
}

void lb_wl_free(lb_wl *m)
{
    free(m->open);
    m->open = NULL;
}

static bool due(const lb_wl *m, int64_t now)
{
    return m->open->next_us <= now && m->open->next_us < m->deadline_us;
}

/* The intended start of the arrival the client takes now, or -1 when none is due. Arrivals
 * due by now that it does not take join its queue, or are dropped when the queue is full. A
 * client that was idle (waiting for the next arrival, its queue empty) takes the first one due
 * at once; a busy one takes the oldest in its queue. */
static int64_t take_arrival(lb_wl *m, int64_t now, bool idle)
{
    struct lb_wl_arrivals *o = m->open;
    int64_t taken = -1;
    if (idle && o->qlen == 0 && due(m, now)) {
        taken = o->next_us;
        next_arrival(m);
    }
    for (; due(m, now); next_arrival(m)) {
        if (o->qlen < o->qcap)
            o->queue[(o->qhead + o->qlen++) % o->qcap] = o->next_us;
        else
            m->out->dropped++;
    }
    if (taken < 0 && o->qlen > 0) {
        taken = o->queue[o->qhead];
        o->qhead = (o->qhead + 1) % o->qcap;
        o->qlen--;
    }
    return taken;
}

lb_result lb_wl_classify(int rc, bool crashed)
{
    switch (rc) {
    case DLOCK_OK: return LB_RES_OK;
    case DLOCK_ETIMEDOUT:
    case DLOCK_EBUSY: return LB_RES_TIMEOUT;
    case DLOCK_ECANCELED: return crashed ? LB_RES_CANCELED : LB_RES_ABANDONED;
    default: return LB_RES_ERROR;
    }
}

static lb_wl_step go(lb_wl *m, int state, lb_wl_do what)
{
    m->state = state;
    return (lb_wl_step){.what = what};
}

static lb_wl_step go_until(lb_wl *m, int state, lb_wl_do what, int64_t until_us)
{
    m->state = state;
    return (lb_wl_step){.what = what, .until_us = until_us};
}

static void record_acquire(lb_wl *m, const lb_wl_input *in)
{
    lb_acquisition *a = m->a;
    lb_client_result *o = m->out;
    a->end_us = in->now_us;
    a->attempts = in->attempts;
    a->commands = in->commands;
    a->result = (uint8_t)lb_wl_classify(in->rc, in->crashed);
    /* open loop: the wait runs from when the arrival was due, the service from the call */
    int64_t from = a->intended_us >= 0 ? a->intended_us : a->call_us;
    int64_t wait = a->end_us - from;
    if ((a->result == LB_RES_OK || a->result == LB_RES_TIMEOUT) && wait > o->wait_max_us)
        o->wait_max_us = wait;
    if (a->intended_us >= 0)
        lb_hist_record(m->meter->lag_hist, a->call_us - a->intended_us);
    switch (a->result) {
    case LB_RES_OK:
        o->acquisitions++;
        o->wait_sum_us += wait;
        lb_hist_record(m->meter->acquire_hist, wait);
        if (a->intended_us >= 0)
            lb_hist_record(m->meter->service_hist, a->end_us - a->call_us);
        if (m->tally)
            atomic_fetch_add_explicit(&m->tally->acquired, 1, memory_order_relaxed);
        break;
    case LB_RES_TIMEOUT:
        o->timeouts++;
        lb_hist_record(m->meter->timeout_hist, wait);
        if (m->tally)
            atomic_fetch_add_explicit(&m->tally->timeouts, 1, memory_order_relaxed);
        break;
    case LB_RES_ERROR:
        o->errors++;
        m->error = true;
        if (m->tally)
            atomic_fetch_add_explicit(&m->tally->errors, 1, memory_order_relaxed);
        break;
    }
}

/* The iteration's record is complete: it goes back to the log for the last time. */
static void close_record(lb_wl *m)
{
    if (m->a)
        lb_acq_log_put(&m->meter->log, m->seq, m->a);
    m->a = NULL;
}

/* Leaves the critical section; crashed clients leave too, for the oracle: they are not live. */
static void leave(lb_wl *m, int64_t now_us)
{
    if (!m->inside)
        return;
    lb_oracle_leave(m->oracle, (size_t)m->key);
    m->inside = false;
    m->a->left_us = now_us;
}

/* A crash ends what the client was doing: a hold ends there, never released. Counted in the
 * store's clients inside, it is taken out first: the count is of critical sections running, and
 * a later holder must not see one that stopped with its process (the harness does it: the
 * client itself never would). */
static lb_wl_step crashed(lb_wl *m, const lb_wl_input *in)
{
    if (m->inside) {
        leave(m, in->now_us);
        m->a->end = LB_END_CRASHED;
        m->a->released_us = m->a->left_us;
    }
    close_record(m);
    if (m->store_inside) {
        m->store_inside = false;
        return go(m, W_UNCOUNTING, LB_WL_EXIT);
    }
    return go(m, W_DOWN, LB_WL_CRASHED);
}

/* The top of the loop: start a new iteration, wait for the start, or end. */
static lb_wl_step iteration_over(lb_wl *m, const lb_wl_input *in);

static lb_wl_step top(lb_wl *m, const lb_wl_input *in)
{
    const lb_workload *w = m->w;
    int64_t now = in->now_us;
    if (w->iterations != 0 && m->done >= w->iterations)
        return go(m, W_DONE, LB_WL_DONE);
    if (in->stop || now >= m->deadline_us)
        return go(m, W_DONE, LB_WL_DONE);
    bool open = w->arrival.on;
    if (now < m->start_us)  /* a deadline before the start ends the wait there */
        return go_until(m, open ? W_ARRIVING : W_THINKING, LB_WL_THINK,
                        m->start_us < m->deadline_us ? m->start_us : m->deadline_us);
    int64_t intended = -1;
    if (open) {
        bool idle = m->state == W_ARRIVING || (m->state == W_TOP && m->done == 0);
        if ((intended = take_arrival(m, now, idle)) < 0)
            return go_until(m, W_ARRIVING, LB_WL_THINK,
                            m->open->next_us < m->deadline_us ? m->open->next_us
                                                              : m->deadline_us);
    }
    m->done++;
    m->error = false;
    m->rec = (lb_acquisition){.key = m->key, .client = m->out->client, .left_us = -1,
                              .released_us = -1, .intended_us = intended, .call_us = now};
    lb_acquisition *slot = lb_acq_log_append(&m->meter->log);
    if (!slot) {  /* out of memory: the acquisition goes unrecorded, the run goes on */
        m->error = true;
        return iteration_over(m, in);  /* the error pause comes first: no tight loop */
    }
    *slot = m->rec;
    m->seq = m->meter->log.count - 1;
    m->a = &m->rec;
    return go(m, W_ACQUIRING, LB_WL_ACQUIRE);
}

static lb_wl_step in_critical_section(lb_wl *m);

/* A crash right after the grant still counts as entering: the client crashes inside. */
static lb_wl_step acquired(lb_wl *m, const lb_wl_input *in)
{
    record_acquire(m, in);
    if (in->rc != DLOCK_OK)
        return in->crashed ? crashed(m, in) : iteration_over(m, in);
    m->a->fence = in->fence;
    m->fence = in->fence;
    m->a->overlap = lb_oracle_enter(m->oracle, (size_t)m->key);
    m->inside = true;
    m->out->cs_attempted++;
    if (in->crashed)
        return crashed(m, in);
    if (m->w->inside_check)
        return go(m, W_ENTERING, LB_WL_ENTER);
    return in_critical_section(m);
}

/* The critical section's first step of its own: the counter's read, or the holding point. */
static lb_wl_step in_critical_section(lb_wl *m)
{
    if (m->w->critical_section == LB_CS_COUNTER) {
        m->state = W_READING;
        return (lb_wl_step){.what = LB_WL_READ, .fence = m->fence};
    }
    return go(m, W_HOLDING, LB_WL_HOLDING);
}

/* The hold's length is drawn at the holding point; a hold of zero is no step at all. */
static lb_wl_step hold(lb_wl *m, const lb_wl_input *in)
{
    int64_t us = sample_us(&m->w->hold_ms, m->rng);
    if (us <= 0)
        return go(m, W_HELD, 0);
    return go_until(m, W_HELD, LB_WL_HOLD, in->now_us + us);
}

/* The hold is over: the write, or straight to the end of the critical section. */
static lb_wl_step held(lb_wl *m, const lb_wl_input *in)
{
    switch (m->w->critical_section) {
    case LB_CS_COUNTER:
        if (m->counter_read) {
            m->state = W_WRITING;
            return (lb_wl_step){.what = LB_WL_WRITE, .value = m->counter + 1, .fence = m->fence};
        }
        break;
    case LB_CS_INCR:
        return go(m, W_INCRING, LB_WL_INCR);
    case LB_CS_NONE:
    default:
        break;
    }
    return (lb_wl_step){.what = 0};  /* no write: the critical section ends here */
}

/* Out of the critical section: release, or keep the lock (release: false). */
static lb_wl_step end_hold(lb_wl *m, const lb_wl_input *in)
{
    if (m->store_inside) {   /* the store's count first, still holding the lock */
        m->store_inside = false;
        return go(m, W_EXITING, LB_WL_EXIT);
    }
    leave(m, in->now_us);
    if (m->w->release)
        return go(m, W_RELEASING, LB_WL_RELEASE);
    m->a->end = LB_END_KEPT;
    m->a->released_us = in->now_us;
    return go(m, W_KEPT, LB_WL_KEEP);
}

/* The iteration is over: the think time (at least the error pause after an error), no later
 * than the deadline; none after the last iteration. */
static lb_wl_step iteration_over(lb_wl *m, const lb_wl_input *in)
{
    const lb_workload *w = m->w;
    close_record(m);
    bool last = w->iterations != 0 && m->done >= w->iterations;
    int64_t pause = sample_us(&w->think_ms, m->rng);
    if (m->error && pause < m->error_pause_us)
        pause = m->error_pause_us;
    if (pause <= 0 || last || in->stop || in->now_us >= m->deadline_us)
        return top(m, in);  /* which ends the client when it is out of time */
    int64_t until = in->now_us + pause;
    return go_until(m, W_THINKING, LB_WL_THINK, until < m->deadline_us ? until : m->deadline_us);
}

/* A step's outcome. What the client did before a crash counts (the acquire's result, a write
 * Redis acknowledged, a release that returned); then the crash ends the iteration. */
static lb_wl_step outcome(lb_wl *m, const lb_wl_input *in)
{
    switch (m->state) {
    case W_ACQUIRING:
        return acquired(m, in);
    case W_WRITING:
        m->out->cs_acked += in->rc == DLOCK_OK;
        m->out->stale_rejected += in->rc == DLOCK_ESTALE;
        break;
    case W_INCRING:
        m->out->cs_acked += in->ok;
        break;
    case W_ENTERING:   /* an INCR that did not answer may have counted: a DECR follows all the same */
        m->store_inside = true;
        m->out->store_overlaps += in->ok && in->value > 1;
        break;
    case W_RELEASING:
        m->a->released_us = in->now_us;
        m->a->end = in->rc == DLOCK_OK         ? LB_END_RELEASED
                    : in->rc == DLOCK_ENOTOWNER ? LB_END_NOTOWNER
                                                : LB_END_FAILED;
        break;
    case W_READING:
        m->counter_read = in->ok && in->rc == DLOCK_OK;
        m->counter = m->counter_read ? in->value : 0;
        m->out->stale_rejected += in->rc == DLOCK_ESTALE;
        break;
    default:
        break;
    }
    if (in->crashed && m->state != W_DONE)
        return crashed(m, in);
    switch (m->state) {
    case W_TOP:
    case W_THINKING:
    case W_ARRIVING:
        return top(m, in);
    case W_READING:
        if (in->rc == DLOCK_ESTALE)  /* the store refused this holder: nothing to hold for */
            return end_hold(m, in);
        return go(m, W_HOLDING, LB_WL_HOLDING);
    case W_HOLDING:
        return hold(m, in);
    case W_HELD: {
        lb_wl_step s = held(m, in);
        return s.what != 0 ? s : end_hold(m, in);
    }
    case W_ENTERING:
        return in_critical_section(m);
    case W_WRITING:
    case W_INCRING:
    case W_EXITING:
        return end_hold(m, in);
    case W_RELEASING:
    case W_KEPT:
        return iteration_over(m, in);
    case W_UNCOUNTING:
    case W_DOWN:
        return go(m, W_DOWN, LB_WL_CRASHED);
    case W_DONE:
    default:
        return go(m, W_DONE, LB_WL_DONE);
    }
}

lb_wl_step lb_wl_next(lb_wl *m, const lb_wl_input *in)
{
    lb_wl_step s = outcome(m, in);
    while (s.what == 0)  /* a hold of zero goes straight on */
        s = outcome(m, in);
    if (m->a)  /* the call or hold in progress, as far as it got */
        lb_acq_log_put(&m->meter->log, m->seq, m->a);
    return s;
}

lb_wl_step lb_wl_restart(lb_wl *m, const lb_wl_input *in)
{
    m->state = W_TOP;
    return lb_wl_next(m, in);
}
