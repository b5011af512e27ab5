/* acqlog.c -- the per-client acquisition log of runner.h: append-only, never moves a record.
 *
 * A client thread appends one record per acquire call and fills it in as the call and the hold
 * progress, so a record's address must stay valid while later ones are appended: the log is a
 * list of chunks rather than one realloc'd array. Chunk k holds LB__ACQ_FIRST << k records, so a
 * client that acquires a few times costs a few KiB (a run may have 10 000 clients), one that
 * acquires millions of times allocates only every doubling, and lb_acq_log_at walks O(log n)
 * chunks instead of O(n). A zeroed lb_acq_log is an empty log; no init function is needed. */
#include "runner.h"

#include <stdlib.h>

#define LB__ACQ_FIRST 64   /* records in the first chunk */

struct lb_acq_chunk {
    lb_acq_chunk  *next;
    size_t         cap;    /* LB__ACQ_FIRST << (index of this chunk) */
    size_t         used;
    lb_acquisition rec[];
};

static lb_acq_chunk *lb__acq_chunk_new(size_t cap)
{
    lb_acq_chunk *c = malloc(sizeof *c + cap * sizeof c->rec[0]);
    if (c) {
        c->next = NULL;
        c->cap = cap;
        c->used = 0;
    }
    return c;
}

/* Returns a zeroed record at the end of the log; its fields are the caller's to fill. */
lb_acquisition *lb_acq_log_append(lb_acq_log *log)
{
    lb_acq_chunk *t = log->tail;
    if (!t || t->used == t->cap) {
        lb_acq_chunk *c = lb__acq_chunk_new(t ? 2 * t->cap : LB__ACQ_FIRST);
        if (!c)
            return NULL;
        if (t)
            t->next = c;
        else
            log->head = c;
        log->tail = t = c;
    }
    lb_acquisition *a = &t->rec[t->used++];
    *a = (lb_acquisition){.left_us = -1, .released_us = -1};
    log->count++;
    return a;
}

/* Record i (0-based, append order), or NULL past the end. Chunks double, so chunk k starts at
 * record FIRST * (2^k - 1) and skipping whole chunks takes at most log2(count) steps. */
const lb_acquisition *lb_acq_log_at(const lb_acq_log *log, size_t i)
{
    if (!log || i >= log->count)
        return NULL;
    for (const lb_acq_chunk *c = log->head; c; c = c->next) {
        if (i < c->used)
            return &c->rec[i];
        i -= c->used;
    }
    return NULL;
}

void lb_acq_log_free(lb_acq_log *log)
{
    if (!log)
        return;
    for (lb_acq_chunk *c = log->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    log->head = log->tail = NULL;
    log->count = 0;
}
