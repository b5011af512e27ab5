/* acqlog.c -- the per-client acquisition log of runner.h, its cursor, and the merge of many.
 *
 * A client appends one record per acquire call and fills it in as the call and the hold go on.
 * A run may last long and hold millions of acquisitions, so the log keeps only its newest
 * LB_ACQ_LOG_BUF records in memory: when the buffer is full at an append, every record in it is
 * complete (only the newest is ever being filled in), and the whole buffer goes to the log's
 * file -- one write per LB_ACQ_LOG_BUF acquisitions, an unlinked temporary file that vanishes
 * with the process. A log that cannot get a file keeps its records in memory instead.
 *
 * Readers never need a record by index: metrics and results walk each client's log in order
 * (a cursor), or all of them merged by time, which a heap of one cursor per client gives
 * without sorting the run's records in memory. */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LB__ACQ_FIRST 16   /* records in a new log's buffer; it doubles up to LB_ACQ_LOG_BUF */

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

/* Writes the buffer out; -1 when it could not (it then stays in memory). */
static int lb__acq_spill(lb_acq_log *log)
{
    if (!log->has_file && lb__acq_open_file(log) < 0)
        return -1;
    const char *p = (const char *)log->buf;
    size_t left = log->nbuf * sizeof log->buf[0];
    off_t at = (off_t)(log->spilled * sizeof log->buf[0]);
    while (left > 0) {
        ssize_t k = pwrite(log->fd, p, left, at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;  /* what was written is overwritten by the next try */
        p += k;
        at += k;
        left -= (size_t)k;
    }
    log->spilled += log->nbuf;
    log->nbuf = 0;
    return 0;
}

static int lb__acq_grow(lb_acq_log *log)
{
    size_t cap = log->cap ? 2 * log->cap : LB__ACQ_FIRST;
    lb_acquisition *b = realloc(log->buf, cap * sizeof *b);
    if (!b)
        return -1;
    log->buf = b;
    log->cap = cap;
    return 0;
}

/* Returns a record at the end of the log, left_us and released_us -1, the rest zero. */
lb_acquisition *lb_acq_log_append(lb_acq_log *log)
{
    if (log->nbuf == log->cap) {
        bool room = log->cap >= LB_ACQ_LOG_BUF && lb__acq_spill(log) == 0;
        if (!room && lb__acq_grow(log) < 0)
            return NULL;
    }
    lb_acquisition *a = &log->buf[log->nbuf++];
    *a = (lb_acquisition){.left_us = -1, .released_us = -1};
    log->count++;
    return a;
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

struct lb_acq_merge {
    lb_acq_before before;
    size_t n;
    lb_acq_cursor *cur;
    const lb_acquisition **head;   /* each client's next record, NULL when done */
    size_t *heap;                  /* clients, by their head */
    size_t nheap;
    size_t taken;                  /* the client whose head was returned last, or SIZE_MAX */
};

static bool lb__merge_less(const lb_acq_merge *m, size_t x, size_t y)
{
    return m->before(m->head[x], x, m->head[y], y);
}

static void lb__merge_down(lb_acq_merge *m, size_t i)
{
    for (;;) {
        size_t k = 2 * i + 1, best = i;
        if (k < m->nheap && lb__merge_less(m, m->heap[k], m->heap[best]))
            best = k;
        if (k + 1 < m->nheap && lb__merge_less(m, m->heap[k + 1], m->heap[best]))
            best = k + 1;
        if (best == i)
            return;
        size_t t = m->heap[i];
        m->heap[i] = m->heap[best];
        m->heap[best] = t;
        i = best;
    }
}

lb_acq_merge *lb_acq_merge_new(const struct lb_client_result *clients, size_t n,
                               lb_acq_before before)
{
    lb_acq_merge *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->before = before;
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
        lb_acq_cursor_init(&m->cur[i], &clients[i].log);
        if ((m->head[i] = lb_acq_cursor_next(&m->cur[i])))
            m->heap[m->nheap++] = i;
    }
    for (size_t i = m->nheap / 2; i-- > 0;)
        lb__merge_down(m, i);
    return m;
}

const lb_acquisition *lb_acq_merge_next(lb_acq_merge *m, size_t *client)
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
    *client = m->taken;
    return m->head[m->taken];
}

void lb_acq_merge_free(lb_acq_merge *m)
{
    if (!m)
        return;
    free(m->cur);
    free(m->head);
    free(m->heap);
    free(m);
}
