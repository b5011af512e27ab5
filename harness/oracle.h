/* oracle.h -- the correctness oracle: which live clients are inside the critical section of
 * each key, right now. An entry while another live client is inside on the same key is an
 * overlap: mutual exclusion failed. A client that crashes inside leaves (crashed clients are
 * not live); a paused one stays inside, which is how a pause longer than the lease shows. */
#ifndef LB_ORACLE_H
#define LB_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lb_oracle lb_oracle;

lb_oracle *lb_oracle_new(size_t nkeys);       /* NULL when out of memory */
void       lb_oracle_free(lb_oracle *o);      /* accepts NULL */
/* Thread-safe and lock-free: one atomic add. true when the entry overlaps. */
bool       lb_oracle_enter(lb_oracle *o, size_t key);
void       lb_oracle_leave(lb_oracle *o, size_t key);
int64_t    lb_oracle_overlaps(const lb_oracle *o);

#endif
