/* explore.c -- the explore command: a scenario's seeds searched in the simulator for one that
 * fails the scenario's expectations, the failure replayed, written out resolved and shrunk.
 *
 *   load the file once; every draw of a run (its fault schedule, scenario.c, and its clients'
 *           streams) is a function of the seed, so a seed names a whole run
 *   search  J worker processes take seeds S..S+N-1 from a shared counter, run every variant in
 *           the simulator, judge it by its expect and report seed and verdict down one pipe;
 *           a passing seed writes nothing. The first failure is the lowest failing seed: once
 *           one fails, no worker takes a higher seed, and the search ends when every lower one
 *           is judged -- the same answer on any number of workers. --all searches them all.
 *   then    for the first failure: its results folder (the run of that seed), failure-<seed>.json
 *           (the failing variant with every draw resolved: it runs anywhere), minimized.json
 *           (shrink.c), and with --confirm K the minimized file run K times on the real driver
 *   out     explore.json, written when the search begins with "complete": false and replaced
 *           (atomically) when it ends; an interrupted explore writes what it found, incomplete.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "atomic.h"
#include "calibrate.h"
#include "explore.h"
#include "metrics.h"
#include "monotonic.h"
#include "ranks.h"
#include "results.h"
#include "run.h"
#include "sim/sim.h"

#define MAX_SETS 256
#define MAX_JOBS 256

typedef struct explore {
    const char  *file;
    char        *text;              /* the file, read once */
    size_t       len;
    lb_override  sets[MAX_SETS + 2]; /* --set..., then seed= and driver=sim */
    size_t       nsets;
    char         seed_arg[32];
    lb_sim       calibration;
    bool         calibrated;
    int64_t      from, seeds;
    int          rank, stride;      /* under lockbench-mpi: this rank takes seeds from+rank,
                                       from+rank+stride, ...; else 0 and 1 */
    int          jobs, confirm;
    bool         all, quiet, force;
    const char  *out;
    char        *dir;
    char        *calibration_file;
} explore;

/* What a worker says of one seed. Smaller than PIPE_BUF: many workers write one pipe whole. */
typedef struct report {
    int64_t seed;
    int32_t verdict;                /* 0 passed, 1 failed, 2 bad input, 3 environment */
    int32_t variant;                /* the first variant that failed */
    char    msg[480];
} report;

/* Shared by the workers (an anonymous shared mapping). */
typedef struct shared {
    atomic_int_fast64_t next;       /* the next seed offset (this rank's k-th seed) to take */
    atomic_int_fast64_t limit;      /* no seed offset at or above it is taken */
} shared;

static volatile sig_atomic_t interrupted;
static pid_t workers[MAX_JOBS];
static volatile sig_atomic_t nworkers;   /* workers[0 .. nworkers-1] are running */

/* Ctrl-C may come while a run of the replay or --confirm has its own handler in place (run.c),
 * which stops that run and the runner: either way, explore stops. */
static bool stopping(void)
{
    return interrupted || lb_runner_stopped();
}

/* The workers ignore Ctrl-C (the terminal sends it to the whole group); the first stop signal
 * ends them here, whatever the parent is doing when it comes: their pipe then closes and the
 * search loop ends on it. kill() is async-signal-safe. */
static void on_interrupt(int sig)
{
    for (int i = 0; i < nworkers; i++)
        kill(workers[i], SIGKILL);
    if (!interrupted)
        interrupted = sig;
    lb_runner_stop();   /* a run of the replay or --confirm in progress stops too */
}

/* ---- one seed ------------------------------------------------------------------------------ */

/* The scenario with seed `seed` on the simulator. */
static int load_seed(const explore *x, int64_t seed, lb_scenario **s, char *err, size_t errlen)
{
    explore *w = (explore *)x;
    lb_load_options opt = {.overrides = w->sets, .noverrides = x->nsets,
                           .calibration = x->calibrated ? &x->calibration : NULL};
    snprintf(w->seed_arg, sizeof w->seed_arg, "%" PRId64, seed);
    return lb_scenario_load_buffer(x->file, x->text, x->len, &opt, s, err, errlen);
}

int lb_explore_simulate(const lb_scenario *v, lb_summary *sum, char *err, size_t errlen)
{
    lb_run_result run;
    lb_sim_stats st;
    lb_run_target t = {.prefix = "lockbench:explore:", .nservers = v->redis.servers,
                       .label = v->variant};
    *sum = (lb_summary){0};
    if (lb_sim_run(v, &t, &run, &st, err, errlen) < 0)
        return -1;
    run.sim.virtual_us = st.virtual_us;
    run.sim.wall_us = st.wall_us;
    run.sim.events = st.events;
    int rc = lb_metrics_compute(v, &run, sum);
    if (rc == 0)
        lb_metrics_check(v, sum);
    else
        snprintf(err, errlen, "out of memory");
    lb_run_result_free(&run);
    return rc;
}

/* Runs every variant of the seed until one fails. */
static report judge(const explore *x, int64_t seed)
{
    report r = {.seed = seed, .variant = -1};
    lb_scenario *s = NULL;
    if (load_seed(x, seed, &s, r.msg, sizeof r.msg) < 0) {
        r.verdict = 2;
        return r;
    }
    for (size_t vi = 0; vi < lb_scenario_variant_count(s) && r.verdict == 0; vi++) {
        lb_summary sum;
        if (lb_explore_simulate(lb_scenario_variant(s, vi), &sum, r.msg, sizeof r.msg) < 0) {
            r.verdict = 3;
            break;
        }
        if (!sum.expect.passed) {
            r.verdict = 1;
            r.variant = (int32_t)vi;
        }
        lb_summary_free(&sum);
    }
    lb_scenario_free(s);
    return r;
}

/* ---- the search ---------------------------------------------------------------------------- */

static void worker(const explore *x, shared *sh, int fd)
{
    signal(SIGINT, SIG_IGN);   /* the terminal's Ctrl-C is the parent's to handle */
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(0);
    for (;;) {
        int64_t k = atomic_fetch_add(&sh->next, 1);
        if (k >= atomic_load(&sh->limit))
            break;
        report r = judge(x, x->from + x->rank + k * x->stride);
        if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
            _exit(3);
    }
    _exit(0);
}

typedef struct failure {
    int64_t seed;
    int32_t variant;         /* the first variant that failed */
} failure;

typedef struct search {
    int64_t  run;            /* seeds judged */
    failure *failing;        /* by seed once sorted */
    size_t   nfailing, cap;
    double   seconds;
    int      env_error;      /* 2 or 3 when a worker could not judge a seed */
    char     msg[512];
} search;

static void progress(const explore *x, const search *s, double elapsed, bool last)
{
    if (x->quiet || !isatty(STDERR_FILENO))
        return;
    fprintf(stderr, "\r\033[Kexplore: %" PRId64 "/%" PRId64 " seeds, %zu failed, %.0f seeds/s%s",
            s->run, x->seeds, s->nfailing, elapsed > 0 ? (double)s->run / elapsed : 0.0,
            last ? "\n" : "");
}

static void record_failure(search *s, failure f)
{
    if (s->nfailing == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        if (!(s->failing = realloc(s->failing, s->cap * sizeof *s->failing)))
            abort();
    }
    s->failing[s->nfailing++] = f;
}

/* How many of the seeds this rank takes: every stride-th from its own. */
static int64_t mine(const explore *x)
{
    return x->seeds > x->rank ? (x->seeds - x->rank + x->stride - 1) / x->stride : 0;
}

static void sort_failures(search *s);

static int run_search(const explore *x, search *s)
{
    int fds[2];
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || pipe(fds) < 0) {
        snprintf(s->msg, sizeof s->msg, "cannot set up the workers: %s", strerror(errno));
        return LB_EXIT_ENV;
    }
    atomic_init(&sh->next, 0);
    atomic_init(&sh->limit, mine(x));
    int64_t start = dlock__mono_us(), shown = 0;
    fflush(NULL);
    for (nworkers = 0; nworkers < x->jobs && !stopping(); nworkers++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            worker(x, sh, fds[1]);
        }
        if (pid < 0)
            break;
        workers[nworkers] = pid;
    }
    if (stopping())   /* a signal between a fork and its worker's entry above */
        for (int i = 0; i < nworkers; i++)
            kill(workers[i], SIGKILL);
    close(fds[1]);
    report r;
    ssize_t n;
    while (nworkers > 0 && (n = read(fds[0], &r, sizeof r)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;   /* a stop signal ended the workers, and EOF follows */
        if (n < 0)
            break;
        if (n != (ssize_t)sizeof r)
            continue;
        s->run++;
        if (r.verdict == 1) {
            record_failure(s, (failure){r.seed, r.variant});
            if (!x->all) {   /* no higher seed is taken; the lower ones finish */
                int64_t lim = atomic_load(&sh->limit);
                int64_t k = (r.seed - x->from - x->rank) / x->stride;
                while (k < lim && !atomic_compare_exchange_weak(&sh->limit, &lim, k))
                    ;
            }
        } else if (r.verdict != 0 && !s->env_error) {
            s->env_error = r.verdict;
            snprintf(s->msg, sizeof s->msg, "seed %" PRId64 ": %s", r.seed, r.msg);
            atomic_store(&sh->limit, 0);
        }
        int64_t now = dlock__mono_us();
        if (now - shown > 100000) {
            progress(x, s, (double)(now - start) / 1e6, false);
            shown = now;
        }
    }
    close(fds[0]);
    /* A worker that died (a crash, a sanitizer's report) took its seed with it: the search
     * cannot say that seed passed. */
    for (int i = 0; i < nworkers; i++) {
        int status = 0;
        while (waitpid(workers[i], &status, 0) < 0 && errno == EINTR)
            ;
        bool died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
        if (died && !stopping() && !s->env_error) {
            s->env_error = LB_EXIT_ENV;
            if (WIFSIGNALED(status))
                snprintf(s->msg, sizeof s->msg, "a worker died of signal %d (%s)",
                         WTERMSIG(status), strsignal(WTERMSIG(status)));
            else
                snprintf(s->msg, sizeof s->msg, "a worker exited with status %d",
                         WEXITSTATUS(status));
        }
    }
    nworkers = 0;
    munmap(sh, sizeof *sh);
    s->seconds = (double)(dlock__mono_us() - start) / 1e6;
    progress(x, s, s->seconds, true);
    sort_failures(s);
    return LB_EXIT_OK;
}

static int by_seed(const void *a, const void *b)
{
    int64_t x = ((const failure *)a)->seed, y = ((const failure *)b)->seed;
    return (x > y) - (x < y);
}

/* The failing seeds in order (each seed is judged once, so no two are equal). */
static void sort_failures(search *s)
{
    if (s->nfailing > 1)
        qsort(s->failing, s->nfailing, sizeof *s->failing, by_seed);
}

/* ---- the ranks' searches, gathered (lockbench-mpi) ---------------------------------------------- */

/* What a rank sends rank 0 of its search: this, then its nfailing failures. Every
 * rank runs the same binary (lockbench-mpi checks), so the layout is the same on both ends. */
typedef struct rank_record {
    int64_t run, nfailing;
    double  seconds;
    int32_t env_error, pad;
    char    msg[512];
} rank_record;

/* Every rank's search into rank 0's s: seeds judged summed, failing seeds merged (run_search's
 * order, ascending), the longest rank's time, the lowest rank's error. Each rank judged every
 * one of its seeds below its own first failure, so every seed below the lowest failure of all is
 * judged: the first failure is the one a single process finds. 0, or -1 (out of memory, a
 * record that does not parse) with s->msg filled on rank 0. */
static int gather_search(lb_ranks *d, search *s)
{
    size_t len = sizeof(rank_record) + s->nfailing * sizeof(failure);
    char *buf = calloc(1, len), *all = NULL;
    size_t *lens = calloc((size_t)d->nranks, sizeof *lens);
    int bad = !buf || !lens;
    if (bad) {
        len = 0;   /* an empty record still takes part; rank 0 then refuses it */
    } else {
        rank_record h = {.run = s->run, .nfailing = (int64_t)s->nfailing, .seconds = s->seconds,
                         .env_error = s->env_error};
        memcpy(h.msg, s->msg, sizeof h.msg);
        memcpy(buf, &h, sizeof h);
        if (s->nfailing)
            memcpy(buf + sizeof h, s->failing, s->nfailing * sizeof(failure));
    }
    if (d->gather(d, buf, len, (void **)&all, lens) < 0)
        bad = 1;
    free(buf);
    if (d->rank == 0 && !bad) {
        search m = {0};
        size_t at = 0;
        for (int r = 0; r < d->nranks && !bad; r++) {
            rank_record h;
            if (lens[r] < sizeof h) {
                bad = 1;
                break;
            }
            memcpy(&h, all + at, sizeof h);
            size_t n = (size_t)h.nfailing;
            if (h.nfailing < 0 || lens[r] != sizeof h + n * sizeof(failure)) {
                bad = 1;
                break;
            }
            m.run += h.run;
            m.seconds = h.seconds > m.seconds ? h.seconds : m.seconds;
            if (h.env_error && !m.env_error) {
                m.env_error = h.env_error;
                h.msg[sizeof h.msg - 1] = '\0';
                snprintf(m.msg, sizeof m.msg, "rank %d: %.480s", r, h.msg);
            }
            for (size_t i = 0; i < n; i++) {
                failure f;
                memcpy(&f, all + at + sizeof h + i * sizeof f, sizeof f);
                record_failure(&m, f);
            }
            at += lens[r];
        }
        if (bad) {
            free(m.failing);
        } else {
            free(s->failing);
            *s = m;
            sort_failures(s);
        }
    }
    free(all);
    free(lens);
    if (bad && d->rank == 0 && !s->env_error) {
        s->env_error = LB_EXIT_ENV;
        snprintf(s->msg, sizeof s->msg, "the ranks' searches could not be gathered");
    }
    return bad ? -1 : 0;
}

/* ---- the failure's files -------------------------------------------------------------------- */

static char *path_in(const explore *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *path_in(const explore *x, const char *fmt, ...)
{
    char leaf[256], *p;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(leaf, sizeof leaf, fmt, ap);
    va_end(ap);
    if (asprintf(&p, "%s/%s", x->dir, leaf) < 0)
        abort();
    return p;
}

/* The variant of a seed alone, every draw resolved, as JSON. */
static json_t *resolved_variant(const explore *x, int64_t seed, int vi, char *err, size_t errlen)
{
    lb_scenario *s = NULL;
    if (load_seed(x, seed, &s, err, errlen) < 0)
        return NULL;
    char *text = lb_scenario_dump(lb_scenario_variant(s, (size_t)vi));
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    lb_scenario_free(s);
    if (!doc)
        snprintf(err, errlen, "out of memory");
    return doc;
}

static int write_json(const char *path, json_t *doc, char *err, size_t errlen)
{
    char *text = json_dumps(doc, JSON_INDENT(2));
    int rc = -1;
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n';   /* the dump's NUL becomes a final newline; n + 1 bytes written */
        rc = lb_atomic_write(path, text, n + 1);
    }
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, text ? strerror(errno) : "out of memory");
    free(text);
    return rc;
}

/* The command that replays a seed: the file, the explore's own settings, the seed. */
static char *replay_command(const explore *x, int64_t seed)
{
    char *cmd = NULL, *next;
    if (asprintf(&cmd, "lockbench run %s --driver sim --seed %" PRId64, x->file, seed) < 0)
        abort();
    for (size_t i = 0; i + 2 < x->nsets; i++) {   /* the user's --set, not seed and driver */
        if (asprintf(&next, "%s --set '%s=%s'", cmd, x->sets[i].path, x->sets[i].value) < 0)
            abort();
        free(cmd);
        cmd = next;
    }
    if (x->calibration_file) {
        if (asprintf(&next, "%s --calibration %s", cmd, x->calibration_file) < 0)
            abort();
        free(cmd);
        cmd = next;
    }
    return cmd;
}

/* The seed's run with every file, as `run` writes it, in DIR/seed-<seed>/. */
static int write_results(const explore *x, int64_t seed, char **dir_out)
{
    char *dir = path_in(x, "seed-%" PRId64, seed);
    char seed_arg[32];
    lb_override sets[MAX_SETS + 2];
    size_t n = x->nsets - 2;
    memcpy(sets, x->sets, n * sizeof *sets);
    snprintf(seed_arg, sizeof seed_arg, "%" PRId64, seed);
    sets[n++] = (lb_override){.path = "seed", .value = seed_arg};
    sets[n++] = (lb_override){.path = "driver", .value = "sim"};
    lb_run_options o = {.out = dir, .force = true, .repeat = 1, .sets = sets, .nsets = n,
                        .quiet = true, .silent = true, .plot_format = "png",
                        .calibration = x->calibrated ? &x->calibration : NULL};
    char *file = (char *)x->file;
    int rc = lb_run_scenarios(&file, 1, &o);
    *dir_out = dir;
    return rc == LB_EXIT_FAILED ? LB_EXIT_OK : rc;
}

/* --confirm K: the minimized file on the real driver, K times. */
static int confirm(const explore *x, const char *file, json_t *first)
{
    static const lb_override real[] = {{.path = "driver", .value = "auto"}};
    int reproduced = 0, ran = 0, rc = LB_EXIT_OK;
    for (int k = 1; k <= x->confirm && !stopping(); k++) {
        char *dir = path_in(x, "confirm/run-%d", k);
        lb_run_options o = {.out = dir, .force = true, .repeat = 1, .sets = (lb_override *)real,
                            .nsets = 1, .quiet = true, .silent = true, .no_plot = true,
                            .plot_format = "png"};
        char *f = (char *)file;
        if (!x->quiet && isatty(STDERR_FILENO))
            fprintf(stderr, "\r\033[Kconfirm: run %d of %d on the real driver", k, x->confirm);
        int r = lb_run_scenarios(&f, 1, &o);
        free(dir);
        if (r != LB_EXIT_OK && r != LB_EXIT_FAILED) {
            rc = r;
            break;
        }
        ran++;
        reproduced += r == LB_EXIT_FAILED;
    }
    if (!x->quiet && isatty(STDERR_FILENO))
        fprintf(stderr, "\n");
    json_object_set_new(first, "confirm", json_pack("{s:i, s:i, s:s, s:s}", "runs", ran,
                        "reproduced", reproduced, "driver", "loop", "note",
                        "the simulator times a schedule to the microsecond; a real run may not "
                        "meet the same moment"));
    if (!x->quiet)
        printf("  confirmed: reproduced in %d of %d runs on the real driver%s\n", reproduced, ran,
               reproduced < ran ? " (a schedule timed to the microsecond in the simulator may "
                                  "not recur on real Redis)" : "");
    return rc;
}

/* ---- explore.json ----------------------------------------------------------------------------- */

static json_t *seeds_json(const search *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->nfailing; i++)
        json_array_append_new(a, json_integer(s->failing[i].seed));
    return a;
}

static int write_explore_json(const explore *x, const search *s, bool complete, json_t *first,
                              char *err, size_t errlen)
{
    char *path = path_in(x, "explore.json");
    json_t *doc = json_pack("{s:s, s:b, s:I, s:I, s:I, s:i, s:I, s:I, s:o, s:f, s:O?}",
                            "scenario", x->file, "complete", complete, "from", (json_int_t)x->from,
                            "seeds", (json_int_t)x->seeds, "seeds_run", (json_int_t)s->run,
                            "jobs", x->jobs, "failures", (json_int_t)s->nfailing,
                            "failures_kept", (json_int_t)(x->all ? s->nfailing
                                                          : s->nfailing > 0),
                            "failing_seeds", seeds_json(s),
                            "seeds_per_s", s->seconds > 0 ? (double)s->run / s->seconds : 0.0,
                            "first_failure", first);
    if (doc && x->stride > 1)
        json_object_set_new(doc, "ranks", json_integer(x->stride));
    int rc = doc ? write_json(path, doc, err, errlen) : -1;
    json_decref(doc);
    free(path);
    return rc;
}

/* ---- the first failure ------------------------------------------------------------------------- */

/* The failure's signature: the variant's first failed expectation and the side it missed. */
static int signature_of(const lb_scenario *v, const lb_summary *sum, lb_shrink_target *t,
                        const lb_expect_failure **missed)
{
    for (size_t i = 0; i < sum->expect.nfailures; i++) {
        const lb_expect_failure *f = &sum->expect.failures[i];
        for (size_t k = 0; k < v->nexpect; k++) {
            const lb_expect *e = &v->expect[k];
            if (strcmp(e->path, f->path) != 0 || f->value != f->value)   /* NaN: unknown path */
                continue;
            snprintf(t->path, sizeof t->path, "%s", e->path);
            t->min = e->min;
            t->max = e->max;
            t->above = f->value > e->max;
            *missed = f;
            return 0;
        }
    }
    return -1;
}

static json_t *count_pair(int64_t before, int64_t after)
{
    return json_pack("{s:I, s:I}", "before", (json_int_t)before, "after", (json_int_t)after);
}

/* Shrinks doc (the failing variant resolved) and writes minimized.json. */
static int minimize(const explore *x, json_t *doc, const lb_shrink_target *t, json_t *first,
                    char **file)
{
    char err[512];
    lb_shrink_result res;
    if (lb_shrink(doc, t, &res, err, sizeof err) < 0) {
        fprintf(stderr, "lockbench: shrinking: %s\n", err);
        return LB_EXIT_ENV;
    }
    *file = path_in(x, "minimized.json");
    int rc = write_json(*file, res.doc, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "lockbench: %s\n", err);
    json_object_set_new(first, "minimized", json_pack(
        "{s:s, s:o, s:o, s:o, s:i, s:b, s:o}", "file", *file,
        "events", count_pair(res.events_before, res.events_after),
        "clients", count_pair(res.clients_before, res.clients_after),
        "iterations", count_pair(res.iterations_before, res.iterations_after),
        "trials", res.trials, "one_minimal", res.one_minimal, "steps", res.steps));
    if (!x->quiet)
        printf("  minimized: %s (%" PRId64 " events -> %" PRId64 ", %" PRId64 " clients -> %"
               PRId64 ", %zu steps in %d trials%s)\n", *file, res.events_before,
               res.events_after, res.clients_before, res.clients_after,
               json_array_size(res.steps), res.trials,
               res.one_minimal ? "" : "; stopped at its budget, not 1-minimal");
    json_decref(res.doc);
    return rc < 0 ? LB_EXIT_ENV : LB_EXIT_OK;
}

static int first_failure(const explore *x, const search *s, json_t *first)
{
    char err[512], *file = NULL, *results = NULL;
    int64_t seed = s->failing[0].seed;
    size_t vi = (size_t)s->failing[0].variant;
    lb_scenario *sc = NULL;
    lb_summary sum = {0};
    lb_shrink_target t = {0};
    const lb_expect_failure *f = NULL;
    json_object_set_new(first, "seed", json_integer(seed));
    if (load_seed(x, seed, &sc, err, sizeof err) < 0 ||
        lb_explore_simulate(lb_scenario_variant(sc, vi), &sum, err, sizeof err) < 0) {
        fprintf(stderr, "lockbench: seed %" PRId64 ": %s\n", seed, err);
        lb_scenario_free(sc);
        return LB_EXIT_ENV;
    }
    const lb_scenario *v = lb_scenario_variant(sc, vi);
    bool judged = signature_of(v, &sum, &t, &f) == 0;
    char *text = lb_scenario_dump(v), *replay = replay_command(x, seed);
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_object_set_new(first, "variant", json_string(v->variant));
    if (judged)
        json_object_set_new(first, "expectation", json_pack(
            "{s:s, s:f, s:s, s:s}", "path", t.path, "value", f->value, "bound", f->bound,
            "missed", t.above ? "above" : "below"));
    json_object_set_new(first, "schedule", json_incref(json_object_get(doc, "events")));
    json_object_set_new(first, "replay", json_string(replay));
    file = path_in(x, "failure-%" PRId64 ".json", seed);
    json_object_set_new(first, "resolved", json_string(file));
    if (!x->quiet) {
        if (judged)
            printf("seed %" PRId64 " fails: variant %s: %s = %g, expected %s\n", seed,
                   v->variant, t.path, f->value, f->bound);
        else
            printf("seed %" PRId64 " fails: variant %s (the run did not complete)\n", seed,
                   v->variant);
        printf("  replay:    %s\n", replay);
        printf("  resolved:  %s\n", file);
    }
    free(file);
    file = NULL;
    free(replay);
    lb_summary_free(&sum);
    lb_scenario_free(sc);
    int rc = LB_EXIT_OK;
    if (!stopping() && (rc = write_results(x, seed, &results)) == LB_EXIT_OK) {
        json_object_set_new(first, "results", json_string(results));
        if (!x->quiet)
            printf("  results:   %s\n", results);
    }
    free(results);
    if (rc == LB_EXIT_OK && judged && doc && !stopping())
        rc = minimize(x, doc, &t, first, &file);
    else if (rc == LB_EXIT_OK && !judged && !x->quiet)
        printf("  not minimized: the run did not complete, so no one expectation names the "
               "failure\n");
    if (rc == LB_EXIT_OK && x->confirm > 0 && file && !stopping())
        rc = confirm(x, file, first);
    free(file);
    json_decref(doc);
    return rc;
}

/* failure-<seed>.json of every failure kept: the first, or all with --all. */
static int write_failures(const explore *x, const search *s)
{
    char err[512];
    size_t n = x->all ? s->nfailing : s->nfailing > 0;
    for (size_t i = 0; i < n && !stopping(); i++) {
        const failure *f = &s->failing[i];
        json_t *doc = resolved_variant(x, f->seed, f->variant, err, sizeof err);
        char *path = path_in(x, "failure-%" PRId64 ".json", f->seed);
        int rc = doc ? write_json(path, doc, err, sizeof err) : -1;
        json_decref(doc);
        free(path);
        if (rc < 0) {
            fprintf(stderr, "lockbench: %s\n", err);
            return LB_EXIT_ENV;
        }
    }
    return LB_EXIT_OK;
}

/* ---- the command --------------------------------------------------------------------------------- */

static const char usage_text[] =
    "usage: lockbench explore SCENARIO.json --seeds N [--from S] [--jobs J] [--out DIR [--force]]\n"
    "                         [--all] [--confirm K] [--set PATH=VALUE]... [--calibration FILE]\n"
    "                         [--quiet]\n"
    "runs seeds S..S+N-1 of the scenario in the simulator, each judged by its expect; the first\n"
    "failing seed is replayed into DIR/seed-<seed>/, written resolved as DIR/failure-<seed>.json\n"
    "and shrunk into DIR/minimized.json; DIR/explore.json says what was found.\n"
    "exit codes: 0 no seed failed, 1 a seed failed, 2 bad input, 3 environment\n";

static int usage(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "lockbench explore: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    fputs(usage_text, stderr);
    return LB_EXIT_USAGE;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_flags(explore *x, int argc, char **argv)
{
    static const struct option opts[] = {
        {"seeds", required_argument, NULL, 'n'}, {"from", required_argument, NULL, 'f'},
        {"jobs", required_argument, NULL, 'j'},  {"out", required_argument, NULL, 'o'},
        {"all", no_argument, NULL, 'a'},         {"confirm", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 'S'},   {"calibration", required_argument, NULL, 'C'},
        {"quiet", no_argument, NULL, 'q'},       {"force", no_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    int64_t v;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    x->jobs = cpus < 1 ? 1 : cpus > MAX_JOBS ? MAX_JOBS : (int)cpus;
    x->seeds = -1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            if (!parse_i64(optarg, 1, INT32_MAX, &x->seeds))
                return usage("--seeds: expected a number from 1 to 2147483647, got '%s'", optarg);
            break;
        case 'f':
            if (!parse_i64(optarg, 0, INT32_MAX, &x->from))
                return usage("--from: expected a seed from 0 to 2147483647, got '%s'", optarg);
            break;
        case 'j':
            if (!parse_i64(optarg, 1, MAX_JOBS, &v))
                return usage("--jobs: expected a number from 1 to 256, got '%s'", optarg);
            x->jobs = (int)v;
            break;
        case 'c':
            if (!parse_i64(optarg, 1, 1000, &v))
                return usage("--confirm: expected a number from 1 to 1000, got '%s'", optarg);
            x->confirm = (int)v;
            break;
        case 'o': x->out = optarg; break;
        case 'a': x->all = true; break;
        case 'q': x->quiet = true; break;
        case 'F': x->force = true; break;
        case 'S':
            if (x->nsets == MAX_SETS || !lb_override_from_arg(optarg, &x->sets[x->nsets]))
                return usage("--set: expected PATH=VALUE, got '%s'", optarg);
            x->nsets++;
            break;
        case 'C': {
            char err[600];
            if (lb_calibration_load(optarg, &x->calibration, err, sizeof err) < 0) {
                fprintf(stderr, "lockbench: --calibration %s\n", err);
                return LB_EXIT_USAGE;
            }
            x->calibrated = true;
            x->calibration_file = optarg;
            break;
        }
        default:
            return usage(NULL, NULL);
        }
    }
    if (optind != argc - 1)
        return usage(optind >= argc ? "no scenario file given%s" : "one scenario file at a "
                     "time%s", "");
    if (x->seeds < 0)
        return usage("--seeds N is required%s", "");
    if (x->from + x->seeds - 1 > INT32_MAX)
        return usage("--from + --seeds goes past seed 2147483647%s", "");
    x->file = argv[optind];
    x->sets[x->nsets++] = (lb_override){.path = "seed", .value = x->seed_arg};
    x->sets[x->nsets++] = (lb_override){.path = "driver", .value = "sim"};
    return -1;
}

static int read_file(explore *x)
{
    FILE *f = fopen(x->file, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "lockbench: %s: cannot read: %s\n", x->file,
                f ? strerror(EISDIR) : strerror(errno));
        if (f)
            fclose(f);
        return LB_EXIT_USAGE;
    }
    x->text = malloc((size_t)st.st_size + 1);
    x->len = x->text ? fread(x->text, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!x->text || x->len != (size_t)st.st_size) {
        fprintf(stderr, "lockbench: %s: cannot read it whole\n", x->file);
        return LB_EXIT_ENV;
    }
    return LB_EXIT_OK;
}

/* The first seed loads (or the file is bad input) and something can fail (an expectation). */
static int check_scenario(explore *x, char **name)
{
    char err[1024];
    lb_scenario *s = NULL;
    if (load_seed(x, x->from, &s, err, sizeof err) < 0) {
        fprintf(stderr, "lockbench: %s\n", err);
        return LB_EXIT_USAGE;
    }
    size_t expectations = 0;
    for (size_t i = 0; i < lb_scenario_variant_count(s); i++)
        expectations += lb_scenario_variant(s, i)->nexpect;
    *name = strdup(s->name);
    lb_scenario_free(s);
    if (expectations == 0) {
        fprintf(stderr, "lockbench: %s: expect: nothing to judge: explore needs expectations "
                        "(an \"expect\" block)\n", x->file);
        return LB_EXIT_USAGE;
    }
    return LB_EXIT_OK;
}

/* --force: what an earlier explore wrote in dir goes, so that none of its failures stands
 * beside the new explore.json -- its failure-<seed>.json, minimized.json, and the runs in
 * seed-<seed>/ and confirm/run-<k>/. Other files stay. */
static int clear_earlier(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int rc = 0;
    char path[4200], err[512];
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        snprintf(path, sizeof path, "%s/%s", dir, n);
        if (strcmp(n, "minimized.json") == 0 ||
            (strncmp(n, "failure-", 8) == 0 && len > 13 && strcmp(n + len - 5, ".json") == 0)) {
            rc = unlink(path);
        } else if (strncmp(n, "seed-", 5) == 0) {
            rc = lb_results_clear(path, err, sizeof err);
            rmdir(path);  /* left when it holds something of the user's */
        } else if (strcmp(n, "confirm") == 0) {
            for (int k = 1; rc == 0; k++) {
                char run[4300];
                snprintf(run, sizeof run, "%s/run-%d", path, k);
                if (access(run, F_OK) != 0)
                    break;
                rc = lb_results_clear(run, err, sizeof err);
                rmdir(run);
            }
            rmdir(path);
        }
    }
    closedir(d);
    return rc;
}

/* --out DIR (empty, or --force), or results/<name>/explore-<stamp>/. */
static int make_dir(explore *x, const char *name)
{
    char path[4096], stamp[32];
    if (x->out) {
        if (lb_mkdirs(x->out) != 0) {
            fprintf(stderr, "lockbench: cannot create %s: %s\n", x->out, strerror(errno));
            return LB_EXIT_ENV;
        }
        x->dir = strdup(x->out);
        char *top;
        if (asprintf(&top, "%s/explore.json", x->out) < 0)
            abort();
        bool used = access(top, F_OK) == 0;
        free(top);
        if (used && !x->force) {
            fprintf(stderr, "lockbench: %s holds an earlier explore (--force to replace it)\n",
                    x->out);
            return LB_EXIT_USAGE;
        }
        if (used && clear_earlier(x->out) != 0) {
            fprintf(stderr, "lockbench: cannot clear the earlier explore in %s: %s\n", x->out,
                    strerror(errno));
            return LB_EXIT_ENV;
        }
        return LB_EXIT_OK;
    }
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    for (int k = 1; k <= 100; k++) {
        snprintf(path, sizeof path, k == 1 ? "results/%s/explore-%s" : "results/%s/explore-%s-%d",
                 name, stamp, k);
        if (lb_mkdirs(path) == 0 && access(path, W_OK) == 0) {
            char probe[4200];
            snprintf(probe, sizeof probe, "%s/explore.json", path);
            if (access(probe, F_OK) != 0) {
                x->dir = strdup(path);
                return LB_EXIT_OK;
            }
        }
    }
    fprintf(stderr, "lockbench: cannot create a folder under results/%s: %s\n", name,
            strerror(errno));
    return LB_EXIT_ENV;
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* The file read and checked; on rank 0 (or the only process) DIR made and explore.json written,
 * incomplete, before the search begins. The exit code. */
static int setup(explore *x, search *s, char **name)
{
    char err[512];
    int rc;
    if ((rc = read_file(x)) != LB_EXIT_OK || (rc = check_scenario(x, name)) != LB_EXIT_OK)
        return rc;
    if (x->rank != 0)
        return LB_EXIT_OK;
    if ((rc = make_dir(x, *name)) != LB_EXIT_OK)
        return rc;
    if (write_explore_json(x, s, false, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "lockbench: %s\n", err);
        return LB_EXIT_ENV;
    }
    return LB_EXIT_OK;
}

/* Under lockbench-mpi, every rank but 0 says nothing while it sets up (rank 0 says it, once):
 * its stderr goes to /dev/null until restore_stderr. */
static int mute_stderr(void)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0)
        dup2(null, STDERR_FILENO);
    if (null >= 0)
        close(null);
    return saved;
}

static void restore_stderr(int saved)
{
    if (saved < 0)
        return;
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

int lb_explore_main(int argc, char **argv)
{
    static explore x;
    char err[512], *name = NULL;
    search s = {0};
    /* Under lockbench-mpi every rank runs this with the same arguments and files: each searches
     * every K-th seed, rank 0 gathers the verdicts and does the rest alone. */
    lb_ranks *d = lb_ranks_get();
    if (d && d->nranks < 2)
        d = NULL;
    x.rank = d ? d->rank : 0;
    x.stride = d ? d->nranks : 1;
    int muted = d && d->rank != 0 ? mute_stderr() : -1;
    int rc = parse_flags(&x, argc, argv);
    if (rc < 0) {
        catch_signals();   /* before explore.json says the search has begun */
        rc = setup(&x, &s, &name);
    }
    restore_stderr(muted);
    if (d) {
        int all = d->agree(d, rc);
        if (all != LB_EXIT_OK && rc == LB_EXIT_OK && x.rank == 0)
            fprintf(stderr, "lockbench: explore: another rank could not set up the search (exit "
                            "%d)\n", all);
        rc = all;
        x.quiet = x.quiet || x.rank != 0;
    }
    if (rc != LB_EXIT_OK)
        goto out;
    rc = run_search(&x, &s);
    if (d) {
        if (rc != LB_EXIT_OK && !s.env_error)   /* its workers could not start: rank 0 says so */
            s.env_error = rc;
        rc = LB_EXIT_OK;
        gather_search(d, &s);   /* on rank 0, a failure to gather is s.env_error */
        if (x.rank != 0)   /* rank 0 reports this rank's findings */
            goto out;
        lb_ranks_set(NULL);   /* the replay, shrink and --confirm: rank 0 alone, one process */
    }
    if (rc == LB_EXIT_OK && s.env_error) {
        fprintf(stderr, "lockbench: %s\n", s.msg);
        rc = s.env_error;
    }
    if (rc != LB_EXIT_OK) {
        write_explore_json(&x, &s, false, NULL, err, sizeof err);
        goto out;
    }
    if (!x.quiet)
        printf("explore %s: %" PRId64 " seeds in %.1f s (%.0f seeds/s), %zu failed%s\n", name,
               s.run, s.seconds, s.seconds > 0 ? (double)s.run / s.seconds : 0.0, s.nfailing,
               stopping() ? " (interrupted)" : "");
    json_t *first = NULL;
    if (s.nfailing > 0) {
        first = json_object();
        rc = write_failures(&x, &s);
        if (rc == LB_EXIT_OK)
            rc = first_failure(&x, &s, first);
    }
    bool complete = rc == LB_EXIT_OK && !stopping();
    if (write_explore_json(&x, &s, complete, first, err, sizeof err) < 0) {
        fprintf(stderr, "lockbench: %s\n", err);
        rc = LB_EXIT_ENV;
    }
    json_decref(first);
    if (!x.quiet)
        printf("explore: %s/explore.json\n", x.dir);
    if (rc == LB_EXIT_OK)
        rc = stopping() ? 128 + (interrupted ? interrupted : SIGINT)
             : s.nfailing > 0 ? LB_EXIT_FAILED : LB_EXIT_OK;
out:
    free(s.failing);
    free(name);
    free(x.text);
    free(x.dir);
    return rc;
}
