/* cores.h -- the cores of the modelled machine (sim.cores), shared by the clients' threads and
 * the modelled servers, so that a run whose threads want more CPU than the machine has flattens
 * as a real one does on the same machine.
 *
 * Work is booked when it is ready and never pre-empted. A piece ready at r goes to a core free by
 * r -- of those, the one that came free last, so the earlier gaps stay for others -- or, when
 * none is, to the core that comes free first, and holds it for its cost. The pieces are small
 * (one batch's commands of a client, one iteration of a server's event loop), so this is close
 * on average to what a time-sharing scheduler gives them. Bookings are made in the order of the
 * simulation's events, which makes them deterministic. */
#ifndef LB_SIM_CORES_H
#define LB_SIM_CORES_H

#include <stdint.h>

typedef struct sim_cores sim_cores;

sim_cores *sim_cores_new(int n);        /* n >= 1 idle cores; NULL when out of memory */
void       sim_cores_free(sim_cores *p);  /* accepts NULL */

/* When work ready at ready_us can start. */
int64_t    sim_cores_start(const sim_cores *p, int64_t ready_us);
/* Books cost_us (>= 1) of work ready at ready_us on the core sim_cores_start chose: it starts
 * then and ends at the time returned. */
int64_t    sim_cores_book(sim_cores *p, int64_t ready_us, int64_t cost_us);

#endif
