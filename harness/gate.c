/* gate.c -- `lockbench gate BASELINE CURRENT`: the regression gate of SPEC section 8.
 *
 * Reads two summary.json files (SPEC section 6), matches their variants by name and turns each
 * comparison into a row: correctness rows (hard gate: a figure that was 0 and no longer is, an
 * expectation that passed and now fails, a variant that vanished) and performance rows (soft
 * gate). The rows are then printed as a terminal table and, on request, written as Markdown,
 * JSON and github-action-benchmark input.
 *
 * Which figures are checked, in which direction and with which default threshold is fields.c's
 * table (the rows with a gate check); so is how repeats combine. With >= LB_GATE_MIN_REPEATS
 * repeats on both sides a change past its threshold is a regression only when the Mann-Whitney
 * p, adjusted by Holm-Bonferroni over every metric tested in this run, is < LB_GATE_ALPHA:
 * sixteen independent tests at 0.05 each would flag an unchanged tree in 1 - 0.95^16 = 56 % of
 * runs (dependent ones in 5 to 80 %). Otherwise the threshold alone decides and the verdict is
 * marked weak. So rows are measured first, all of them, and decided after.
 *
 * A side may also be a folder of rounds: subfolders that each hold one run's summary.json (the
 * strict recipe runs base and head alternately, one run at a time). The rounds are folded into
 * one summary whose repeats are the rounds, each figure combined by the table's rule as --repeat
 * would have combined it, expectations passed only if every round passed. Each listed figure
 * keeps one entry per round (null where the round has none), so with --paired the rounds of one
 * name on both sides, run one after the other, are matched and tested by Wilcoxon's signed-rank
 * test on their differences: a slow spell of the machine that falls on both runs of a pair
 * drops out, where pooled into Mann-Whitney's ranks it hides a change. */
#include "gate.h"
#include "atomic.h"
#include "fields.h"
#include "stats.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LB__THROUGHPUT "throughput_per_s"   /* what --normalize scales */

/* A performance figure: compared with its threshold, and with its repeats' test. */
static bool lb__is_perf(const lb_field *f)
{
    return f->gate == LB_CHECK_HIGHER || f->gate == LB_CHECK_LOWER;
}

/* ---- state ---------------------------------------------------------------------------------- */

#define LB__MAX_ROUNDS LB_WSR_MAX   /* rounds folded per side; more are left out */

typedef enum {
    LB__V_OK, LB__V_IMPROVED, LB__V_NOISE, LB__V_REGRESSION, LB__V_FAIL, LB__V_NEW, LB__V_NODATA
} lb__verdict;

/* Terminal/Markdown wording, and the stable names --json uses. */
static const char *const lb__verdict_text[] = {
    "ok", "improved", "noise", "REGRESSION", "FAIL", "new", "no data"};
static const char *const lb__verdict_key[] = {
    "ok", "improved", "noise", "regression", "fail", "new", "no-data"};

typedef struct {
    const char           *variant;
    const char           *metric;      /* dotted summary path, or "variant" for presence */
    const lb_field       *perf;        /* NULL for correctness rows */
    double                base, cur;   /* NAN when that side has no figure */
    bool                  boolean;     /* base/cur are 0/1 and print as false/true */
    const char           *base_text;   /* replaces base/cur in presence rows */
    const char           *cur_text;
    double                change_pct;  /* NAN when not computed */
    double                p;           /* NAN when no test was run */
    double                p_holm;      /* p adjusted over the run's tests; NAN likewise */
    double                alpha;       /* what p_holm had to be under (--alpha) */
    double                threshold;   /* NAN for correctness rows */
    size_t                n_base, n_cur;
    size_t                pairs;       /* --paired: rounds with the figure on both sides */
    bool                  weak;        /* performance verdict from the threshold alone */
    const char           *reason;      /* why a correctness row fails */
    json_t               *failures;    /* current's expect.failures (borrowed) */
    lb__verdict           verdict;
} lb__row;

typedef struct {
    const char *role;      /* "baseline" or "current" */
    char       *file;      /* the summary.json read */
    json_t     *root;
    json_t     *variants;
    const char *scenario;
    double      raw_ops;   /* calibration.raw_ops_per_s, when --normalize */
    char      **rounds;    /* a folder of rounds: its subfolders' names, in order; else NULL */
    size_t      nrounds;
} lb__side;

typedef struct {
    const char *input[2];
    double      threshold[LB_FIELDS_MAX];   /* by lb_field_index; performance rows only */
    bool        normalize;
    bool        paired;    /* rounds of one name on both sides ran together: test per pair */
    double      alpha;     /* family-wise significance level, LB_GATE_ALPHA unless --alpha */
    const char *markdown, *json, *bench_smaller, *bench_bigger;
} lb__opts;

typedef struct {
    lb__opts  opt;
    lb__side  side[2];     /* [0] baseline, [1] current */
    lb__row  *rows;
    size_t    nrows, cap;
} lb__gate;

/* ---- messages ------------------------------------------------------------------------------- */

/* The performance figures: "a (default 10), b (15), ..." with thresholds, else "a, b, ...".
 * With width > 0, lines break before that column, the list starting (and going on) at column
 * indent. Malloc'd; NULL when out of memory. */
static char *lb__metric_list(bool thresholds, int indent, int width)
{
    char *text = NULL;
    size_t len = 0, nf, n = 0;
    const lb_field *t = lb_fields(&nf);
    FILE *f = open_memstream(&text, &len);
    int col = indent;
    for (size_t k = 0; f && k < nf; k++) {
        if (!lb__is_perf(&t[k]))
            continue;
        char item[128];
        int w = thresholds ? snprintf(item, sizeof item, "%s (%s%g)", t[k].path,
                                      n ? "" : "default ", t[k].threshold_pct)
                           : snprintf(item, sizeof item, "%s", t[k].path);
        if (n && width > 0 && col + 2 + w > width) {
            fprintf(f, ",\n%*s", indent, "");
            col = indent;
        } else if (n) {
            fputs(", ", f);
            col += 2;
        }
        fputs(item, f);
        col += w;
        n++;
    }
    if (f && fclose(f) != 0) {
        free(text);
        text = NULL;
    }
    return text;
}

static const char *lb__usage(void)
{
    static char text[2048];
    if (text[0])
        return text;
    char *metrics = lb__metric_list(true, 8, 90);
    snprintf(text, sizeof text,
             "usage: lockbench gate BASELINE CURRENT [--threshold METRIC=PCT]... [--normalize]\n"
             "                      [--paired] [--alpha A] [--markdown FILE] [--json FILE]\n"
             "                      [--benchmark-json FILE] [--benchmark-json-bigger FILE]\n"
             "BASELINE, CURRENT: result directories (holding summary.json) or summary.json "
             "files, or\n"
             "  folders of rounds (subfolders each holding one run's summary.json), folded as "
             "repeats.\n"
             "METRIC: %s; PCT is the allowed change in percent.\n"
             "--paired: both sides are folders of rounds, and the rounds of one name ran one\n"
             "  after the other; each metric is tested on the differences within those pairs\n"
             "  (Wilcoxon signed-rank) instead of on the pooled repeats (Mann-Whitney U).\n"
             "--alpha A: a change past its threshold regresses when p (Holm) < A (default %g).\n"
             "Exit status: 0 pass, 1 regression, 2 bad input.\n", metrics ? metrics : "?",
             LB_GATE_ALPHA);
    free(metrics);
    return text;
}

__attribute__((format(printf, 1, 2)))
static int lb__bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lockbench gate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return LB_GATE_BAD_INPUT;
}

/* Names the variant as well as the key, so a user can find the spot in a long summary. */
static int lb__bad_key(const lb__side *s, size_t vi, const char *path, const char *problem)
{
    const char *name = json_string_value(json_object_get(json_array_get(s->variants, vi), "name"));
    return lb__bad("%s: variants[%zu] (\"%s\"): %s %s", s->file, vi, name ? name : "?", path,
                   problem);
}

/* ---- options -------------------------------------------------------------------------------- */

static int lb__parse_threshold(lb__opts *o, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return lb__bad("--threshold %s: expected METRIC=PCT, e.g. acquire_ms.p99=20", spec);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
    const lb_field *f = lb_field_find(name);
    if (!f || !lb__is_perf(f)) {
        char *names = lb__metric_list(false, 0, 0);
        int rc = lb__bad("--threshold: unknown metric \"%.*s\" (one of %s)", (int)(eq - spec),
                         spec, names ? names : "?");
        free(names);
        return rc;
    }
    char *end;
    errno = 0;
    double pct = strtod(eq + 1, &end);
    if (*end == '%')
        end++;
    if (end == eq + 1 || *end || errno || !isfinite(pct) || pct < 0)
        return lb__bad("--threshold %s: PCT must be a non-negative number of percent", spec);
    o->threshold[lb_field_index(f)] = pct;
    return 0;
}

/* Points *dest at the value of `--name VALUE` or `--name=VALUE`; 1 when argv[*i] is not --name. */
static int lb__option_value(int argc, char **argv, int *i, const char *name, const char **dest)
{
    size_t len = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, len) != 0)
        return 1;
    if (a[len] == '=') {
        *dest = a + len + 1;
        return 0;
    }
    if (a[len] != '\0')
        return 1;
    if (*i + 1 >= argc)
        return lb__bad("%s needs a value\n%s", name, lb__usage());
    *dest = argv[++*i];
    return 0;
}

/* One option at argv[*i]; 0 done, 1 not an option we know, 2 bad value. */
static int lb__parse_option(lb__opts *o, int argc, char **argv, int *i)
{
    static const struct { const char *name; size_t offset; } files[] = {
        {"--markdown", offsetof(lb__opts, markdown)},
        {"--json", offsetof(lb__opts, json)},
        {"--benchmark-json", offsetof(lb__opts, bench_smaller)},
        {"--benchmark-json-bigger", offsetof(lb__opts, bench_bigger)},
    };
    if (strcmp(argv[*i], "--normalize") == 0) {
        o->normalize = true;
        return 0;
    }
    if (strcmp(argv[*i], "--paired") == 0) {
        o->paired = true;
        return 0;
    }
    const char *v;
    int rc = lb__option_value(argc, argv, i, "--threshold", &v);
    if (rc != 1)
        return rc ? rc : lb__parse_threshold(o, v);
    rc = lb__option_value(argc, argv, i, "--alpha", &v);
    if (rc != 1) {
        char *end;
        errno = 0;
        o->alpha = rc ? 0 : strtod(v, &end);
        if (!rc && (end == v || *end || errno || !(o->alpha > 0 && o->alpha < 1)))
            return lb__bad("--alpha %s: a significance level between 0 and 1, e.g. 0.01", v);
        return rc;
    }
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        const char **dest = (const char **)((char *)o + files[k].offset);
        rc = lb__option_value(argc, argv, i, files[k].name, dest);
        if (rc != 1)
            return rc;
    }
    return 1;
}

/* 0 parsed, -1 --help printed, LB_GATE_BAD_INPUT on a usage error. */
static int lb__parse_args(int argc, char **argv, lb__opts *o)
{
    int npos = 0;
    bool options_done = false;
    size_t nf;
    const lb_field *f = lb_fields(&nf);
    for (size_t k = 0; k < nf; k++)
        o->threshold[k] = f[k].threshold_pct;
    o->alpha = LB_GATE_ALPHA;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            fputs(lb__usage(), stdout);
            return -1;
        }
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
        } else if (!options_done && a[0] == '-' && a[1] != '\0') {
            int rc = lb__parse_option(o, argc, argv, &i);
            if (rc == 1)
                return lb__bad("unknown option %s\n%s", a, lb__usage());
            if (rc)
                return rc;
        } else if (npos < 2) {
            o->input[npos++] = a;
        } else {
            return lb__bad("unexpected argument %s (only BASELINE and CURRENT)\n%s", a,
                           lb__usage());
        }
    }
    if (npos < 2)
        return lb__bad("needs BASELINE and CURRENT\n%s", lb__usage());
    return 0;
}

/* ---- reading summary.json ------------------------------------------------------------------- */

/* The value at a dotted path ("acquire_ms.p99") below obj, or NULL. */
static json_t *lb__lookup(json_t *obj, const char *path)
{
    char key[128];
    while (obj && *path) {
        size_t len = strcspn(path, ".");
        if (len >= sizeof key)
            return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        obj = json_object_get(obj, key);
        path += len + (path[len] == '.');
    }
    return obj;
}

static int lb__resolve_file(lb__side *s, const char *arg)
{
    struct stat st;
    if (stat(arg, &st) != 0)
        return lb__bad("%s %s: %s", s->role, arg, strerror(errno));
    int n = S_ISDIR(st.st_mode) ? asprintf(&s->file, "%s/summary.json", arg)
                                : asprintf(&s->file, "%s", arg);
    if (n < 0) {
        s->file = NULL;
        return lb__bad("out of memory");
    }
    if (S_ISDIR(st.st_mode) && access(s->file, F_OK) != 0)
        return lb__bad("%s %s: no summary.json in this directory (not a result directory, or "
                       "the run did not finish)", s->role, arg);
    return 0;
}

/* Names must be unique: the gate matches variants by name. */
static int lb__check_variants(const lb__side *s)
{
    for (size_t i = 0; i < json_array_size(s->variants); i++) {
        json_t *v = json_array_get(s->variants, i);
        const char *name = json_string_value(json_object_get(v, "name"));
        if (!json_is_object(v) || !name)
            return lb__bad("%s: variants[%zu]: missing key name (a string)", s->file, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(name, json_string_value(json_object_get(json_array_get(s->variants, j),
                                                                "name"))) == 0)
                return lb__bad("%s: variants[%zu]: duplicate variant name \"%s\"", s->file, i,
                               name);
    }
    return 0;
}

static int lb__check_top(lb__side *s)
{
    json_t *complete = json_object_get(s->root, "complete");
    if (!json_is_object(s->root))
        return lb__bad("%s: the top level is not an object", s->file);
    if (!json_is_boolean(complete))
        return lb__bad("%s: missing key complete (a boolean)", s->file);
    if (!json_is_true(complete))
        return lb__bad("%s: \"complete\" is false: the %s run ended early and its figures "
                       "cannot be compared; run it again", s->file, s->role);
    s->scenario = json_string_value(json_object_get(s->root, "scenario"));
    if (!s->scenario)
        return lb__bad("%s: missing key scenario (a string)", s->file);
    s->variants = json_object_get(s->root, "variants");
    if (!json_is_array(s->variants))
        return lb__bad("%s: missing key variants (an array); a per-variant summary.json "
                       "cannot be gated, pass the run's directory", s->file);
    return lb__check_variants(s);
}

static int lb__load_root(lb__side *s)
{
    json_error_t e;
    s->root = json_load_file(s->file, 0, &e);
    if (!s->root && e.line > 0)
        return lb__bad("%s:%d:%d: %s", s->file, e.line, e.column, e.text);
    if (!s->root && strstr(e.text, s->file))   /* "unable to open FILE: ..." names it */
        return lb__bad("%s", e.text);
    if (!s->root)
        return lb__bad("%s: %s", s->file, e.text);
    return 0;
}

/* ---- rounds --------------------------------------------------------------------------------- */

/* Sets obj.path (dotted) to v, creating the objects on the way; steals v. */
static void lb__set_path(json_t *obj, const char *path, json_t *v)
{
    char key[128];
    size_t len = strcspn(path, ".");
    snprintf(key, sizeof key, "%.*s", (int)len, path);
    if (path[len] == '\0') {
        json_object_set_new(obj, key, v);
        return;
    }
    json_t *next = json_object_get(obj, key);
    if (!json_is_object(next)) {
        next = json_object();
        json_object_set_new(obj, key, next);
    }
    lb__set_path(next, path + len + 1, v);
}

static json_t *lb__variant_named(json_t *root, const char *name)
{
    json_t *vs = json_object_get(root, "variants"), *v;
    size_t i;
    json_array_foreach(vs, i, v) {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (n && strcmp(n, name) == 0)
            return v;
    }
    return NULL;
}

/* One figure of one variant over the rounds (at most LB__MAX_ROUNDS), the numbers into vals and,
 * when list is not NULL, one entry per round into list, so --paired can match rounds by
 * position. A round whose figure is null (no data: no acquisitions, so no acquire latency) or
 * that lacks the variant or the figure adds nothing to vals and a null to list; a figure that
 * is neither a number nor null is bad input. */
static int lb__fold_values(json_t *const *rounds, char *const *files, size_t n, const char *name,
                           const char *path, double *vals, size_t *k, json_t *list)
{
    *k = 0;
    for (size_t r = 0; r < n && r < LB__MAX_ROUNDS; r++) {
        json_t *x = lb__lookup(lb__variant_named(rounds[r], name), path);
        if (x && !json_is_null(x) && !json_is_number(x))
            return lb__bad("%s: variant \"%s\": %s is neither a number nor null", files[r],
                           name, path);
        bool number = x && json_is_number(x);
        if (number)
            vals[(*k)++] = json_number_value(x);
        if (list)
            json_array_append_new(list, number ? json_real(json_number_value(x)) : json_null());
    }
    return 0;
}

/* Folds the rounds' figures for one variant into out (a copy of the first round's): each figure
 * of fields.c's table by its repeat rule over the rounds that have it, as lb_metrics_combine
 * does over repeats, and the listed ones' numbers under "repeats". So a performance figure is
 * the median over the rounds that have it, and fewer than LB_GATE_MIN_REPEATS numbers left make
 * its verdict weak. */
static int lb__fold_variant(json_t *out, json_t *const *rounds, char *const *files, size_t n)
{
    const char *name = json_string_value(json_object_get(out, "name"));
    double vals[LB__MAX_ROUNDS];
    size_t nf, k;
    const lb_field *f = lb_fields(&nf);
    for (size_t i = 0; i < nf; i++) {
        json_t *list = f[i].listed ? json_array() : NULL;
        int rc = lb__fold_values(rounds, files, n, name, f[i].path, vals, &k, list);
        if (rc) {
            json_decref(list);
            return rc;
        }
        if (list) {
            char where[160];
            snprintf(where, sizeof where, "repeats.%s", f[i].path);
            lb__set_path(out, where, list);
        }
        if (k > 0 && f[i].repeat != LB_REPEAT_SAME) {
            double v = lb_field_combine(&f[i], vals, k);
            lb__set_path(out, f[i].path, f[i].is_int ? json_integer((json_int_t)llround(v))
                                                     : json_real(v));
        }
    }
    bool passed = true;
    for (size_t r = 0; r < n; r++)
        passed &= json_is_true(lb__lookup(lb__variant_named(rounds[r], name), "expect.passed"));
    lb__set_path(out, "expect.passed", json_boolean(passed));
    return 0;
}

static int lb__cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The summary.json files of arg's subfolders, sorted; NULL-terminated, malloc'd. */
static char **lb__round_files(const char *arg, size_t *n)
{
    DIR *d = opendir(arg);
    struct dirent *e;
    char **files = NULL;
    *n = 0;
    while (d && (e = readdir(d))) {
        char *f;
        if (e->d_name[0] == '.' || asprintf(&f, "%s/%s/summary.json", arg, e->d_name) < 0)
            continue;
        char **grown = access(f, F_OK) == 0 ? realloc(files, (*n + 2) * sizeof *files) : NULL;
        if (!grown) {
            free(f);
            continue;
        }
        files = grown;
        files[(*n)++] = f;
        files[*n] = NULL;
    }
    if (d)
        closedir(d);
    if (files)
        qsort(files, *n, sizeof *files, lb__cmp_str);
    return files;
}

static int lb__load_rounds(lb__side *s, const char *arg, char **files, size_t n)
{
    json_t **rounds = calloc(n, sizeof *rounds);
    int rc = rounds ? 0 : lb__bad("out of memory");
    for (size_t r = 0; rc == 0 && r < n; r++) {
        lb__side one = {.role = s->role, .file = files[r]};
        rc = lb__load_root(&one);
        if (rc == 0)
            rc = lb__check_top(&one);
        rounds[r] = one.root;
    }
    if (rc == 0) {
        s->root = json_deep_copy(rounds[0]);
        json_t *v;
        size_t i;
        json_array_foreach(json_object_get(s->root, "variants"), i, v)
            if (rc == 0)
                rc = lb__fold_variant(v, rounds, files, n);
        double raw[LB__MAX_ROUNDS];
        size_t k = 0;
        for (size_t r = 0; r < n && k < LB__MAX_ROUNDS; r++) {
            json_t *x = lb__lookup(rounds[r], "calibration.raw_ops_per_s");
            if (json_is_number(x))
                raw[k++] = json_number_value(x);
        }
        if (k > 0)
            lb__set_path(s->root, "calibration.raw_ops_per_s", json_real(lb_median(raw, k)));
    }
    for (size_t r = 0; rounds && r < n; r++)
        json_decref(rounds[r]);
    free(rounds);
    return rc;
}

static int lb__load_side(lb__side *s, const char *arg)
{
    struct stat st;
    size_t n = 0;
    char **rounds = NULL;
    char summary[4096];
    snprintf(summary, sizeof summary, "%s/summary.json", arg);
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode) && access(summary, F_OK) != 0)
        rounds = lb__round_files(arg, &n);
    if (rounds) {
        if (asprintf(&s->file, "%s", arg) < 0)
            s->file = NULL;
        int rc = s->file ? lb__load_rounds(s, arg, rounds, n) : lb__bad("out of memory");
        /* "ARG/NAME/summary.json" -> "NAME", in place: the names outlive the paths. */
        size_t skip = strlen(arg) + 1, tail = strlen("/summary.json");
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(rounds[i]) - skip - tail;
            memmove(rounds[i], rounds[i] + skip, len);
            rounds[i][len] = '\0';
        }
        s->rounds = rounds;
        s->nrounds = n < LB__MAX_ROUNDS ? n : LB__MAX_ROUNDS;
        return rc ? rc : lb__check_top(s);
    }
    int rc = lb__resolve_file(s, arg);
    if (rc == 0)
        rc = lb__load_root(s);
    return rc ? rc : lb__check_top(s);
}

static int lb__load_calibration(lb__side *s)
{
    json_t *raw = lb__lookup(s->root, "calibration.raw_ops_per_s");
    if (!raw)
        return lb__bad("%s: --normalize needs calibration.raw_ops_per_s, which is missing",
                       s->file);
    s->raw_ops = json_number_value(raw);
    if (!json_is_number(raw) || !(s->raw_ops > 0))
        return lb__bad("%s: calibration.raw_ops_per_s must be a number above 0 for --normalize",
                       s->file);
    return 0;
}

/* The number at path in variant vi; JSON null (no data, e.g. no acquisitions) gives NAN
 * when null_ok. */
static int lb__number(const lb__side *s, size_t vi, const char *path, bool null_ok, double *out)
{
    json_t *v = lb__lookup(json_array_get(s->variants, vi), path);
    if (!v)
        return lb__bad_key(s, vi, path, "is missing");
    if (json_is_null(v) && null_ok) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v))
        return lb__bad_key(s, vi, path, "is not a number");
    *out = json_number_value(v);
    return 0;
}

/* The per-repeat numbers of path (under "repeats"), malloc'd; *n = 0 without repeats. A null
 * entry is a repeat that has no such figure (no acquisitions, so no acquire latency): it is
 * skipped, and *n counts the numbers only, so fewer than LB_GATE_MIN_REPEATS of them make the
 * verdict weak. Anything else that is not a number is bad input. */
static int lb__repeats(const lb__side *s, size_t vi, const char *path, double **vals, size_t *n)
{
    char where[160];
    snprintf(where, sizeof where, "repeats.%s", path);
    json_t *list = lb__lookup(json_array_get(s->variants, vi), where);
    *vals = NULL;
    *n = 0;
    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return lb__bad_key(s, vi, where, "is not an array");
    *vals = malloc((json_array_size(list) + 1) * sizeof **vals);
    if (!*vals)
        return lb__bad("out of memory");
    for (size_t k = 0; k < json_array_size(list); k++) {
        json_t *x = json_array_get(list, k);
        if (json_is_null(x))
            continue;
        if (!json_is_number(x))
            return lb__bad_key(s, vi, where, "holds a value that is neither a number nor null");
        (*vals)[(*n)++] = json_number_value(x);
    }
    return 0;
}

static ssize_t lb__find_variant(const lb__side *s, const char *name)
{
    for (size_t i = 0; i < json_array_size(s->variants); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(s->variants, i), "name")),
                   name) == 0)
            return (ssize_t)i;
    return -1;
}

/* ---- comparing ------------------------------------------------------------------------------ */

static lb__row *lb__add_row(lb__gate *g, const char *variant, const char *metric)
{
    if (g->nrows == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 32;
        lb__row *r = realloc(g->rows, cap * sizeof *r);
        if (!r)
            return NULL;
        g->rows = r;
        g->cap = cap;
    }
    lb__row *r = &g->rows[g->nrows++];
    *r = (lb__row){.variant = variant, .metric = metric, .base = NAN, .cur = NAN,
                   .change_pct = NAN, .p = NAN, .p_holm = NAN, .threshold = NAN,
                   .verdict = LB__V_OK};
    return r;
}

/* A figure that was 0 and is not any more; a counter that was already non-zero is shown but
 * not gated, since the baseline itself was broken there. Rows only for non-zero figures. */
static int lb__check_counter(lb__gate *g, size_t bvi, size_t cvi, const char *name,
                             const char *path)
{
    double b, c;
    int rc = lb__number(&g->side[0], bvi, path, false, &b);
    if (!rc)
        rc = lb__number(&g->side[1], cvi, path, false, &c);
    if (rc || (b == 0 && c == 0))
        return rc;
    lb__row *r = lb__add_row(g, name, path);
    if (!r)
        return lb__bad("out of memory");
    r->base = b;
    r->cur = c;
    if (b == 0 && c > 0) {
        r->verdict = LB__V_FAIL;
        r->reason = "was 0 in the baseline";
    }
    return 0;
}

static int lb__expect_passed(const lb__side *s, size_t vi, bool *passed)
{
    json_t *v = lb__lookup(json_array_get(s->variants, vi), "expect.passed");
    if (!json_is_boolean(v))
        return lb__bad_key(s, vi, "expect.passed", v ? "is not a boolean" : "is missing");
    *passed = json_is_true(v);
    return 0;
}

static int lb__check_expect(lb__gate *g, size_t bvi, size_t cvi, const char *name)
{
    bool b, c;
    int rc = lb__expect_passed(&g->side[0], bvi, &b);
    if (!rc)
        rc = lb__expect_passed(&g->side[1], cvi, &c);
    if (rc || (b && c))
        return rc;
    lb__row *r = lb__add_row(g, name, "expect.passed");
    if (!r)
        return lb__bad("out of memory");
    r->boolean = true;
    r->base = b;
    r->cur = c;
    r->failures = lb__lookup(json_array_get(g->side[1].variants, cvi), "expect.failures");
    if (b && !c) {
        r->verdict = LB__V_FAIL;
        r->reason = "an expectation that passed in the baseline fails";
    }
    return 0;
}

/* One side's figure for a metric: its repeats combined by the table's rule when it has them
 * (SPEC: the summary's figure is their median), else the summary's figure; throughput
 * optionally divided by the side's calibration so baselines from another machine stay
 * comparable. */
typedef struct {
    double  value;
    double *reps;
    size_t  n;
} lb__sample;

static int lb__read_sample(const lb__gate *g, int side, size_t vi, const lb_field *m,
                           lb__sample *out)
{
    const lb__side *s = &g->side[side];
    int rc = lb__number(s, vi, m->path, true, &out->value);
    if (!rc)
        rc = lb__repeats(s, vi, m->path, &out->reps, &out->n);
    if (rc)
        return rc;
    if (out->n > 0)
        out->value = lb_field_combine(m, out->reps, out->n);
    if (g->opt.normalize && strcmp(m->path, LB__THROUGHPUT) == 0) {
        out->value /= s->raw_ops;
        for (size_t k = 0; k < out->n; k++)
            out->reps[k] /= s->raw_ops;
    }
    return 0;
}

/* Relative change in percent; a change from 0 is infinite in its direction. */
static double lb__change_pct(double base, double cur)
{
    if (base == 0)
        return cur == 0 ? 0 : copysign(INFINITY, cur);
    return (cur - base) / fabs(base) * 100;
}

/* --paired: for each round name on both sides where both have the figure, the difference
 * (c - b) / (|c| + |b|) (0 when both are 0), into d[*n]. Swapping the sides flips its sign, and
 * for positive figures it orders pairs as the log of c/b does, so a round twice as slow weighs
 * as much whatever the machine's speed in that round. The folded lists hold one entry per
 * round (null when the round has no figure), in the order of s->rounds. */
static int lb__paired_diffs(const lb__gate *g, size_t bvi, size_t cvi, const lb_field *m,
                            double *d, size_t *n)
{
    char where[160];
    snprintf(where, sizeof where, "repeats.%s", m->path);
    json_t *bl = lb__lookup(json_array_get(g->side[0].variants, bvi), where);
    json_t *cl = lb__lookup(json_array_get(g->side[1].variants, cvi), where);
    bool norm = g->opt.normalize && strcmp(m->path, LB__THROUGHPUT) == 0;
    *n = 0;
    for (size_t i = 0; i < g->side[0].nrounds && i < json_array_size(bl); i++) {
        json_t *bx = json_array_get(bl, i), *cx = NULL;
        for (size_t j = 0; j < g->side[1].nrounds && j < json_array_size(cl) && !cx; j++)
            if (strcmp(g->side[0].rounds[i], g->side[1].rounds[j]) == 0)
                cx = json_array_get(cl, j);
        if (!json_is_number(bx) || !json_is_number(cx))
            continue;
        double b = json_number_value(bx), c = json_number_value(cx);
        if (norm) {
            b /= g->side[0].raw_ops;
            c /= g->side[1].raw_ops;
        }
        d[(*n)++] = fabs(b) + fabs(c) > 0 ? (c - b) / (fabs(b) + fabs(c)) : 0;
    }
    return 0;
}

/* The figures, the change and the test's p; the verdict waits for every row's p (lb__decide).
 * With pairs (d not NULL), the test is Wilcoxon's signed-rank on them, and too few pairs make
 * the verdict weak; else Mann-Whitney's on the two sides' repeats. */
static void lb__measure(lb__row *r, const lb__sample *b, const lb__sample *c, const double *d,
                        size_t nd)
{
    r->base = b->value;
    r->cur = c->value;
    r->n_base = b->n;
    r->n_cur = c->n;
    if (isnan(b->value) || isnan(c->value)) {
        r->verdict = LB__V_NODATA;
        return;
    }
    r->change_pct = lb__change_pct(b->value, c->value);
    lb_mwu t;
    lb_wsr w;
    r->pairs = nd;
    r->weak = d ? nd < LB_GATE_MIN_REPEATS
                : b->n < LB_GATE_MIN_REPEATS || c->n < LB_GATE_MIN_REPEATS;
    if (!r->weak && d && lb_wilcoxon_signed_rank(d, nd, &w) == 0)
        r->p = w.p;
    else if (!r->weak && !d && lb_mann_whitney(b->reps, b->n, c->reps, c->n, &t) == 0)
        r->p = t.p;
}

/* A performance row still to be decided: one with figures on both sides. */
static bool lb__row_pending(const lb__row *r)
{
    return r->perf && r->verdict != LB__V_NODATA && r->verdict != LB__V_NEW;
}

static void lb__decide(lb__row *r, double alpha)
{
    double worse = r->perf->gate == LB_CHECK_HIGHER ? -r->change_pct : r->change_pct;
    r->alpha = alpha;
    bool significant = r->weak || r->p_holm < alpha;
    if (worse > r->threshold)
        r->verdict = significant ? LB__V_REGRESSION : LB__V_NOISE;
    else if (-worse > r->threshold && significant)
        r->verdict = LB__V_IMPROVED;
    else
        r->verdict = LB__V_OK;
}

/* cvi < 0: a variant only the current run has; its figures are listed (and go to the
 * benchmark files) but not judged. */
static int lb__check_metric(lb__gate *g, ssize_t bvi, size_t cvi, const char *name,
                            const lb_field *m)
{
    lb__sample b = {NAN, NULL, 0}, c = {NAN, NULL, 0};
    double d[LB__MAX_ROUNDS];
    size_t nd = 0;
    bool paired = g->opt.paired && bvi >= 0;
    int rc = bvi >= 0 ? lb__read_sample(g, 0, (size_t)bvi, m, &b) : 0;
    if (!rc)
        rc = lb__read_sample(g, 1, cvi, m, &c);
    if (!rc && paired)
        rc = lb__paired_diffs(g, (size_t)bvi, cvi, m, d, &nd);
    lb__row *r = rc ? NULL : lb__add_row(g, name, m->path);
    if (!rc && !r)
        rc = lb__bad("out of memory");
    if (r) {
        r->perf = m;
        r->threshold = g->opt.threshold[lb_field_index(m)];
        lb__measure(r, &b, &c, paired ? d : NULL, nd);
        if (bvi < 0)
            r->verdict = LB__V_NEW;
    }
    free(b.reps);
    free(c.reps);
    return rc;
}

static int lb__compare_variant(lb__gate *g, size_t bvi, size_t cvi)
{
    const char *name = json_string_value(json_object_get(json_array_get(g->side[0].variants, bvi),
                                                         "name"));
    int rc = 0;
    size_t nf;
    const lb_field *f = lb_fields(&nf);
    for (size_t k = 0; k < nf && !rc; k++)
        if (f[k].gate == LB_CHECK_ZERO)
            rc = lb__check_counter(g, bvi, cvi, name, f[k].path);
    if (!rc)
        rc = lb__check_expect(g, bvi, cvi, name);
    for (size_t k = 0; k < nf && !rc; k++)
        if (lb__is_perf(&f[k]))
            rc = lb__check_metric(g, (ssize_t)bvi, cvi, name, &f[k]);
    return rc;
}

static int lb__missing_variant(lb__gate *g, const char *name)
{
    lb__row *r = lb__add_row(g, name, "variant");
    if (!r)
        return lb__bad("out of memory");
    r->base_text = "present";
    r->cur_text = "missing";
    r->verdict = LB__V_FAIL;
    r->reason = "the baseline's variant is missing in the current run";
    return 0;
}

static int lb__compare(lb__gate *g)
{
    const lb__side *b = &g->side[0], *c = &g->side[1];
    size_t nf;
    const lb_field *f = lb_fields(&nf);
    int rc = 0;
    for (size_t i = 0; i < json_array_size(b->variants) && !rc; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(b->variants, i),
                                                             "name"));
        ssize_t ci = lb__find_variant(c, name);
        rc = ci < 0 ? lb__missing_variant(g, name) : lb__compare_variant(g, i, (size_t)ci);
    }
    for (size_t i = 0; i < json_array_size(c->variants) && !rc; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(c->variants, i),
                                                             "name"));
        for (size_t k = 0; lb__find_variant(b, name) < 0 && k < nf && !rc; k++)
            if (lb__is_perf(&f[k]))
                rc = lb__check_metric(g, -1, i, name, &f[k]);
    }
    return rc;
}

/* Holm over the p-values of every row that was tested, then each pending row's verdict. */
static int lb__decide_all(lb__gate *g)
{
    double *p = malloc((g->nrows ? g->nrows : 1) * sizeof *p);
    if (!p)
        return lb__bad("out of memory");
    for (size_t i = 0; i < g->nrows; i++)
        p[i] = lb__row_pending(&g->rows[i]) ? g->rows[i].p : NAN;
    int rc = lb_holm_adjust(p, g->nrows, p) == 0 ? 0 : lb__bad("out of memory");
    for (size_t i = 0; i < g->nrows && !rc; i++)
        if (lb__row_pending(&g->rows[i])) {
            g->rows[i].p_holm = p[i];
            lb__decide(&g->rows[i], g->opt.alpha);
        }
    free(p);
    return rc;
}

/* ---- verdict and cells ---------------------------------------------------------------------- */

static bool lb__row_fails(const lb__row *r)
{
    return r->verdict == LB__V_FAIL || r->verdict == LB__V_REGRESSION;
}

static size_t lb__count(const lb__gate *g, bool (*pred)(const lb__row *))
{
    size_t n = 0;
    for (size_t i = 0; i < g->nrows; i++)
        n += pred(&g->rows[i]);
    return n;
}

static bool lb__row_weak(const lb__row *r)
{
    return r->weak && r->verdict != LB__V_NODATA && r->verdict != LB__V_NEW;
}

static bool lb__row_perf(const lb__row *r)
{
    return r->perf && r->verdict != LB__V_NEW;
}

static bool lb__row_tested(const lb__row *r)
{
    return !isnan(r->p_holm);
}

enum { LB__COL_VARIANT, LB__COL_METRIC, LB__COL_BASE, LB__COL_CUR, LB__COL_CHANGE, LB__COL_P,
       LB__COL_HOLM, LB__COL_VERDICT, LB__NCOLS };
typedef char lb__cells[LB__NCOLS][64];

static const char *const lb__headers[LB__NCOLS] = {
    "variant", "metric", "baseline", "current", "change", "p-value", "p (Holm)", "verdict"};

/* Four significant digits, but no exponent for large figures (throughput). */
static void lb__format_value(char *buf, size_t len, double v, bool boolean, const char *text)
{
    if (text)
        snprintf(buf, len, "%s", text);
    else if (isnan(v))
        snprintf(buf, len, "-");
    else if (boolean)
        snprintf(buf, len, "%s", v != 0 ? "true" : "false");
    else if (fabs(v) >= 1000)
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, "%.4g", v);
}

static void lb__format_p(char *buf, size_t len, double p)
{
    if (isnan(p))
        snprintf(buf, len, "-");
    else if (p < 0.001)
        snprintf(buf, len, "<0.001");
    else
        snprintf(buf, len, "%.3f", p);
}

static void lb__format_row(const lb__row *r, lb__cells cells)
{
    snprintf(cells[LB__COL_VARIANT], sizeof cells[0], "%s", r->variant);
    snprintf(cells[LB__COL_METRIC], sizeof cells[0], "%s", r->metric);
    lb__format_value(cells[LB__COL_BASE], sizeof cells[0], r->base, r->boolean, r->base_text);
    lb__format_value(cells[LB__COL_CUR], sizeof cells[0], r->cur, r->boolean, r->cur_text);
    if (isnan(r->change_pct))
        snprintf(cells[LB__COL_CHANGE], sizeof cells[0], "-");
    else
        snprintf(cells[LB__COL_CHANGE], sizeof cells[0], "%+.1f%%", r->change_pct);
    lb__format_p(cells[LB__COL_P], sizeof cells[0], r->p);
    lb__format_p(cells[LB__COL_HOLM], sizeof cells[0], r->p_holm);
    if (r->verdict == LB__V_NOISE)
        snprintf(cells[LB__COL_VERDICT], sizeof cells[0], "noise (Holm p >= %g)", r->alpha);
    else
        snprintf(cells[LB__COL_VERDICT], sizeof cells[0], "%s%s", lb__verdict_text[r->verdict],
                 lb__row_weak(r) ? " (weak)" : "");
}

/* "PASS: ..." or "FAIL: ..." -- the one line a CI log or PR comment leads with. */
static void lb__headline(const lb__gate *g, FILE *f)
{
    size_t fails = lb__count(g, lb__row_fails);
    if (fails == 0) {
        fprintf(f, "PASS: scenario %s, %zu metrics compared, no regression", g->side[0].scenario,
                lb__count(g, lb__row_perf));
        return;
    }
    fprintf(f, "FAIL: scenario %s, %zu regression%s:", g->side[0].scenario, fails,
            fails == 1 ? "" : "s");
    const char *sep = " ";
    for (size_t i = 0; i < g->nrows; i++)
        if (lb__row_fails(&g->rows[i])) {
            fprintf(f, "%s%s %s", sep, g->rows[i].variant, g->rows[i].metric);
            sep = ", ";
        }
}

/* Notes under the table: weak verdicts, failed expectations, how throughput was scaled. */
static void lb__notes(const lb__gate *g, FILE *f, const char *bullet)
{
    size_t weak = lb__count(g, lb__row_weak);
    size_t tested = lb__count(g, lb__row_tested);
    if (weak)
        fprintf(f, "%sweak: fewer than %d repeats on one or both sides for %zu metric%s; the "
                "threshold alone decided (run with --repeat %d or more)\n", bullet,
                LB_GATE_MIN_REPEATS, weak, weak == 1 ? "" : "s", LB_GATE_MIN_REPEATS);
    if (tested && g->opt.paired)
        fprintf(f, "%sp-value: Wilcoxon signed-rank over the rounds paired by name (base and "
                "current run one after the other)\n", bullet);
    if (tested)
        fprintf(f, "%sp (Holm): the p-values of the %zu metric%s tested, adjusted together "
                "(Holm-Bonferroni); past its threshold, a change regresses if p (Holm) < %g\n",
                bullet, tested, tested == 1 ? "" : "s", g->opt.alpha);
    for (size_t i = 0; i < g->nrows; i++) {
        const lb__row *r = &g->rows[i];
        for (size_t k = 0; r->verdict == LB__V_FAIL && k < json_array_size(r->failures); k++) {
            json_t *x = json_array_get(r->failures, k);
            char *bound = json_dumps(json_object_get(x, "bound"), JSON_ENCODE_ANY | JSON_COMPACT);
            char *value = json_dumps(json_object_get(x, "value"), JSON_ENCODE_ANY | JSON_COMPACT);
            fprintf(f, "%s%s: expectation failed: %s = %s, bound %s\n", bullet, r->variant,
                    json_string_value(json_object_get(x, "path")), value ? value : "?",
                    bound ? bound : "?");
            free(bound);
            free(value);
        }
    }
    if (g->opt.normalize)
        fprintf(f, "%sthroughput_per_s divided by calibration.raw_ops_per_s (baseline %.0f, "
                "current %.0f)\n", bullet, g->side[0].raw_ops, g->side[1].raw_ops);
    size_t nf;
    const lb_field *t = lb_fields(&nf);
    const char *sep = "";
    fprintf(f, "%sthresholds:", bullet);
    for (size_t k = 0; k < nf; k++)
        if (lb__is_perf(&t[k])) {
            fprintf(f, "%s %s %g%%", sep, t[k].path, g->opt.threshold[k]);
            sep = ",";
        }
    fputc('\n', f);
}

/* ---- terminal and Markdown ------------------------------------------------------------------ */

static void lb__print_line(FILE *f, const char *const cells[LB__NCOLS], const int width[LB__NCOLS])
{
    for (int c = 0; c + 1 < LB__NCOLS; c++)
        fprintf(f, "%-*s  ", width[c], cells[c]);
    fprintf(f, "%s\n", cells[LB__NCOLS - 1]);
}

static int lb__write_table(FILE *f, const lb__gate *g)
{
    int width[LB__NCOLS];
    lb__cells cells;
    const char *ptr[LB__NCOLS];
    for (int c = 0; c < LB__NCOLS; c++)
        width[c] = (int)strlen(lb__headers[c]);
    for (size_t i = 0; i < g->nrows; i++) {
        lb__format_row(&g->rows[i], cells);
        for (int c = 0; c < LB__NCOLS; c++)
            if ((int)strlen(cells[c]) > width[c])
                width[c] = (int)strlen(cells[c]);
    }
    lb__print_line(f, lb__headers, width);
    for (size_t i = 0; i < g->nrows; i++) {
        lb__format_row(&g->rows[i], cells);
        for (int c = 0; c < LB__NCOLS; c++)
            ptr[c] = cells[c];
        lb__print_line(f, ptr, width);
    }
    lb__notes(g, f, "");
    lb__headline(g, f);
    fputc('\n', f);
    return 0;
}

/* A table cell must not contain a bare '|'. */
static void lb__md_cell(FILE *f, const char *s)
{
    fputs("| ", f);
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc(' ', f);
}

static int lb__write_markdown(FILE *f, const lb__gate *g)
{
    lb__cells cells;
    fputs("**lockbench gate ", f);
    lb__headline(g, f);
    fputs("**\n\n", f);
    for (int c = 0; c < LB__NCOLS; c++)
        lb__md_cell(f, lb__headers[c]);
    fputs("|\n", f);
    for (int c = 0; c < LB__NCOLS; c++)   /* figures right-aligned, words left */
        fputs(c >= LB__COL_BASE && c <= LB__COL_HOLM ? "|--:" : "|---", f);
    fputs("|\n", f);
    for (size_t i = 0; i < g->nrows; i++) {
        lb__format_row(&g->rows[i], cells);
        if (lb__row_fails(&g->rows[i]))
            snprintf(cells[LB__COL_VERDICT], sizeof cells[0], "**%s%s**",
                     lb__verdict_text[g->rows[i].verdict],
                     lb__row_weak(&g->rows[i]) ? " (weak)" : "");
        for (int c = 0; c < LB__NCOLS; c++)
            lb__md_cell(f, cells[c]);
        fputs("|\n", f);
    }
    fputc('\n', f);
    lb__notes(g, f, "- ");
    return 0;
}

/* ---- JSON outputs --------------------------------------------------------------------------- */

static json_t *lb__json_number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *lb__json_side(const lb__row *r, double v, const char *text)
{
    if (text)
        return json_string(text);
    if (r->boolean)
        return json_boolean(v != 0);
    return lb__json_number(v);
}

static json_t *lb__json_row(const lb__row *r, bool paired)
{
    json_t *o = json_object();
    json_object_set_new(o, "variant", json_string(r->variant));
    json_object_set_new(o, "metric", json_string(r->metric));
    json_object_set_new(o, "kind", json_string(r->perf ? "performance" : "correctness"));
    json_object_set_new(o, "baseline", lb__json_side(r, r->base, r->base_text));
    json_object_set_new(o, "current", lb__json_side(r, r->cur, r->cur_text));
    json_object_set_new(o, "change_pct", lb__json_number(r->change_pct));
    json_object_set_new(o, "p_value", lb__json_number(r->p));
    json_object_set_new(o, "p_holm", lb__json_number(r->p_holm));
    json_object_set_new(o, "threshold_pct", lb__json_number(r->threshold));
    json_object_set_new(o, "repeats", json_pack("{s:I,s:I}", "baseline", (json_int_t)r->n_base,
                                                "current", (json_int_t)r->n_cur));
    if (r->perf && lb__row_pending(r) && paired)
        json_object_set_new(o, "pairs", json_integer((json_int_t)r->pairs));
    json_object_set_new(o, "weak", json_boolean(lb__row_weak(r)));
    json_object_set_new(o, "verdict", json_string(lb__verdict_key[r->verdict]));
    if (r->reason)
        json_object_set_new(o, "reason", json_string(r->reason));
    if (r->failures && r->verdict == LB__V_FAIL)
        json_object_set(o, "failures", r->failures);
    return o;
}

static int lb__dump(FILE *f, json_t *doc)
{
    int rc = doc ? json_dumpf(doc, f, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) : -1;
    json_decref(doc);
    fputc('\n', f);
    return rc;
}

static int lb__write_json(FILE *f, const lb__gate *g)
{
    json_t *doc = json_object(), *thr = json_object(), *rows = json_array();
    bool fail = lb__count(g, lb__row_fails) > 0;
    size_t nf;
    const lb_field *t = lb_fields(&nf);
    for (size_t k = 0; k < nf; k++)
        if (lb__is_perf(&t[k]))
            json_object_set_new(thr, t[k].path, json_real(g->opt.threshold[k]));
    for (size_t i = 0; i < g->nrows; i++)
        json_array_append_new(rows, lb__json_row(&g->rows[i], g->opt.paired));
    json_object_set_new(doc, "scenario", json_string(g->side[0].scenario));
    json_object_set_new(doc, "baseline", json_string(g->side[0].file));
    json_object_set_new(doc, "current", json_string(g->side[1].file));
    json_object_set_new(doc, "passed", json_boolean(!fail));
    json_object_set_new(doc, "exit_code", json_integer(fail ? LB_GATE_REGRESSION : LB_GATE_PASS));
    json_object_set_new(doc, "normalized", json_boolean(g->opt.normalize));
    json_object_set_new(doc, "alpha", json_real(g->opt.alpha));
    json_object_set_new(doc, "correction", json_string("holm"));
    json_object_set_new(doc, "test", json_string(g->opt.paired ? "wilcoxon-signed-rank"
                                                               : "mann-whitney"));
    json_object_set_new(doc, "tests", json_integer((json_int_t)lb__count(g, lb__row_tested)));
    json_object_set_new(doc, "min_repeats", json_integer(LB_GATE_MIN_REPEATS));
    json_object_set_new(doc, "weak", json_boolean(lb__count(g, lb__row_weak) > 0));
    json_object_set_new(doc, "thresholds_pct", thr);
    json_object_set_new(doc, "results", rows);
    return lb__dump(f, doc);
}

/* github-action-benchmark's input: [{name, unit, value}], one file per direction. */
static int lb__write_benchmark(FILE *f, const lb__gate *g, bool bigger)
{
    json_t *list = json_array();
    for (size_t i = 0; i < g->nrows; i++) {
        const lb__row *r = &g->rows[i];
        if (!r->perf || (r->perf->gate == LB_CHECK_HIGHER) != bigger || isnan(r->cur))
            continue;
        char *name = NULL;
        if (asprintf(&name, "%s/%s %s", g->side[1].scenario, r->variant, r->metric) < 0)
            continue;
        bool scaled = g->opt.normalize && strcmp(r->metric, LB__THROUGHPUT) == 0;
        json_array_append_new(list, json_pack("{s:s,s:s,s:f}", "name", name, "unit",
                                              scaled ? "acquisitions/raw op" : r->perf->unit,
                                              "value", r->cur));
        free(name);
    }
    return lb__dump(f, list);
}

static int lb__write_smaller(FILE *f, const lb__gate *g)
{
    return lb__write_benchmark(f, g, false);
}

static int lb__write_bigger(FILE *f, const lb__gate *g)
{
    return lb__write_benchmark(f, g, true);
}

/* ---- files ---------------------------------------------------------------------------------- */

/* Through atomic.h, so a reader (a CI step posting the comment) never sees half a file, and a
 * FILE that is not a regular one (/dev/stdout, a FIFO, a link) keeps being what it is. */
static int lb__write_file(const char *path, int (*emit)(FILE *, const lb__gate *),
                          const lb__gate *g)
{
    lb_atomic a;
    if (lb_atomic_open(&a, path) != 0 || lb_atomic_commit(&a, emit(a.f, g) == 0) != 0)
        return lb__bad("cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int lb__write_outputs(const lb__gate *g)
{
    const struct {
        const char *path;
        int (*emit)(FILE *, const lb__gate *);
    } out[] = {
        {g->opt.markdown, lb__write_markdown},
        {g->opt.json, lb__write_json},
        {g->opt.bench_smaller, lb__write_smaller},
        {g->opt.bench_bigger, lb__write_bigger},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        if (out[i].path && lb__write_file(out[i].path, out[i].emit, g) != 0)
            rc = LB_GATE_BAD_INPUT;
    return rc;
}

/* ---- entry point ---------------------------------------------------------------------------- */

static int lb__load(lb__gate *g)
{
    int rc = 0;
    for (int s = 0; s < 2 && !rc; s++)
        rc = lb__load_side(&g->side[s], g->opt.input[s]);
    for (int s = 0; s < 2 && !rc && g->opt.normalize; s++)
        rc = lb__load_calibration(&g->side[s]);
    for (int s = 0; s < 2 && !rc && g->opt.paired; s++)
        if (!g->side[s].rounds)
            rc = lb__bad("--paired: %s %s is not a folder of rounds (subfolders each holding "
                         "one run's summary.json), so its runs cannot be paired",
                         g->side[s].role, g->opt.input[s]);
    if (!rc && strcmp(g->side[0].scenario, g->side[1].scenario) != 0)
        rc = lb__bad("%s is scenario \"%s\" but %s is scenario \"%s\": compare runs of the same "
                     "scenario", g->side[0].file, g->side[0].scenario, g->side[1].file,
                     g->side[1].scenario);
    return rc;
}

static void lb__free(lb__gate *g)
{
    for (int s = 0; s < 2; s++) {
        json_decref(g->side[s].root);
        free(g->side[s].file);
        for (size_t i = 0; g->side[s].rounds && g->side[s].rounds[i]; i++)
            free(g->side[s].rounds[i]);
        free(g->side[s].rounds);
    }
    free(g->rows);
}

int lb_gate_main(int argc, char **argv)
{
    lb__gate g = {.side = {{.role = "baseline"}, {.role = "current"}}};
    int rc = lb__parse_args(argc, argv, &g.opt);
    if (rc)
        return rc < 0 ? LB_GATE_PASS : rc;
    rc = lb__load(&g);
    if (!rc)
        rc = lb__compare(&g);
    if (!rc)
        rc = lb__decide_all(&g);
    if (!rc) {
        lb__write_table(stdout, &g);
        fflush(stdout);
        rc = lb__write_outputs(&g);
    }
    if (!rc)
        rc = lb__count(&g, lb__row_fails) ? LB_GATE_REGRESSION : LB_GATE_PASS;
    lb__free(&g);
    return rc;
}
