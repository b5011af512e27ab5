/* fields.h -- the vocabulary of a variant's summary: one table of its figures.
 *
 * Every number of a VARIANT in summary.json (SPEC section 6) is one row of the table: its dotted
 * path, its unit, where lb_summary keeps it, whether a scenario's `expect` may name it, how
 * --repeat combines it (SPEC section 5), whether it gets a per-repeat list under "repeats", and
 * what the gate checks by default (SPEC section 8). The scenario loader (which expect paths
 * exist), metrics (values, combining repeats), results (the figures and lists it writes) and the
 * gate (what it checks, how it folds rounds) all read this table and keep no list of their own,
 * so a figure is added, or a rule changed, in one place.
 *
 * Not figures, so not here: the variant's descriptive strings (name, algorithm, wait, backoff,
 * driver), `complete`, the per-client table, `repeats` itself and `expect`. */
#ifndef LB_FIELDS_H
#define LB_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

struct lb_summary;

/* No more rows than this: lets callers keep one slot per field without allocating. */
#define LB_FIELDS_MAX 64

/* How the figures of N repeats of one variant become the summary's figure. */
typedef enum {
    LB_REPEAT_SAME,     /* a setting of the variant, equal in every repeat: the first one's */
    LB_REPEAT_SUM,      /* a count of things that happened: the total over the repeats */
    LB_REPEAT_MEDIAN    /* a figure of one run's speed or size: the median */
} lb_repeat_rule;

/* What the gate checks by default. */
typedef enum {
    LB_CHECK_NONE,      /* shown nowhere by the gate */
    LB_CHECK_ZERO,      /* correctness, a hard gate: 0 in the baseline and above 0 now fails */
    LB_CHECK_HIGHER,    /* performance, bigger is better: a fall past the threshold regresses */
    LB_CHECK_LOWER      /* performance, smaller is better: a rise past the threshold regresses */
} lb_gate_check;

typedef struct lb_field {
    const char    *path;          /* "acquire_ms.p99": in a VARIANT, and under "repeats" */
    const char    *unit;          /* what one of it is: "ms", "acquisitions/s", "commands", ... */
    size_t         offset;        /* where lb_summary keeps it */
    bool           is_int;        /* an int64_t there (else a double), an integer in the JSON */
    bool           sampled;       /* a latency figure: none (JSON null) when its block has no
                                     samples, i.e. the int64_t at count_offset is 0 */
    size_t         count_offset;  /* when sampled */
    bool           expect;        /* a scenario's expect may name it */
    lb_repeat_rule repeat;
    bool           listed;        /* with --repeat, its per-repeat values go under "repeats" */
    lb_gate_check  gate;
    double         threshold_pct; /* LB_CHECK_HIGHER/LOWER: the default allowed change, percent */
} lb_field;

/* The table, in the order the figures appear in summary.json; *n receives its length. */
const lb_field *lb_fields(size_t *n);
/* The row of path, or NULL. */
const lb_field *lb_field_find(const char *path);
/* A row's position in the table (0 … n-1). */
size_t          lb_field_index(const lb_field *f);

/* The figure as lb_summary holds it (an integer converted). A sampled figure whose block has no
 * samples holds 0; lb_field_has_value says whether there is a figure at all. */
double lb_field_get(const lb_field *f, const struct lb_summary *s);
bool   lb_field_has_value(const lb_field *f, const struct lb_summary *s);
/* Stores v; an integer figure is rounded to the nearest, NaN stored as 0. */
void   lb_field_set(const lb_field *f, struct lb_summary *s, double v);

/* The figure n repeats give by f's rule, from the values of those that have one (x[0..n-1], not
 * modified). NAN when n is 0. */
double lb_field_combine(const lb_field *f, const double *x, size_t n);

#endif
