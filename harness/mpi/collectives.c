/* collectives.c -- ranks.h's collective steps on MPI: agreement, broadcast, gather, barrier and
 * the clock ping-pong, all on MPI_COMM_WORLD from the main thread (MPI_THREAD_FUNNELED). */
#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

#include "monotonic.h"
#include "mpi_ranks.h"

/* Round trips per rank and measurement: the one with the least delay gives the offset. */
#define PINGS 16

static int agree(lb_ranks *d, int code)
{
    int all = code;
    MPI_Allreduce(&code, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

static int bcast(lb_ranks *d, void *buf, size_t len)
{
    if (len > INT_MAX)
        return -1;  /* the same len on every rank: they all refuse alike */
    return MPI_Bcast(buf, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

static void barrier(lb_ranks *d)
{
    MPI_Barrier(MPI_COMM_WORLD);
}

/* Sizes first, so rank 0 can lay the records out and every rank learns whether they fit in
 * MPI's int counts; then the records. */
static int gather(lb_ranks *d, const void *buf, size_t len, void **all, size_t *lens)
{
    uint64_t mine = len, *sizes = d->rank == 0 ? calloc((size_t)d->nranks, sizeof *sizes) : NULL;
    int *counts = NULL, *displs = NULL;
    MPI_Gather(&mine, 1, MPI_UINT64_T, sizes, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    int ok = 1;
    uint64_t total = 0;
    if (d->rank == 0) {
        counts = calloc((size_t)d->nranks, sizeof *counts);
        displs = calloc((size_t)d->nranks, sizeof *displs);
        ok = sizes && counts && displs;
        for (int r = 0; ok && r < d->nranks; r++) {
            ok = sizes[r] <= INT_MAX && total + sizes[r] <= INT_MAX;
            counts[r] = ok ? (int)sizes[r] : 0;
            displs[r] = (int)total;
            total += ok ? sizes[r] : 0;
        }
        *all = ok ? malloc(total + 1) : NULL;
        ok = ok && *all;
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (ok)
        MPI_Gatherv(buf, (int)len, MPI_BYTE, d->rank == 0 ? *all : NULL, counts, displs,
                    MPI_BYTE, 0, MPI_COMM_WORLD);
    for (int r = 0; ok && d->rank == 0 && r < d->nranks; r++)
        lens[r] = sizes[r];
    free(sizes);
    free(counts);
    free(displs);
    return ok ? 0 : -1;
}

/* Rank 0 sends its time, the rank answers with its own; of PINGS round trips the shortest
 * bounds the offset best: the rank read its clock somewhere inside it. */
static void clock_rank(int r, lb_clock_sample *s)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < PINGS; i++) {
        int64_t t1 = dlock__mono_us(), tr = 0;
        MPI_Send(&t1, 1, MPI_INT64_T, r, 0, MPI_COMM_WORLD);
        MPI_Recv(&tr, 1, MPI_INT64_T, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        int64_t t2 = dlock__mono_us();
        if (t2 - t1 < best) {
            best = t2 - t1;
            *s = (lb_clock_sample){.local_us = tr, .offset_us = tr - (t1 + t2) / 2,
                                   .bound_us = (t2 - t1 + 1) / 2};
        }
    }
}

static void clock_sync(lb_ranks *d, lb_clock_sample *samples)
{
    if (d->rank != 0) {
        for (int i = 0; i < PINGS; i++) {
            int64_t t1, tr;
            MPI_Recv(&t1, 1, MPI_INT64_T, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            tr = dlock__mono_us();
            MPI_Send(&tr, 1, MPI_INT64_T, 0, 0, MPI_COMM_WORLD);
        }
        return;
    }
    for (int r = 1; r < d->nranks; r++) {
        lb_clock_sample s = {0};
        clock_rank(r, &s);
        if (samples)
            samples[r] = s;
    }
    if (samples)
        samples[0] = (lb_clock_sample){0};
}

void lb_mpi_ranks_init(lb_ranks *d, int rank, int nranks, const char *const *hosts)
{
    static int64_t *per_rank;
    if (!per_rank)
        per_rank = calloc((size_t)nranks, sizeof *per_rank);  /* NULL: not reported */
    *d = (lb_ranks){.rank = rank, .nranks = nranks, .hosts = hosts, .clock_bound_us = -1,
                    .clients_per_rank = per_rank,
                    .agree = agree, .bcast = bcast, .gather = gather, .barrier = barrier,
                    .clock = clock_sync};
}
