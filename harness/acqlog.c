/* acqlog.c -- the acquisition log of runner.h, its cursor, meters, and the merge of many logs.
 *
 * A driver thread appends one record per acquire call of any of its clients, in the order the
 * calls begin; the client keeps the record of its call in progress and puts it back as the call
 * and the hold go on. A run may last long and hold millions of acquisitions, so the log keeps
 * at most max_buf records in memory: when the buffer is full at an append, its older half goes
 * to the log's file -- one write per max_buf/2 acquisitions, to an unlinked temporary file that
 * vanishes with the process. With max_buf at least twice the clients sharing the log, those
 * records are nearly all complete; a call still in progress in them is rewritten in the file
 * when its client puts it back. A log that cannot get a file keeps its records in memory.
 *
 * Readers never need a record by index: metrics and results walk each log in order (a cursor),
 * or all of them merged, which a heap of one cursor per log gives without sorting the run's
 * records in memory. */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LB__ACQ_FIRST 16   /* records in a new log's buffer; it doubles up to max_buf */

static int lb__acq_open_file(lb_acq_log *log)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lockbench-acq-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);  /* not inherited by redis-server or gnuplot */
    if (fd < 0)
        return -1;
    unlink(path);
    log->fd = fd;
    log->has_file = true;
    return 0;
}

static int lb__acq_pwrite(int fd, const void *buf, size_t len, off_t at)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t k = pwrite(fd, p, len, at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        at += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Writes the older half of the buffer out; -1 when it could not (it then stays in memory). */
static int lb__acq_spill(lb_acq_log *log)
{
    if (!log->has_file && lb__acq_open_file(log) < 0)
        return -1;
    size_t half = log->nbuf / 2;
    if (lb__acq_pwrite(log->fd, log->buf, half * sizeof log->buf[0],
                       (off_t)(log->spilled * sizeof log->buf[0])) < 0)
        return -1;  /* what was written is overwritten by the next try */
    memmove(log->buf, log->buf + half, (log->nbuf - half) * sizeof log->buf[0]);
    log->spilled += half;
    log->nbuf -= half;
    return 0;
}

static size_t lb__acq_max(const lb_acq_log *log)
{
    return log->max_buf ? log->max_buf : LB_ACQ_LOG_BUF;
}

/* Doubles the buffer, up to max_buf while the file takes the rest, past it when it cannot. */
static int lb__acq_grow(lb_acq_log *log)
{
    size_t max = lb__acq_max(log);
    size_t cap = log->cap ? 2 * log->cap : LB__ACQ_FIRST;
    if (log->cap < max && cap > max)
        cap = max;
    lb_acquisition *b = realloc(log->buf, cap * sizeof *b);
    if (!b)
        return -1;
    log->buf = b;
    log->cap = cap;
    return 0;
}

void lb_acq_log_init(lb_acq_log *log, size_t max_buf)
{
    *log = (lb_acq_log){.max_buf = max_buf < LB_ACQ_LOG_BUF ? LB_ACQ_LOG_BUF : max_buf};
}

lb_acquisition *lb_acq_log_append(lb_acq_log *log)
{
    if (log->nbuf == log->cap) {
        bool room = log->cap >= lb__acq_max(log) && lb__acq_spill(log) == 0;
        if (!room && lb__acq_grow(log) < 0)
            return NULL;
    }
    lb_acquisition *a = &log->buf[log->nbuf++];
    *a = (lb_acquisition){.intended_us = -1, .left_us = -1, .released_us = -1};
    log->count++;
    return a;
}

void lb_acq_log_put(lb_acq_log *log, size_t seq, const lb_acquisition *a)
{
    if (seq >= log->count)
        return;
    if (seq >= log->spilled) {
        log->buf[seq - log->spilled] = *a;
        return;
    }
    if (lb__acq_pwrite(log->fd, a, sizeof *a, (off_t)(seq * sizeof *a)) < 0)
        log->failed = true;
}

void lb_acq_log_free(lb_acq_log *log)
{
    if (!log)
        return;
    if (log->has_file)
        close(log->fd);
    free(log->buf);
    memset(log, 0, sizeof *log);
}

/* ---- meters ----------------------------------------------------------------------------- */

int lb_meter_init(lb_meter *m, size_t nclients, bool open_loop)
{
    *m = (lb_meter){.acquire_hist = lb_hist_new(), .timeout_hist = lb_hist_new()};
    if (open_loop) {
        m->service_hist = lb_hist_new();
        m->lag_hist = lb_hist_new();
    }
    lb_acq_log_init(&m->log, 2 * nclients);
    if (m->acquire_hist && m->timeout_hist && (!open_loop || (m->service_hist && m->lag_hist)))
        return 0;
    lb_meter_free(m);
    return -1;
}

void lb_meter_free(lb_meter *m)
{
    if (!m)
        return;
    lb_hist_free(m->acquire_hist);
    lb_hist_free(m->timeout_hist);
    lb_hist_free(m->service_hist);
    lb_hist_free(m->lag_hist);
    lb_acq_log_free(&m->log);
    memset(m, 0, sizeof *m);
}

/* ---- reading ---------------------------------------------------------------------------- */

void lb_acq_cursor_init(lb_acq_cursor *c, const lb_acq_log *log)
{
    c->log = log;
    c->next = 0;
    c->blk_first = c->blk_n = 0;
}

const lb_acquisition *lb_acq_cursor_next(lb_acq_cursor *c)
{
    const lb_acq_log *log = c->log;
    if (!log || c->next >= log->count)
        return NULL;
    size_t i = c->next++;
    if (i >= log->spilled)
        return &log->buf[i - log->spilled];
    if (i >= c->blk_first + c->blk_n) {
        size_t want = log->spilled - i;
        if (want > sizeof c->blk / sizeof c->blk[0])
            want = sizeof c->blk / sizeof c->blk[0];
        size_t bytes = want * sizeof c->blk[0];
        ssize_t k;
        do
            k = pread(log->fd, c->blk, bytes, (off_t)(i * sizeof c->blk[0]));
        while (k < 0 && errno == EINTR);
        if (k < (ssize_t)sizeof c->blk[0]) {
            c->next = log->count;  /* the file cannot be read: the log ends here */
            return NULL;
        }
        c->blk_first = i;
        c->blk_n = (size_t)k / sizeof c->blk[0];
    }
    return &c->blk[i - c->blk_first];
}

/* ---- merging ---------------------------------------------------------------------------- */

/* The logs merged by call: a heap of the logs by their next record. By end: records come out of
 * that merge into a second heap, by end, and leave it once no record still to come can end
 * before them -- every record still to come began at or after the next one's call_us, and ends
 * no earlier than it began. */
struct lb_acq_merge {
    lb_acq_order order;
    size_t n;
    lb_acq_cursor *cur;
    const lb_acquisition **head;   /* each log's next record, NULL when done */
    size_t *heap;                  /* logs, by their head */
    size_t nheap;
    size_t taken;                  /* the log whose head was returned last, or SIZE_MAX */
    lb_acquisition *pend;          /* by end: begun, not yet returned; a heap by end */
    size_t npend, cappend;
    lb_acquisition out;            /* by end: the record returned last */
};

static bool lb__by_call(const lb_acquisition *a, const lb_acquisition *b)
{
    return a->call_us != b->call_us ? a->call_us < b->call_us : a->client < b->client;
}

static bool lb__by_end(const lb_acquisition *a, const lb_acquisition *b)
{
    return a->end_us != b->end_us ? a->end_us < b->end_us : a->client < b->client;
}

static void lb__merge_down(lb_acq_merge *m, size_t i)
{
    for (;;) {
        size_t k = 2 * i + 1, best = i;
        if (k < m->nheap && lb__by_call(m->head[m->heap[k]], m->head[m->heap[best]]))
            best = k;
        if (k + 1 < m->nheap && lb__by_call(m->head[m->heap[k + 1]], m->head[m->heap[best]]))
            best = k + 1;
        if (best == i)
            return;
        size_t t = m->heap[i];
        m->heap[i] = m->heap[best];
        m->heap[best] = t;
        i = best;
    }
}

lb_acq_merge *lb_acq_merge_new(const lb_meter *meters, size_t n, lb_acq_order order)
{
    lb_acq_merge *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->order = order;
    m->n = n;
    m->taken = SIZE_MAX;
    m->cur = malloc((n + 1) * sizeof *m->cur);
    m->head = malloc((n + 1) * sizeof *m->head);
    m->heap = malloc((n + 1) * sizeof *m->heap);
    if (!m->cur || !m->head || !m->heap) {
        lb_acq_merge_free(m);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        lb_acq_cursor_init(&m->cur[i], &meters[i].log);
        if ((m->head[i] = lb_acq_cursor_next(&m->cur[i])))
            m->heap[m->nheap++] = i;
    }
    for (size_t i = m->nheap / 2; i-- > 0;)
        lb__merge_down(m, i);
    return m;
}

/* The next record by call; it stays valid until the next call. */
static const lb_acquisition *lb__next_by_call(lb_acq_merge *m)
{
    /* The record returned last lives in its cursor until that cursor moves: move it now. */
    if (m->taken != SIZE_MAX) {
        size_t t = m->taken;
        m->taken = SIZE_MAX;
        if ((m->head[t] = lb_acq_cursor_next(&m->cur[t]))) {
            m->heap[0] = t;
        } else {
            m->heap[0] = m->heap[--m->nheap];
        }
        if (m->nheap > 0)
            lb__merge_down(m, 0);
    }
    if (m->nheap == 0)
        return NULL;
    m->taken = m->heap[0];
    return m->head[m->taken];
}

/* The next record by call without taking it. */
static const lb_acquisition *lb__peek_by_call(lb_acq_merge *m)
{
    const lb_acquisition *a = lb__next_by_call(m);
    if (a)
        m->taken = SIZE_MAX;  /* left where it is: the next call returns it again */
    return a;
}

static void lb__pend_swap(lb_acq_merge *m, size_t i, size_t j)
{
    lb_acquisition t = m->pend[i];
    m->pend[i] = m->pend[j];
    m->pend[j] = t;
}

static int lb__pend_push(lb_acq_merge *m, const lb_acquisition *a)
{
    if (m->npend == m->cappend) {
        size_t cap = m->cappend ? 2 * m->cappend : 64;
        lb_acquisition *p = realloc(m->pend, cap * sizeof *p);
        if (!p)
            return -1;
        m->pend = p;
        m->cappend = cap;
    }
    size_t i = m->npend++;
    m->pend[i] = *a;
    while (i > 0 && lb__by_end(&m->pend[i], &m->pend[(i - 1) / 2])) {
        lb__pend_swap(m, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static void lb__pend_pop(lb_acq_merge *m)
{
    m->out = m->pend[0];
    m->pend[0] = m->pend[--m->npend];
    for (size_t i = 0;;) {
        size_t k = 2 * i + 1, best = i;
        if (k < m->npend && lb__by_end(&m->pend[k], &m->pend[best]))
            best = k;
        if (k + 1 < m->npend && lb__by_end(&m->pend[k + 1], &m->pend[best]))
            best = k + 1;
        if (best == i)
            return;
        lb__pend_swap(m, i, best);
        i = best;
    }
}

static const lb_acquisition *lb__next_by_end(lb_acq_merge *m)
{
    for (;;) {
        const lb_acquisition *next = lb__peek_by_call(m);
        if (m->npend > 0 && (!next || m->pend[0].end_us < next->call_us)) {
            lb__pend_pop(m);
            return &m->out;
        }
        if (!next)
            return NULL;
        next = lb__next_by_call(m);
        if (lb__pend_push(m, next) < 0)
            return NULL;
    }
}

const lb_acquisition *lb_acq_merge_next(lb_acq_merge *m)
{
    return m->order == LB_ACQ_BY_END ? lb__next_by_end(m) : lb__next_by_call(m);
}

void lb_acq_merge_free(lb_acq_merge *m)
{
    if (!m)
        return;
    free(m->cur);
    free(m->head);
    free(m->heap);
    free(m->pend);
    free(m);
}
