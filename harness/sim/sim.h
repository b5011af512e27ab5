/* sim.h -- the third driver: a scenario in virtual time, in one thread, on the same lock
 * machines (dlock_machine.h) and the same workload machine (workload.h) as the real drivers,
 * against modelled Redis servers (redis.h) instead of processes and sockets.
 *
 * Nothing here reads a clock, sleeps or draws from the system: every time is virtual, every
 * draw comes from the scenario's seed, and one event queue orders everything (ties by the order
 * events were made), so a run replays bit for bit. The models, all in virtual µs:
 *   network   each connection delivers in order, one way in rtt_us / 2 plus the group's (or a
 *             delay event's) latency, uniform ± jitter; a partition holds a client's traffic
 *             both ways until it heals; a reset cuts its connections.
 *   clients   share client_cores threads; every command sent costs client_us_per_command of one.
 *   servers   single-threaded event loops (redis.h): server_us_per_command a command,
 *             script_us_per_call more a script, cron at server_hz.
 *   machine   with cores > 0, the clients' threads and the servers share that many cores
 *             (cores.h); with 0, each server has a core of its own.
 * The run's raw record is the real drivers' (runner.h), so metrics, results, plots and the gate
 * read it unchanged. */
#ifndef LB_SIM_H
#define LB_SIM_H

#include <stdint.h>

#include "runner.h"
#include "scenario.h"

typedef struct lb_sim_stats {
    int64_t  virtual_us;   /* virtual time from the start barrier to the last event */
    int64_t  wall_us;      /* real time the simulation took */
    uint64_t events;       /* events processed */
} lb_sim_stats;

/* Runs the variant (its driver is sim) in virtual time. target gives the key prefix, the
 * progress line and its label; its servers, proxy and health are not used. 0, or -1 with err
 * filled (out of memory, or a model that could not start) and nothing in out to free. */
int lb_sim_run(const lb_scenario *variant, const lb_run_target *target, lb_run_result *out,
               lb_sim_stats *stats, char *err, size_t errlen);

#endif
