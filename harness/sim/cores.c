/* cores.c -- the modelled machine's cores (cores.h). */
#include "sim/cores.h"

#include <stdlib.h>

struct sim_cores {
    int n;
    int64_t free_at[];            /* when each core's last booking ends */
};

sim_cores *sim_cores_new(int n)
{
    if (n < 1)
        return NULL;
    sim_cores *p = calloc(1, sizeof *p + (size_t)n * sizeof p->free_at[0]);
    if (p)
        p->n = n;
    return p;
}

void sim_cores_free(sim_cores *p)
{
    free(p);
}

static int choose(const sim_cores *p, int64_t ready_us)
{
    int idle = -1, first = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->free_at[i] <= ready_us && (idle < 0 || p->free_at[i] > p->free_at[idle]))
            idle = i;
        if (p->free_at[i] < p->free_at[first])
            first = i;
    }
    return idle >= 0 ? idle : first;
}

int64_t sim_cores_start(const sim_cores *p, int64_t ready_us)
{
    int64_t f = p->free_at[choose(p, ready_us)];
    return f > ready_us ? f : ready_us;
}

int64_t sim_cores_book(sim_cores *p, int64_t ready_us, int64_t cost_us)
{
    int i = choose(p, ready_us);
    int64_t start = p->free_at[i] > ready_us ? p->free_at[i] : ready_us;
    return p->free_at[i] = start + cost_us;
}
