/* mpi_ranks.h -- what lockbench-mpi's main takes from its MPI side (collectives.c). */
#ifndef LB_MPI_RANKS_H
#define LB_MPI_RANKS_H

#include "ranks.h"

/* d's collectives on MPI_COMM_WORLD, for rank of nranks; hosts[r] names rank r's host. */
void lb_mpi_ranks_init(lb_ranks *d, int rank, int nranks, const char *const *hosts);

/* lockbench's own command line (harness/main.c, built for this program under this name). */
int lb_cli_main(int argc, char **argv);

#endif
