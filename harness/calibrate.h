/* calibrate.h -- the simulator's model measured on this machine (`lockbench calibrate`), and
 * read back (`lockbench run --calibration FILE`).
 *
 * Microbenchmarks against a real redis-server, not the fidelity scenarios: the round trip of a
 * lone PING; the server's CPU per command (INFO's used_cpu over a burst of SET NX PX and DEL from
 * 50 connections, one command in flight on each, as lock clients send them) and per redis.call
 * inside a script (EVALSHA of a script making ten calls against one making none); the client's
 * CPU per command (this process's own over the first burst); the cores the loop driver uses; the
 * server's hz. The round trip left after the two CPU costs is rtt_us (at least 1). The file is
 * JSON whose keys are the scenario's `sim` keys, with what was measured under "measured". */
#ifndef LB_CALIBRATE_H
#define LB_CALIBRATE_H

#include <stddef.h>

#include "scenario.h"

/* lockbench calibrate [--redis URL] [--out FILE]: the exit code. */
int lb_calibrate_main(int argc, char **argv);

/* Reads a calibration file into model (every key required). 0, or -1 with err naming the file
 * and the key. */
int lb_calibration_load(const char *path, lb_sim *model, char *err, size_t errlen);

#endif
