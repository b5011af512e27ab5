/* ranks.h -- one run spread over several processes (lockbench-mpi): who runs which client, the
 * collective steps the pipeline takes together, and the run's record carried to rank 0.
 *
 * Plain lockbench has no distribution: lb_ranks_get() is NULL and nothing here is called. The
 * MPI program (harness/mpi/) fills an lb_ranks with its collectives and sets it before the run
 * command starts; this file knows nothing of MPI, so the packing and merging are plain C that
 * plain lockbench links too (and its tests could reach).
 *
 * Every rank walks the same pipeline over the same scenario (the MPI program checks that every
 * rank has the same binary, arguments and files first). Rank 0 starts the managed servers and
 * writes the results; every rank runs its share of the clients: client i runs on rank i mod K
 * (so each group's clients are dealt round-robin, the deal going on from one group to the next),
 * keeps its global number, and is the (i div K)-th client of its rank. Each collective is called
 * by every rank in the same order; a step that can fail on one rank is followed by agree(), so
 * every rank leaves together.
 *
 * Clocks: times in a run are microseconds since the rank's own start barrier on its monotonic
 * clock. Rank 0 measures each rank's monotonic clock against its own by ping-pong (the round
 * trip with the least delay of a few) when the clients start and when they have finished, and
 * maps a rank's times onto its own by the offset interpolated between the two; the bound is
 * half the round trip of the worse of the two measurements. */
#ifndef LB_RANKS_H
#define LB_RANKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runner.h"

/* A rank's monotonic clock against rank 0's, measured once: at the rank's time local_us its
 * clock read offset_us more than rank 0's, give or take bound_us. */
typedef struct lb_clock_sample {
    int64_t local_us;
    int64_t offset_us;
    int64_t bound_us;
} lb_clock_sample;

typedef struct lb_ranks lb_ranks;
struct lb_ranks {
    int rank, nranks;
    const char *const *hosts;   /* per rank: the host it runs on */
    int64_t clock_bound_us;     /* rank 0: the largest bound of every run so far; -1 before */
    int64_t *clients_per_rank;  /* rank 0: how many clients each rank ran (the last run's
                                   records), NULL until one is gathered */
    /* The largest of every rank's code: what they all do next. */
    int  (*agree)(lb_ranks *d, int code);
    /* Rank 0's len bytes into everyone's buf. 0, or -1. */
    int  (*bcast)(lb_ranks *d, void *buf, size_t len);
    /* Every rank's bytes to rank 0: there *all holds them one after the other (malloc'd), and
     * lens[r] (nranks of them) says how many are rank r's. 0, or -1. */
    int  (*gather)(lb_ranks *d, const void *buf, size_t len, void **all, size_t *lens);
    void (*barrier)(lb_ranks *d);
    /* Ping-pong with rank 0; on rank 0 fills samples[r] for every rank (its own all zero)
     * unless samples is NULL. */
    void (*clock)(lb_ranks *d, lb_clock_sample *samples);
};

/* The run's distribution, or NULL in one process. */
lb_ranks *lb_ranks_get(void);
void     lb_ranks_set(lb_ranks *d);

/* Whether this process writes results and starts servers: rank 0, or the only process. */
bool lb_ranks_leader(void);

/* Client i's rank and its index among that rank's clients. */
static inline bool lb_ranks_owns(const lb_ranks *d, size_t client)
{
    return !d || (int)(client % (size_t)d->nranks) == d->rank;
}

/* A rank's record of its part of a run, for rank 0: its clients, faults as it applied them,
 * meters (histograms and acquisition logs) and counts, its start barrier in its own clock.
 * *buf is malloc'd. 0, or -1 when out of memory. */
int lb_ranks_pack(const lb_run_result *r, int64_t t0_us, void **buf, size_t *len);

/* Rank 0: every other rank's record merged into its own result r (t0_us its start barrier),
 * and how many clients each rank ran into per_rank (nranks of them; NULL: not wanted):
 * clients in order of their number, faults applied by any rank (earliest start, latest end),
 * their meters appended, overlaps summed, elapsed the latest end; each rank's times moved onto
 * rank 0's clock by its samples at the start (a) and the end (b). The largest bound is added to
 * *bound_us. 0, or -1 with err filled. */
int lb_ranks_merge(lb_run_result *r, int64_t t0_us, const void *all, const size_t *lens, int nranks,
                   const lb_clock_sample *a, const lb_clock_sample *b, int64_t *bound_us,
                   int64_t *per_rank, char *err, size_t errlen);

/* Rank 0, after the merge: entries into a critical section while a client of another rank was
 * still inside on the same key, by the corrected clocks -- what each rank's own oracle cannot
 * see. An entry counts when the other client left more than margin_us after it entered (twice
 * the clock offset bound: closer than that, the clocks cannot tell the order); an entry the
 * oracle already counted is not counted again. -1 when out of memory. */
int64_t lb_ranks_cross_overlaps(const lb_run_result *r, int nranks, int64_t margin_us);

#endif
