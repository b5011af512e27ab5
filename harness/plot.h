/* plot.h -- the plot stage: runs the gnuplot scripts of plot/ over a results folder. No chart
 * logic lives in C; each script reads the CSV and hgrm files itself (see plot/common.gp for
 * the variables it takes). */
#ifndef LB_PLOT_H
#define LB_PLOT_H

#include <stdbool.h>
#include <stddef.h>

/* Draws every variant's charts (in each variant folder, or each repeat-N folder with repeats)
 * and, with several variants, the comparison charts in dir. 0 when drawn, 1 when skipped
 * because gnuplot is missing, -1 when a script failed; msg says which. */
int lb_plot_results(const char *dir, const char *scenario, const char *const *variants, size_t n,
                    int repeats, const char *format, char *msg, size_t msglen);

/* lockbench plot DIR [--format png|svg] [--plot-preview]: redraws a results folder, finding
 * its variants in DIR/summary.json; a preview prints text charts to the terminal. */
int lb_plot_command(const char *dir, const char *format, bool preview);

#endif
