/* oracle.c -- per key, an atomic count of live clients inside the critical section. The count
 * is exact at every instant, unlike intervals compared after the run, whose timestamps come
 * from different threads; and it costs one atomic add on the way in and out. */
#include <stdatomic.h>
#include <stdlib.h>

#include "oracle.h"

struct lb_oracle {
    atomic_llong overlaps;
    size_t nkeys;
    atomic_int inside[];
};

lb_oracle *lb_oracle_new(size_t nkeys)
{
    lb_oracle *o = calloc(1, sizeof *o + nkeys * sizeof o->inside[0]);
    if (o)
        o->nkeys = nkeys;
    return o;
}

void lb_oracle_free(lb_oracle *o)
{
    free(o);
}

bool lb_oracle_enter(lb_oracle *o, size_t key)
{
    if (atomic_fetch_add(&o->inside[key], 1) == 0)
        return false;
    atomic_fetch_add(&o->overlaps, 1);
    return true;
}

void lb_oracle_leave(lb_oracle *o, size_t key)
{
    atomic_fetch_sub(&o->inside[key], 1);
}

int64_t lb_oracle_overlaps(const lb_oracle *o)
{
    return atomic_load(&((lb_oracle *)o)->overlaps);
}
