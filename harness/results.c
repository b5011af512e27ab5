/* results.c -- the write stage: summary.json, the CSVs, latency.hgrm, the comparison files and
 * the terminal tables (SPEC section 6; the CSV columns are documented in README.md).
 *
 * Every file goes through atomic.h: written under a hidden temporary name in its own folder,
 * flushed, fsync'd and renamed over NAME. A run killed at any point leaves either the old file,
 * the new one or a stray temporary, never a truncated NAME.
 *
 * JSON: a variant's figures are the rows of fields.h's table, written in its order; what is
 * not a figure (the description, per_client, repeats, expect) is written here by hand.
 * Latency figures with no samples (count 0) are written as null, not 0, because a 0 ms
 * p99 would read as a real (and impossibly good) figure to the gate and to a reader. The same
 * holds in the per-repeat lists: a repeat without acquisitions has null for its acquire p50 and
 * p99 (metrics.c leaves NAN there), and the gate skips those entries. */
#include "ranks.h"
#include "results.h"
#include "atomic.h"
#include "dlock.h"
#include "fields.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LB__JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(10) | JSON_PRESERVE_ORDER)

__attribute__((format(printf, 3, 4)))
static int lb__fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- files ---------------------------------------------------------------------------------- */

/* mkdir -p: an existing directory is fine. */
int lb_mkdirs(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return -1;
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            rc = -1;
        if (end)
            break;
        *s = '/';
    }
    struct stat st;
    if (rc == 0 && stat(p, &st) != 0)
        rc = -1;
    else if (rc == 0 && !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        rc = -1;
    }
    free(p);
    return rc;
}

/* A file of dir written by fn(f, arg), atomically; err names the file on failure. */
typedef bool (*lb__writer)(FILE *f, const void *arg);

static int lb__write_file(const char *dir, const char *name, lb__writer fn, const void *arg,
                          char *err, size_t errlen)
{
    char *path;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        return lb__fail(err, errlen, "%s/%s: out of memory", dir, name);
    lb_atomic a;
    int rc = lb_atomic_open(&a, path);
    if (rc == 0)
        rc = lb_atomic_commit(&a, fn(a.f, arg));
    if (rc != 0)
        lb__fail(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
    free(path);
    return rc;
}

static int lb__prepare_dir(const char *dir, char *err, size_t errlen)
{
    if (lb_mkdirs(dir) != 0)
        return lb__fail(err, errlen, "%s: %s", dir, strerror(errno));
    return 0;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static json_t *lb__real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *lb__str(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A figure of a latency block: null when there were no samples. */
static json_t *lb__lat(const lb_latency *l, double v)
{
    return l->count > 0 ? lb__real(v) : json_null();
}

static json_t *lb__client_json(const lb_client_summary *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "client", json_integer(c->client));
    json_object_set_new(o, "group", lb__str(c->group));
    json_object_set_new(o, "acquisitions", json_integer(c->acquisitions));
    json_object_set_new(o, "timeouts", json_integer(c->timeouts));
    json_object_set_new(o, "errors", json_integer(c->errors));
    json_object_set_new(o, "mean_wait_ms", lb__real(c->mean_wait_ms));
    json_object_set_new(o, "max_wait_ms", lb__real(c->max_wait_ms));
    return o;
}

/* One value per repeat, in repeat order; a repeat without the figure (NAN) is null. */
static json_t *lb__list(const double *x, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, lb__real(x[i]));
    return a;
}

/* Sets obj.path (dotted) to v, creating the objects on the way; takes the reference to v. */
static void lb__set_path(json_t *obj, const char *path, json_t *v)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        json_object_set_new(obj, path, v);
        return;
    }
    char *key = strndup(path, (size_t)(dot - path));
    json_t *next = key ? json_object_get(obj, key) : NULL;
    if (key && !next) {
        next = json_object();
        json_object_set_new(obj, key, next);
    }
    if (next)
        lb__set_path(next, dot + 1, v);
    else
        json_decref(v);
    free(key);
}

/* The lists of the figures fields.h marks `listed`, at the figures' own paths, so the gate
 * finds "repeats.acquire_ms.p99". */
static json_t *lb__repeats_json(const lb_summary *s)
{
    json_t *o = json_object();
    size_t nf;
    const lb_field *f = lb_fields(&nf);
    for (size_t k = 0; k < nf; k++)
        if (f[k].listed)
            lb__set_path(o, f[k].path, lb__list(lb_metrics_repeats(s, f[k].path), s->repeats.n));
    return o;
}

static json_t *lb__expect_json(const lb_summary *s)
{
    json_t *o = json_object(), *fails = json_array();
    json_object_set_new(o, "passed", json_boolean(s->expect.passed));
    for (size_t i = 0; i < s->expect.nfailures; i++) {
        const lb_expect_failure *f = &s->expect.failures[i];
        json_array_append_new(fails, json_pack("{s:s, s:o, s:s}", "path", f->path,
                                               "value", lb__real(f->value), "bound", f->bound));
    }
    json_object_set_new(o, "failures", fails);
    return o;
}

static void lb__variant_head(json_t *o, const lb_summary *s)
{
    json_object_set_new(o, "name", lb__str(s->name));
    json_object_set_new(o, "complete", json_boolean(s->complete));
    json_object_set_new(o, "algorithm", lb__str(s->algorithm));
    json_object_set_new(o, "wait", lb__str(s->wait));
    json_object_set_new(o, "backoff", lb__str(s->backoff));
    json_object_set_new(o, "driver", lb__str(s->driver));
    if (s->simulated) {  /* times in the figures are virtual; the model that made them */
        const lb_sim *m = &s->sim_model;
        json_object_set_new(o, "sim", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I}",
            "rtt_us", (json_int_t)m->rtt_us,
            "server_us_per_command", (json_int_t)m->server_us_per_command,
            "script_us_per_call", (json_int_t)m->script_us_per_call,
            "client_us_per_command", (json_int_t)m->client_us_per_command,
            "client_cores", (json_int_t)m->client_cores, "cores", (json_int_t)m->cores,
            "server_hz", (json_int_t)m->server_hz, "virtual_ms", lb__real(s->sim_virtual_ms), "wall_ms", lb__real(s->sim_wall_ms),
            "events", (json_int_t)s->sim_events));
    }
}

/* A figure of fields.h's table: an integer, a number, or null when it has no value (a latency
 * without samples, or a ratio that is not finite). */
static json_t *lb__figure(const lb_field *f, const lb_summary *s)
{
    if (!lb_field_has_value(f, s))
        return json_null();
    double v = lb_field_get(f, s);
    return f->is_int ? json_integer((json_int_t)v) : lb__real(v);
}

/* One VARIANT object of SPEC section 6, keys in its order: the figures are the table's rows,
 * in the table's order, so what is written and what the table names are the same list. */
static json_t *lb__variant_json(const lb_summary *s)
{
    json_t *o = json_object(), *pc = json_array();
    size_t nf;
    const lb_field *f = lb_fields(&nf);
    lb__variant_head(o, s);
    for (size_t k = 0; k < nf; k++)
        lb__set_path(o, f[k].path, lb__figure(&f[k], s));
    for (size_t i = 0; i < s->fairness.nclients; i++)
        json_array_append_new(pc, lb__client_json(&s->fairness.per_client[i]));
    lb__set_path(o, "fairness.per_client", pc);
    if (s->repeats.n > 0)
        json_object_set_new(o, "repeats", lb__repeats_json(s));
    json_object_set_new(o, "expect", lb__expect_json(s));
    return o;
}

/* Takes the reference to doc. */
static int lb__write_json(const char *dir, const char *name, json_t *doc, char *err,
                          size_t errlen)
{
    char *text = doc ? json_dumps(doc, LB__JSON_FLAGS) : NULL;
    json_decref(doc);
    if (!text)
        return lb__fail(err, errlen, "%s/%s: out of memory", dir, name);
    char *path;
    int rc = asprintf(&path, "%s/%s", dir, name) < 0 ? -1 : 0;
    if (rc == 0) {
        size_t len = strlen(text);
        text[len] = '\n';   /* the dump's NUL becomes a final newline; len + 1 bytes written */
        rc = lb_atomic_write(path, text, len + 1);
        if (rc != 0)
            lb__fail(err, errlen, "%s: %s", path, strerror(errno));
        free(path);
    } else {
        lb__fail(err, errlen, "%s/%s: out of memory", dir, name);
    }
    free(text);
    return rc;
}

int lb_results_write_summary(const char *dir, const lb_summary *s, char *err, size_t errlen)
{
    if (lb__prepare_dir(dir, err, errlen) != 0)
        return -1;
    return lb__write_json(dir, "summary.json", lb__variant_json(s), err, errlen);
}

/* ---- CSV ------------------------------------------------------------------------------------ */

/* Milliseconds with 3 decimals from microseconds, exactly (no floating point). */
static void lb__put_ms(FILE *f, int64_t us)
{
    uint64_t a = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    fprintf(f, "%s%" PRIu64 ".%03" PRIu64, us < 0 ? "-" : "", a / 1000, a % 1000);
}

/* RFC 4180: quoted when it holds a comma, quote or line break ("clients=0,1"). */
static void lb__put_str(FILE *f, const char *s)
{
    s = s ? s : "";
    if (!s[strcspn(s, ",\"\r\n")]) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char *lb__result_name(uint8_t r)
{
    static const char *const names[] = {"ok", "timeout", "error", "canceled", "abandoned"};
    return r < sizeof names / sizeof names[0] ? names[r] : "unknown";
}

static const char *lb__end_name(uint8_t e)
{
    static const char *const names[] = {"", "released", "notowner", "kept", "crashed", "failed"};
    return e < sizeof names / sizeof names[0] ? names[e] : "";
}

typedef struct {
    const lb_summary    *s;
    const lb_run_result *run;
} lb__run_files;

static const char *lb__client_group(const lb_summary *s, size_t i)
{
    return i < s->fairness.nclients ? s->fairness.per_client[i].group : "";
}

static void lb__put_acquisition(FILE *f, const lb__run_files *rf, const lb_acquisition *a)
{
    size_t client = (size_t)a->client;
    fprintf(f, "%d,", a->client);
    lb__put_str(f, lb__client_group(rf->s, client));
    fprintf(f, ",%" PRId32 ",", a->key);
    lb__put_ms(f, a->call_us);
    fputc(',', f);
    lb__put_ms(f, a->end_us);
    fputc(',', f);
    lb__put_ms(f, a->end_us - a->call_us);
    fprintf(f, ",%s,%" PRIu32 ",%" PRIu32 ",%" PRIu64 ",", lb__result_name(a->result),
            a->attempts, a->commands, a->fence);
    if (a->left_us >= 0)
        lb__put_ms(f, a->left_us);
    fputc(',', f);
    if (a->released_us >= 0)
        lb__put_ms(f, a->released_us);
    fprintf(f, ",%s,%d,", lb__end_name(a->end), a->overlap ? 1 : 0);
    if (a->intended_us >= 0 && rf->run->open_loop)
        lb__put_ms(f, a->intended_us);
    fputc('\n', f);
}

static bool lb__acquisitions_csv(FILE *f, const void *arg)
{
    const lb__run_files *rf = arg;
    /* the meters' logs merged by call time (ties: client number) */
    lb_acq_merge *m = lb_acq_merge_new(rf->run->meters, rf->run->nmeters, LB_ACQ_BY_CALL);
    if (!m) {
        errno = ENOMEM;
        return false;
    }
    fputs("client,group,key,call_ms,end_ms,wait_ms,result,attempts,commands,fence,left_ms,"
          "released_ms,end,overlap,intended_ms\n", f);
    for (const lb_acquisition *a; (a = lb_acq_merge_next(m));)
        lb__put_acquisition(f, rf, a);
    lb_acq_merge_free(m);
    return true;
}

static bool lb__timeline_csv(FILE *f, const void *arg)
{
    const lb_summary *s = ((const lb__run_files *)arg)->s;
    fputs("t_ms,acquisitions,timeouts,errors,holders,active_faults\n", f);
    for (size_t i = 0; i < s->nbins; i++) {
        const lb_timeline_bin *b = &s->timeline[i];
        fprintf(f, "%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "\n",
                b->t_ms, b->acquisitions, b->timeouts, b->errors, b->holders, b->active_faults);
    }
    return true;
}

static bool lb__events_csv(FILE *f, const void *arg)
{
    const lb_run_result *run = ((const lb__run_files *)arg)->run;
    fputs("at_ms,start_ms,end_ms,action,target,detail,status\n", f);
    for (size_t i = 0; i < run->nfaults; i++) {
        const lb_fault_record *e = &run->faults[i];
        fprintf(f, "%" PRId64 ",", e->at_ms);
        if (e->start_us >= 0)
            lb__put_ms(f, e->start_us);
        fputc(',', f);
        if (e->end_us >= 0)
            lb__put_ms(f, e->end_us);
        fprintf(f, ",%s,", lb_event_action_name(e->action));
        lb__put_str(f, e->target);
        fputc(',', f);
        lb__put_str(f, e->detail);
        fprintf(f, ",%s\n", e->applied ? "applied" : "skipped");
    }
    return true;
}

static bool lb__clients_csv(FILE *f, const void *arg)
{
    const lb_summary *s = ((const lb__run_files *)arg)->s;
    fputs("client,group,acquisitions,timeouts,errors,mean_wait_ms,max_wait_ms\n", f);
    for (size_t i = 0; i < s->fairness.nclients; i++) {
        const lb_client_summary *c = &s->fairness.per_client[i];
        fprintf(f, "%d,", c->client);
        lb__put_str(f, c->group);
        fprintf(f, ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%.3f,%.3f\n", c->acquisitions,
                c->timeouts, c->errors, c->mean_wait_ms, c->max_wait_ms);
    }
    return true;
}

static bool lb__hgrm(FILE *f, const void *arg)
{
    lb_hist *h = lb_metrics_merge_acquire(((const lb__run_files *)arg)->run);
    if (!h) {
        errno = ENOMEM;
        return false;
    }
    bool ok = lb_hist_write_hgrm(h, f, 1000.0) == 0;
    lb_hist_free(h);
    return ok;
}

int lb_results_write_run(const char *dir, const lb_summary *s, const lb_run_result *run,
                         char *err, size_t errlen)
{
    static const struct {
        const char *name;
        lb__writer  fn;
    } files[] = {
        {"acquisitions.csv", lb__acquisitions_csv}, {"timeline.csv", lb__timeline_csv},
        {"events.csv", lb__events_csv},             {"clients.csv", lb__clients_csv},
        {"latency.hgrm", lb__hgrm},
    };
    lb__run_files rf = {s, run};
    if (lb_results_write_summary(dir, s, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (lb__write_file(dir, files[i].name, files[i].fn, &rf, err, errlen) != 0)
            return -1;
    return 0;
}

/* ---- the scenario folder -------------------------------------------------------------------- */

/* lockbench-mpi: how many ranks ran the clients, each one's host, and how far apart their clocks
 * may be after correction (null before a run has measured them). Nothing in one process. */
static void lb__ranks_json(json_t *o)
{
    const lb_ranks *d = lb_ranks_get();
    if (!d)
        return;
    json_t *hosts = json_array();
    for (int r = 0; r < d->nranks; r++)
        json_array_append_new(hosts, lb__str(d->hosts[r]));
    json_object_set_new(o, "ranks", json_integer(d->nranks));
    json_object_set_new(o, "hosts", hosts);
    json_object_set_new(o, "clock_offset_bound_us", d->clock_bound_us >= 0
                                                        ? json_integer(d->clock_bound_us)
                                                        : json_null());
    json_t *per = json_array();
    for (int r = 0; d->clients_per_rank && d->clock_bound_us >= 0 && r < d->nranks; r++)
        json_array_append_new(per, json_integer(d->clients_per_rank[r]));
    json_object_set_new(o, "clients_per_rank", per);
}

static json_t *lb__top_json(const lb_scenario *sc, const lb_summary *v, size_t n,
                            const lb_calibration *cal, const char *started_at, bool complete)
{
    json_t *o = json_object(), *vars = json_array();
    bool passed = complete;
    for (size_t i = 0; i < n; i++) {
        passed = passed && v[i].expect.passed;
        json_array_append_new(vars, lb__variant_json(&v[i]));
    }
    json_object_set_new(o, "scenario", lb__str(sc->name));
    json_object_set_new(o, "complete", json_boolean(complete));
    json_object_set_new(o, "passed", json_boolean(passed));
    json_object_set_new(o, "started_at", lb__str(started_at));
    json_object_set_new(o, "lockbench_version", json_string(DLOCK_VERSION));
    lb__ranks_json(o);
    json_object_set_new(o, "calibration",
                        json_pack("{s:o, s:o}", "ping_rtt_us",
                                  cal ? lb__real(cal->ping_rtt_us) : json_null(),
                                  "raw_ops_per_s",
                                  cal ? lb__real(cal->raw_ops_per_s) : json_null()));
    json_object_set_new(o, "variants", vars);
    return o;
}

/* The comparison's figures, numbers with no data as 0 (the CSV feeds gnuplot). */
static double lb__or0(const lb_latency *l, double v)
{
    return l->count > 0 ? v : 0;
}

typedef struct {
    const lb_summary *v;
    size_t            n;
} lb__variants;

static bool lb__comparison_md(FILE *f, const void *arg)
{
    const lb__variants *vs = arg;
    fputs("| variant | algorithm | wait | backoff | acquisitions | throughput/s | p50 ms | p99 ms "
          "| timeouts | overlaps | lost updates | commands/acq | expect |\n"
          "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n", f);
    for (size_t i = 0; i < vs->n; i++) {
        const lb_summary *s = &vs->v[i];
        const char *ge = s->dropped > 0 ? "≥ " : "";  /* dropped arrivals: lower bounds */
        fprintf(f, "| %s | %s | %s | %s | %" PRId64 " | %.1f | %s%.3f | %s%.3f | %" PRId64
                   " | %" PRId64 " | %" PRId64 " | %.2f | %s |\n",
                s->name, s->algorithm, s->wait, s->backoff, s->acquisitions, s->throughput_per_s,
                ge, lb__or0(&s->acquire_ms, s->acquire_ms.p50),
                ge, lb__or0(&s->acquire_ms, s->acquire_ms.p99), s->timeouts, s->overlaps,
                s->counter.lost_updates, s->redis.commands_per_acquisition,
                s->expect.passed ? "pass" : "FAIL");
    }
    return true;
}

static json_t *lb__comparison_row(const lb_summary *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "variant", lb__str(s->name));
    json_object_set_new(o, "algorithm", lb__str(s->algorithm));
    json_object_set_new(o, "wait", lb__str(s->wait));
    json_object_set_new(o, "backoff", lb__str(s->backoff));
    json_object_set_new(o, "acquisitions", json_integer(s->acquisitions));
    json_object_set_new(o, "throughput_per_s", lb__real(s->throughput_per_s));
    json_object_set_new(o, "p50_ms", lb__lat(&s->acquire_ms, s->acquire_ms.p50));
    json_object_set_new(o, "p99_ms", lb__lat(&s->acquire_ms, s->acquire_ms.p99));
    json_object_set_new(o, "timeouts", json_integer(s->timeouts));
    json_object_set_new(o, "overlaps", json_integer(s->overlaps));
    json_object_set_new(o, "lost_updates", json_integer(s->counter.lost_updates));
    json_object_set_new(o, "commands_per_acquisition",
                        lb__real(s->redis.commands_per_acquisition));
    json_object_set_new(o, "expect", json_string(s->expect.passed ? "pass" : "fail"));
    return o;
}

static bool lb__comparison_csv(FILE *f, const void *arg)
{
    const lb__variants *vs = arg;
    fputs("variant,throughput_per_s,p50_ms,p99_ms,commands_per_acquisition,elapsed_ms,"
          "total_commands\n", f);
    for (size_t i = 0; i < vs->n; i++) {
        const lb_summary *s = &vs->v[i];
        lb__put_str(f, s->name);
        fprintf(f, ",%.3f,%.3f,%.3f,%.4f,%.3f,%" PRId64 "\n", s->throughput_per_s,
                lb__or0(&s->acquire_ms, s->acquire_ms.p50),
                lb__or0(&s->acquire_ms, s->acquire_ms.p99), s->redis.commands_per_acquisition,
                s->elapsed_ms, s->redis.commands);
    }
    return true;
}

static int lb__write_comparison(const char *dir, const lb_summary *v, size_t n, char *err,
                                size_t errlen)
{
    lb__variants vs = {v, n};
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(rows, lb__comparison_row(&v[i]));
    if (lb__write_json(dir, "comparison.json", rows, err, errlen) != 0 ||
        lb__write_file(dir, "comparison.md", lb__comparison_md, &vs, err, errlen) != 0 ||
        lb__write_file(dir, "comparison.csv", lb__comparison_csv, &vs, err, errlen) != 0)
        return -1;
    return 0;
}

static int lb__write_scenario(const char *dir, const lb_scenario *s, char *err, size_t errlen)
{
    char *text = lb_scenario_dump(s), *path = NULL;
    int rc = text && asprintf(&path, "%s/scenario.json", dir) >= 0 ? 0 : -1;
    if (rc != 0) {
        path = NULL;
        lb__fail(err, errlen, "%s/scenario.json: out of memory", dir);
    } else if ((rc = lb_atomic_write(path, text, strlen(text))) != 0) {
        lb__fail(err, errlen, "%s: %s", path, strerror(errno));
    }
    free(path);
    free(text);
    return rc;
}

int lb_results_write_top(const char *dir, const lb_scenario *s, const lb_summary *variants,
                         size_t n, const lb_calibration *cal, const char *started_at,
                         bool complete, char *err, size_t errlen)
{
    if (lb__prepare_dir(dir, err, errlen) != 0 || lb__write_scenario(dir, s, err, errlen) != 0)
        return -1;
    if (n > 1 && lb__write_comparison(dir, variants, n, err, errlen) != 0)
        return -1;
    /* summary.json last: its presence is what the gate takes as "the run finished writing" */
    return lb__write_json(dir, "summary.json",
                          lb__top_json(s, variants, n, cal, started_at, complete), err, errlen);
}

int lb_results_write_begun(const char *dir, const lb_scenario *s, const char *started_at,
                           char *err, size_t errlen)
{
    return lb__write_json(dir, "summary.json", lb__top_json(s, NULL, 0, NULL, started_at, false),
                          err, errlen);
}

/* ---- clearing a folder for --force ---------------------------------------------------------- */

/* Every file a run writes: at the top of the scenario folder (results.c's, report.c's index.html,
 * plot.c's comparison charts) and in each variant folder and its repeat-<k> folders (the run's
 * files and plot.c's charts). A name added to a run's output must be added here too. */
static const char *const lb__top_files[] = {
    "summary.json", "scenario.json", "comparison.md", "comparison.json", "comparison.csv",
    "index.html", NULL};
static const char *const lb__top_charts[] = {"compare-latency", "compare-bars", "compare-work",
                                             NULL};
static const char *const lb__variant_files[] = {
    "summary.json", "acquisitions.csv", "latency.hgrm", "timeline.csv", "events.csv",
    "clients.csv", NULL};
static const char *const lb__variant_charts[] = {"latency", "fairness", "timeline", "holders",
                                                 NULL};

static bool lb__named(const char *name, const char *const *files, const char *const *charts)
{
    for (; *files; files++)
        if (strcmp(name, *files) == 0)
            return true;
    for (; *charts; charts++) {
        size_t n = strlen(*charts);
        if (strncmp(name, *charts, n) == 0 &&
            (strcmp(name + n, ".png") == 0 || strcmp(name + n, ".svg") == 0))
            return true;
    }
    return false;
}

/* One of ours, or the temporary of one (".NAME.XXXXXX") that a killed run left behind. */
static bool lb__ours(const char *name, const char *const *files, const char *const *charts)
{
    if (lb__named(name, files, charts))
        return true;
    const char *dot = name[0] == '.' ? strrchr(name, '.') : NULL;
    if (!dot || dot == name || dot[1] == '\0')
        return false;
    char *base = strndup(name + 1, (size_t)(dot - name - 1));
    bool ours = base && lb__named(base, files, charts);
    free(base);
    return ours;
}

static bool lb__is_repeat_dir(const char *name)
{
    const char *k = name + strlen("repeat-");
    return strncmp(name, "repeat-", strlen("repeat-")) == 0 && *k &&
           strspn(k, "0123456789") == strlen(k);
}

/* Removes dir's regular files that are ours (and, in a variant folder, its repeat-<k> folders'
 * likewise); then dir itself when that left it empty. *removed counts what went. */
static int lb__clear_dir(const char *dir, bool top, int *removed, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return lb__fail(err, errlen, "%s: %s", dir, strerror(errno));
    int rc = 0, mine = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        struct stat st;
        char *path;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0) {
            rc = lb__fail(err, errlen, "%s: out of memory", dir);
            break;
        }
        if (lstat(path, &st) != 0) {
            rc = errno == ENOENT ? 0 : lb__fail(err, errlen, "%s: %s", path, strerror(errno));
        } else if (S_ISREG(st.st_mode) && (top ? lb__ours(e->d_name, lb__top_files, lb__top_charts)
                                               : lb__ours(e->d_name, lb__variant_files,
                                                          lb__variant_charts))) {
            if (unlink(path) == 0)
                mine++;
            else
                rc = lb__fail(err, errlen, "%s: %s", path, strerror(errno));
        } else if (S_ISDIR(st.st_mode) && (top || lb__is_repeat_dir(e->d_name))) {
            rc = lb__clear_dir(path, false, &mine, err, errlen);
        }
        free(path);
    }
    closedir(d);
    if (rc == 0 && !top && mine > 0 && rmdir(dir) == 0)
        mine++;
    *removed += mine;
    return rc;
}

int lb_results_clear(const char *dir, char *err, size_t errlen)
{
    int removed = 0;
    return lb__clear_dir(dir, true, &removed, err, errlen);
}

/* ---- the terminal --------------------------------------------------------------------------- */

void lb_results_print_variant(FILE *f, const lb_summary *s)
{
    const lb_latency *a = &s->acquire_ms;
    fprintf(f, "%s (%s, %s, %s): %" PRId64 " clients, %.0f ms\n", s->name, s->algorithm,
            s->wait, s->backoff, s->clients, s->elapsed_ms);
    fprintf(f, "  acquisitions %-10" PRId64 " throughput %.1f/s\n", s->acquisitions,
            s->throughput_per_s);
    /* arrivals dropped were never timed: the percentiles of those that were are lower bounds */
    const char *ge = s->dropped > 0 ? ">=" : "";
    if (a->count > 0)
        fprintf(f, "  acquire ms   p50 %s%.3f  p99 %s%.3f  max %s%.3f%s\n", ge, a->p50, ge, a->p99,
                ge, a->max, s->schedule_lag_ms.count > 0 ? "  (from the intended start)" : "");
    else
        fprintf(f, "  acquire ms   no acquisitions\n");
    if (s->schedule_lag_ms.count > 0) {
        const lb_latency *v = &s->service_ms, *l = &s->schedule_lag_ms;
        if (v->count > 0)
            fprintf(f, "  service ms   p50 %.3f  p99 %.3f  max %.3f  (from the call)\n", v->p50,
                    v->p99, v->max);
        fprintf(f, "  schedule lag ms  mean %.3f  p99 %.3f  max %.3f  dropped %" PRId64 "%s\n",
                l->mean, l->p99, l->max, s->dropped,
                s->dropped > 0 ? " (latency percentiles are lower bounds)" : "");
    }
    fprintf(f, "  timeouts %" PRId64 "  errors %" PRId64 "  overlaps %" PRId64 "\n", s->timeouts,
            s->errors, s->overlaps);
    fprintf(f, "  counter acked %" PRId64 "  actual %" PRId64 "  lost %" PRId64 "\n",
            s->counter.acked, s->counter.actual, s->counter.lost_updates);
    fprintf(f, "  commands/acq %.2f  jain %.3f\n", s->redis.commands_per_acquisition,
            s->fairness.jain);
}

#define LB__NCOLS 10
#define LB__CELL  48

static void lb__comparison_cells(const lb_summary *s, char cell[LB__NCOLS][LB__CELL])
{
    snprintf(cell[0], LB__CELL, "%s", s->name ? s->name : "");
    snprintf(cell[1], LB__CELL, "%s", s->algorithm ? s->algorithm : "");
    snprintf(cell[2], LB__CELL, "%" PRId64, s->acquisitions);
    snprintf(cell[3], LB__CELL, "%.1f", s->throughput_per_s);
    const char *ge = s->dropped > 0 ? ">=" : "";  /* dropped arrivals: lower bounds */
    snprintf(cell[4], LB__CELL, "%s%.3f", ge, lb__or0(&s->acquire_ms, s->acquire_ms.p50));
    snprintf(cell[5], LB__CELL, "%s%.3f", ge, lb__or0(&s->acquire_ms, s->acquire_ms.p99));
    snprintf(cell[6], LB__CELL, "%" PRId64, s->timeouts);
    snprintf(cell[7], LB__CELL, "%" PRId64, s->overlaps);
    snprintf(cell[8], LB__CELL, "%.2f", s->redis.commands_per_acquisition);
    snprintf(cell[9], LB__CELL, "%s", s->expect.passed ? "pass" : "FAIL");
}

/* Columns as wide as their widest cell; names left-aligned, numbers right-aligned. */
void lb_results_print_comparison(FILE *f, const lb_summary *variants, size_t n)
{
    static const char *const head[LB__NCOLS] = {"variant", "algorithm", "acquisitions",
                                                "throughput/s", "p50 ms", "p99 ms", "timeouts",
                                                "overlaps", "commands/acq", "expect"};
    char (*cells)[LB__NCOLS][LB__CELL] = malloc((n + 1) * sizeof *cells);
    if (!cells)
        return;
    int width[LB__NCOLS];
    for (int c = 0; c < LB__NCOLS; c++) {
        snprintf(cells[0][c], LB__CELL, "%s", head[c]);
        width[c] = (int)strlen(head[c]);
    }
    for (size_t i = 0; i < n; i++)
        lb__comparison_cells(&variants[i], cells[i + 1]);
    for (size_t i = 1; i <= n; i++)
        for (int c = 0; c < LB__NCOLS; c++)
            if ((int)strlen(cells[i][c]) > width[c])
                width[c] = (int)strlen(cells[i][c]);
    for (size_t i = 0; i <= n; i++) {
        for (int c = 0; c < LB__NCOLS; c++) {
            bool left = c < 2, last = c == LB__NCOLS - 1;
            fprintf(f, "%s%*s", c ? "  " : "", last ? 0 : left ? -width[c] : width[c],
                    cells[i][c]);
        }
        fputc('\n', f);
    }
    free(cells);
}

void lb_results_print_failures(FILE *f, const lb_summary *s)
{
    for (size_t i = 0; i < s->expect.nfailures; i++) {
        const lb_expect_failure *e = &s->expect.failures[i];
        fprintf(f, "EXPECT FAILED %s: %s = %g, expected %s\n", s->name ? s->name : "", e->path,
                e->value, e->bound);
    }
}
