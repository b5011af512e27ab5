/* report.h -- index.html: a results folder as a page, openable straight from disk. */
#ifndef LB_REPORT_H
#define LB_REPORT_H

#include <stddef.h>

#include "metrics.h"
#include "scenario.h"

/* Writes dir/index.html: the scenario's description, the summary table, the charts (by relative
 * path, in `format`: png or svg; absent images are simply not shown) and the resolved scenario.
 * repeats > 1 links each variant's first repeat's charts. 0, or -1 with err filled. */
int lb_report_write(const char *dir, const lb_scenario *s, const lb_summary *variants, size_t n,
                    int repeats, const char *format, char *err, size_t errlen);

#endif
