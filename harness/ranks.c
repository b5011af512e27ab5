/* ranks.c -- a rank's part of a run packed for rank 0, and merged there (ranks.h).
 *
 * The pack is the raw record in this build's own layout (the MPI program has checked that every
 * rank runs the same binary): a header, the clients, the faults, then per meter its histograms
 * (lb_hist_raw) and its acquisition log, read out with a cursor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranks.h"

static lb_ranks *current;

lb_ranks *lb_ranks_get(void)
{
    return current;
}

void lb_ranks_set(lb_ranks *d)
{
    current = d;
}

bool lb_ranks_leader(void)
{
    return !current || current->rank == 0;
}

/* ---- packing ------------------------------------------------------------------------------ */

#define PACK_MAGIC 0x6c624450u  /* "PDbl" */
#define NHIST 4

typedef struct pack_head {
    uint32_t magic;
    uint32_t nmeters;
    int64_t  t0_us;
    uint64_t nclients, nfaults;
    int64_t  overlaps, elapsed_us;
    uint8_t  complete, open_loop, pad[6];
} pack_head;

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
    bool failed;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

/* A meter's histogram i, in the order a pack carries them (NULL ones are sent as absent). */
static lb_hist **meter_hist(lb_meter *m, int i)
{
    return i == 0 ? &m->acquire_hist : i == 1 ? &m->timeout_hist
           : i == 2 ? &m->service_hist : &m->lag_hist;
}

static void pack_meter(buf *b, lb_meter *m)
{
    for (int i = 0; i < NHIST; i++) {
        const lb_hist *h = *meter_hist(m, i);
        uint8_t has = h != NULL;
        put(b, &has, 1);
        if (has)
            put(b, lb_hist_raw(h), lb_hist_bytes());
    }
    uint64_t n = m->log.count;
    put(b, &n, sizeof n);
    lb_acq_cursor c;
    lb_acq_cursor_init(&c, &m->log);
    for (const lb_acquisition *a; (a = lb_acq_cursor_next(&c));)
        put(b, a, sizeof *a);
}

int lb_ranks_pack(const lb_run_result *r, int64_t t0_us, void **out, size_t *len)
{
    buf b = {0};
    pack_head h = {.magic = PACK_MAGIC, .nmeters = (uint32_t)r->nmeters, .t0_us = t0_us,
                   .nclients = r->nclients, .nfaults = r->nfaults, .overlaps = r->overlaps,
                   .elapsed_us = r->elapsed_us, .complete = r->complete,
                   .open_loop = r->open_loop};
    put(&b, &h, sizeof h);
    put(&b, r->clients, r->nclients * sizeof *r->clients);
    put(&b, r->faults, r->nfaults * sizeof *r->faults);
    for (size_t i = 0; i < r->nmeters; i++)
        pack_meter(&b, &r->meters[i]);
    if (b.failed) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- merging ------------------------------------------------------------------------------ */

typedef struct reader {
    const unsigned char *p;
    size_t len, at;
} reader;

static const void *take(reader *rd, size_t n)
{
    if (rd->len - rd->at < n)
        return NULL;
    const void *p = rd->p + rd->at;
    rd->at += n;
    return p;
}

/* Where a rank's times go on rank 0's clock: its start barrier and clock samples. */
typedef struct shift {
    int64_t t0_us, t0_rank0_us;
    lb_clock_sample a, b;
} shift;

/* A rank's time (µs since its own start barrier) as µs since rank 0's; -1 (no time) stays. */
static int64_t moved(const shift *s, int64_t us)
{
    if (us < 0)
        return us;
    int64_t at = s->t0_us + us;
    double off = (double)s->a.offset_us;
    if (s->b.local_us != s->a.local_us)
        off += (double)(s->b.offset_us - s->a.offset_us) * (double)(at - s->a.local_us) /
               (double)(s->b.local_us - s->a.local_us);
    int64_t v = at - (int64_t)off - s->t0_rank0_us;
    return v < 0 ? 0 : v;
}

static void move_acquisition(const shift *s, lb_acquisition *a)
{
    a->intended_us = moved(s, a->intended_us);
    a->call_us = moved(s, a->call_us);
    a->end_us = moved(s, a->end_us);
    a->left_us = moved(s, a->left_us);
    a->released_us = moved(s, a->released_us);
}

static int merge_meter(lb_run_result *r, reader *rd, const shift *s)
{
    lb_meter *m = &r->meters[r->nmeters];
    *m = (lb_meter){0};
    lb_acq_log_init(&m->log, 0);
    r->nmeters++;  /* counted now, so lb_run_result_free frees a part-made one */
    for (int i = 0; i < NHIST; i++) {
        const uint8_t *has = take(rd, 1);
        if (!has)
            return -1;
        if (!*has)
            continue;
        const void *raw = take(rd, lb_hist_bytes());
        lb_hist **h = meter_hist(m, i);  /* the meter owns it at once: freed with the result */
        if (!raw || !(*h = lb_hist_new()) || lb_hist_load(*h, raw, lb_hist_bytes()) < 0)
            return -1;
    }
    const uint64_t *n = take(rd, sizeof *n);
    for (uint64_t k = 0; n && k < *n; k++) {
        const lb_acquisition *src = take(rd, sizeof *src);
        lb_acquisition *a = src ? lb_acq_log_append(&m->log) : NULL;
        if (!a)
            return -1;
        *a = *src;
        move_acquisition(s, a);
    }
    return n ? 0 : -1;
}

/* A fault as some rank applied it: the earliest start, the latest end. A client event is
 * applied by every rank (to its own clients); a server event only by rank 0; a "when":
 * "holding" one by the rank whose client it fired on. */
static void merge_fault(lb_fault_record *mine, const lb_fault_record *f, const shift *s)
{
    if (!f->applied)
        return;
    int64_t start = moved(s, f->start_us), end = moved(s, f->end_us);
    if (!mine->applied) {
        *mine = *f;
        mine->start_us = start;
        mine->end_us = end;
        return;
    }
    if (start < mine->start_us)
        mine->start_us = start;
    if (mine->end_us >= 0 && end > mine->end_us)
        mine->end_us = end;
}

static int cmp_client(const void *x, const void *y)
{
    const lb_client_result *a = x, *b = y;
    return (a->client > b->client) - (a->client < b->client);
}

/* One rank's pack into r. */
static int merge_one(lb_run_result *r, reader *rd, const shift *s, size_t *nclients)
{
    const pack_head *h = take(rd, sizeof *h);
    if (!h || h->magic != PACK_MAGIC || h->nfaults != r->nfaults)
        return -1;
    shift sh = *s;
    sh.t0_us = h->t0_us;
    const lb_client_result *cl = take(rd, h->nclients * sizeof *cl);
    const lb_fault_record *fs = take(rd, h->nfaults * sizeof *fs);
    if (!cl || (h->nfaults && !fs))
        return -1;
    for (uint64_t i = 0; i < h->nclients; i++) {
        lb_client_result *c = &r->clients[(*nclients)++];
        *c = cl[i];
        c->end_us = moved(&sh, c->end_us);
        if (c->end_us > r->elapsed_us)
            r->elapsed_us = c->end_us;
    }
    for (uint64_t i = 0; i < h->nfaults; i++)
        merge_fault(&r->faults[i], &fs[i], &sh);
    r->overlaps += h->overlaps;
    r->complete = r->complete && h->complete;
    r->open_loop = r->open_loop || h->open_loop;
    for (uint32_t i = 0; i < h->nmeters; i++)
        if (merge_meter(r, rd, &sh) < 0)
            return -1;
    return 0;
}

/* The clients and meters every pack brings: room for them in r first. */
static int make_room(lb_run_result *r, const void *all, const size_t *lens, int nranks)
{
    size_t off = 0, nclients = r->nclients, nmeters = r->nmeters;
    for (int k = 0; k < nranks; off += lens[k], k++) {
        if (k == 0)
            continue;
        if (lens[k] < sizeof(pack_head))
            return -1;
        pack_head h;
        memcpy(&h, (const unsigned char *)all + off, sizeof h);
        nclients += h.nclients;
        nmeters += h.nmeters;
    }
    lb_client_result *c = realloc(r->clients, (nclients + 1) * sizeof *c);
    if (c)
        r->clients = c;
    lb_meter *m = realloc(r->meters, (nmeters + 1) * sizeof *m);
    if (m)
        r->meters = m;
    return c && m ? 0 : -1;
}

/* Faults recounted from the merged records: a client event counts once however many ranks
 * applied it. */
static void count_faults(lb_run_result *r)
{
    r->faults_applied = 0;
    for (size_t i = 0; i < r->nfaults; i++)
        r->faults_applied += r->faults[i].applied;
}

int lb_ranks_merge(lb_run_result *r, int64_t t0_us, const void *all, const size_t *lens, int nranks,
                   const lb_clock_sample *a, const lb_clock_sample *b, int64_t *bound_us,
                   int64_t *per_rank, char *err, size_t errlen)
{
    size_t off = lens[0];
    if (make_room(r, all, lens, nranks) < 0) {
        snprintf(err, errlen, "rank 0: cannot take the other ranks' records: out of memory or "
                              "a short record");
        return -1;
    }
    size_t have = r->nclients;
    if (*bound_us < 0)  /* measured now: rank 0 against itself is exact */
        *bound_us = 0;
    if (per_rank)
        per_rank[0] = (int64_t)r->nclients;
    for (int k = 1; k < nranks; off += lens[k], k++) {
        size_t before = have;
        shift s = {.t0_rank0_us = t0_us, .a = a[k], .b = b[k]};
        reader rd = {.p = (const unsigned char *)all + off, .len = lens[k]};
        if (merge_one(r, &rd, &s, &have) < 0) {
            snprintf(err, errlen, "rank %d's record of the run is malformed", k);
            r->nclients = have;
            return -1;
        }
        if (per_rank)
            per_rank[k] = (int64_t)(have - before);
        int64_t bound = a[k].bound_us > b[k].bound_us ? a[k].bound_us : b[k].bound_us;
        if (bound > *bound_us)
            *bound_us = bound;
    }
    r->nclients = have;
    qsort(r->clients, r->nclients, sizeof *r->clients, cmp_client);
    count_faults(r);
    return 0;
}

/* ---- overlaps across ranks ---------------------------------------------------------------- */

int64_t lb_ranks_cross_overlaps(const lb_run_result *r, int nranks, int64_t margin_us)
{
    size_t nkeys = r->nkeys > 0 ? (size_t)r->nkeys : 1;
    /* per key and rank: the latest exit from the critical section of the entries seen so far */
    int64_t *left = malloc(nkeys * (size_t)nranks * sizeof *left);
    lb_acq_merge *m = left ? lb_acq_merge_new(r->meters, r->nmeters, LB_ACQ_BY_END) : NULL;
    if (!m) {
        free(left);
        return -1;
    }
    for (size_t i = 0; i < nkeys * (size_t)nranks; i++)
        left[i] = -1;
    int64_t n = 0;
    for (const lb_acquisition *a; (a = lb_acq_merge_next(m));) {
        if (a->result != LB_RES_OK || a->key < 0 || (size_t)a->key >= nkeys || a->left_us < 0)
            continue;
        int rank = a->client % nranks;
        int64_t *k = left + (size_t)a->key * (size_t)nranks;
        bool inside = false;
        for (int q = 0; q < nranks; q++)
            inside |= q != rank && k[q] > a->end_us + margin_us;
        n += inside && !a->overlap;
        if (a->left_us > k[rank])
            k[rank] = a->left_us;
    }
    lb_acq_merge_free(m);
    free(left);
    return n;
}
