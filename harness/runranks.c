/* runranks.c -- the run stage's steps taken with the other ranks (lockbench-mpi, ranks.h): the
 * start barrier every rank's clients pass together, the agreement when they have finished, and
 * every rank's record gathered into rank 0's. In one process (no lb_ranks) each is a no-op.
 * Called on the main thread only, the one that may talk MPI. */
#include <stdio.h>
#include <stdlib.h>

#include "monotonic.h"
#include "runner_priv.h"

bool rn_ranks_start(run *r, bool abort)
{
    lb_ranks *d = r->ranks;
    if (!d)
        return abort;
    if (d->agree(d, abort) != 0) {
        if (!r->err[0])
            snprintf(r->err, sizeof r->err, "the clients of another rank could not start");
        return true;
    }
    r->clock_a = calloc(2 * (size_t)d->nranks, sizeof *r->clock_a);  /* start, then end */
    d->clock(d, r->clock_a);  /* NULL (out of memory): measured all the same, kept nowhere */
    d->barrier(d);
    return false;
}

bool rn_ranks_end(run *r, bool failed)
{
    lb_ranks *d = r->ranks;
    if (!d)
        return failed;
    d->clock(d, r->clock_a ? r->clock_a + d->nranks : NULL);
    if (d->agree(d, failed) != 0) {
        if (!r->err[0])
            snprintf(r->err, sizeof r->err, "a server stopped answering on another rank");
        failed = true;
    }
    return failed;
}

int rn_ranks_gather(run *r, lb_run_result *out)
{
    lb_ranks *d = r->ranks;
    if (!d)
        return 0;
    void *mine = NULL, *all = NULL;
    size_t len = 0, *lens = calloc((size_t)d->nranks, sizeof *lens);
    int bad = !lens || lb_ranks_pack(out, r->t0, &mine, &len) < 0;
    if (bad)  /* an empty record still takes part in the gather; rank 0 then refuses it */
        len = 0;
    if (d->gather(d, mine, len, &all, lens) < 0)
        bad = 1;
    free(mine);
    if (d->rank == 0 && !bad) {
        const lb_clock_sample *a = r->clock_a, *b = r->clock_a ? r->clock_a + d->nranks : NULL;
        char err[sizeof r->err];
        if (!a || !b) {
            snprintf(r->err, sizeof r->err, "rank 0: out of memory");
            bad = 1;
        } else if (lb_ranks_merge(out, r->t0, all, lens, d->nranks, a, b, &d->clock_bound_us,
                                  d->clients_per_rank, err, sizeof err) < 0) {
            snprintf(r->err, sizeof r->err, "%s", err);
            bad = 1;
        } else {
            int64_t cross = lb_ranks_cross_overlaps(out, d->nranks, 2 * d->clock_bound_us);
            out->overlaps += cross > 0 ? cross : 0;
        }
    }
    free(all);
    free(lens);
    if (d->agree(d, bad) != 0) {
        if (!r->err[0])
            snprintf(r->err, sizeof r->err, "the ranks' records could not be gathered");
        return -1;
    }
    return 0;
}
