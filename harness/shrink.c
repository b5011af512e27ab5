/* shrink.c -- a failing scenario cut down to what makes it fail.
 *
 * The input is one variant with every draw resolved and a seed, so every candidate is a plain
 * scenario that the simulator replays exactly. A candidate is kept only if the expectation that
 * named the failure still misses on the same side: cutting iterations may make an exact
 * `counter.actual` miss, but that is another failure, not this one.
 *
 * Passes repeat until one changes nothing: drop each event (last first), drop each client (last
 * first; a group left empty goes, and so does an event left naming nobody), shorten each event's
 * duration, lower the iterations and the run's length while the failure stays. A pass that
 * changes nothing has tried every single event and client, so the result is 1-minimal: removing
 * any one more makes it pass. A budget of trials and time bounds the search; a result cut short
 * says so. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"
#include "monotonic.h"
#include "runner.h"

#define MAX_TRIALS 3000
#define MAX_SECONDS 120

typedef struct shrinker {
    const lb_shrink_target *t;
    json_t *cur;            /* the smallest failing scenario so far */
    json_t *steps;
    int     trials;
    int64_t deadline_us;
    bool    out_of_budget;
    char   *err;
    size_t  errlen;
} shrinker;

/* 1: the candidate fails as the target does; 0: it passes, fails otherwise or is not a valid
 * scenario; -1: the simulator could not run it (err). */
static int fails(shrinker *k, json_t *cand)
{
    if (k->trials >= MAX_TRIALS || dlock__mono_us() > k->deadline_us || lb_runner_stopped()) {
        k->out_of_budget = true;
        return 0;
    }
    k->trials++;
    char *text = json_dumps(cand, JSON_COMPACT);
    lb_scenario *s = NULL;
    char err[512];
    int rc = 0;
    if (!text)
        return -1;
    if (lb_scenario_load_buffer("minimized.json", text, strlen(text), NULL, &s, err,
                                sizeof err) == 0) {
        lb_summary sum;
        double v;
        if (lb_explore_simulate(lb_scenario_variant(s, 0), &sum, k->err, k->errlen) < 0) {
            rc = -1;
        } else {
            rc = sum.complete && lb_metrics_value(&sum, k->t->path, &v) &&
                 (k->t->above ? v > k->t->max : v < k->t->min);
            lb_summary_free(&sum);
        }
    }
    lb_scenario_free(s);
    free(text);
    return rc;
}

static void step(shrinker *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void step(shrinker *k, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_array_append_new(k->steps, json_string(line));
}

/* Keeps cand (owned) if it fails as the target; 1 kept, 0 not, -1 error. */
static int try_keep(shrinker *k, json_t *cand)
{
    int rc = fails(k, cand);
    if (rc == 1) {
        json_decref(k->cur);
        k->cur = cand;
    } else {
        json_decref(cand);
    }
    return rc;
}

static json_t *events_of(json_t *doc)
{
    return json_object_get(doc, "events");
}

static int64_t count_clients(json_t *doc)
{
    int64_t n = 0;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(doc, "clients"), i, g)
        n += json_integer_value(json_object_get(g, "count"));
    return n;
}

static int64_t iterations_of(json_t *doc)
{
    return json_integer_value(json_object_get(json_object_get(doc, "workload"), "iterations"));
}

/* ---- the cuts ------------------------------------------------------------------------------ */

static int drop_events(shrinker *k, bool *changed)
{
    for (size_t i = json_array_size(events_of(k->cur)); i-- > 0 && !k->out_of_budget;) {
        json_t *cand = json_deep_copy(k->cur);
        json_t *e = json_array_get(events_of(k->cur), i);
        char what[128];
        snprintf(what, sizeof what, "%s at %" JSON_INTEGER_FORMAT " ms",
                 json_string_value(json_object_get(e, "do")),
                 json_integer_value(json_object_get(e, "at_ms")));
        json_array_remove(events_of(cand), i);
        int rc = try_keep(k, cand);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            step(k, "removed event %zu (%s)", i, what);
            *changed = true;
        }
    }
    return 0;
}

/* doc without client j: its group one smaller (gone when empty, if another is left), events
 * renumbered, an event left naming nobody dropped. NULL when j is the only client. */
static json_t *without_client(json_t *doc, int64_t j, int *events_dropped)
{
    json_t *cand = json_deep_copy(doc), *groups = json_object_get(cand, "clients"), *g = NULL;
    int64_t first = 0;
    size_t gi;
    *events_dropped = 0;
    json_array_foreach(groups, gi, g) {
        int64_t n = json_integer_value(json_object_get(g, "count"));
        if (j < first + n)
            break;
        first += n;
    }
    if (gi == json_array_size(groups) || count_clients(doc) <= 1) {
        json_decref(cand);
        return NULL;
    }
    int64_t n = json_integer_value(json_object_get(g, "count"));
    if (n > 1)
        json_object_set_new(g, "count", json_integer(n - 1));
    else
        json_array_remove(groups, gi);
    json_t *events = events_of(cand);
    for (size_t i = json_array_size(events); i-- > 0;) {
        json_t *list = json_object_get(json_array_get(events, i), "clients");
        if (!json_is_array(list))
            continue;   /* "all", or a server's event */
        for (size_t c = json_array_size(list); c-- > 0;) {
            json_int_t id = json_integer_value(json_array_get(list, c));
            if (id == j)
                json_array_remove(list, c);
            else if (id > j)
                json_array_set_new(list, c, json_integer(id - 1));
        }
        if (json_array_size(list) == 0) {
            json_array_remove(events, i);
            ++*events_dropped;
        }
    }
    return cand;
}

static int drop_clients(shrinker *k, bool *changed)
{
    for (int64_t j = count_clients(k->cur); j-- > 0 && !k->out_of_budget;) {
        int dropped;
        json_t *cand = without_client(k->cur, j, &dropped);
        if (!cand)
            continue;
        int rc = try_keep(k, cand);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            if (dropped)
                step(k, "removed client %" PRId64 " (and %d event%s naming only it)", j, dropped,
                     dropped == 1 ? "" : "s");
            else
                step(k, "removed client %" PRId64, j);
            *changed = true;
        }
    }
    return 0;
}

/* Lowers the integer at locate(doc, i)[key] toward floor_at while the failure stays: cuts of
 * half the way first, then of a quarter, an eighth, ... (a cut that loses the failure is tried
 * again at half its size), so a value the failure needs is found in about log2 trials.
 * label names it in the step. */
static int lower(shrinker *k, json_t *(*locate)(json_t *doc, size_t i), size_t i,
                 const char *key, int64_t floor_at, const char *label, bool *changed)
{
    json_t *v = json_object_get(locate(k->cur, i), key);
    if (!json_is_integer(v) || json_integer_value(v) <= floor_at)
        return 0;
    int64_t from = json_integer_value(v), at = from;
    for (int64_t cut = (at - floor_at + 1) / 2; cut >= 1 && at > floor_at;) {
        json_t *cand = json_deep_copy(k->cur);
        json_object_set_new(locate(cand, i), key, json_integer(at - cut));
        int rc = try_keep(k, cand);
        if (rc < 0)
            return -1;
        if (rc == 1)
            at -= cut;
        else
            cut /= 2;
        if (cut > at - floor_at)
            cut = at - floor_at;
        if (k->out_of_budget)
            break;
    }
    if (at != from) {
        step(k, "%s %" PRId64 " -> %" PRId64, label, from, at);
        *changed = true;
    }
    return 0;
}

static json_t *event_at(json_t *doc, size_t i)
{
    return json_array_get(events_of(doc), i);
}

static json_t *workload_of(json_t *doc, size_t i)
{
    (void)i;
    return json_object_get(doc, "workload");
}

static json_t *group_workload(json_t *doc, size_t i)
{
    return json_object_get(json_array_get(json_object_get(doc, "clients"), i), "workload");
}

static int shorten(shrinker *k, bool *changed)
{
    char label[64];
    for (size_t i = 0; i < json_array_size(events_of(k->cur)); i++) {
        snprintf(label, sizeof label, "event %zu duration_ms", i);
        if (lower(k, event_at, i, "duration_ms", 0, label, changed) < 0)
            return -1;
    }
    if (lower(k, workload_of, 0, "iterations", 1, "workload.iterations", changed) < 0 ||
        lower(k, workload_of, 0, "duration_ms", 1, "workload.duration_ms", changed) < 0)
        return -1;
    for (size_t g = 0; g < json_array_size(json_object_get(k->cur, "clients")); g++) {
        if (!group_workload(k->cur, g))
            continue;
        snprintf(label, sizeof label, "clients.%zu.workload.iterations", g);
        if (lower(k, group_workload, g, "iterations", 1, label, changed) < 0)
            return -1;
        snprintf(label, sizeof label, "clients.%zu.workload.duration_ms", g);
        if (lower(k, group_workload, g, "duration_ms", 1, label, changed) < 0)
            return -1;
    }
    return 0;
}

/* ---- the whole ---------------------------------------------------------------------------- */

/* The failing expectation alone: the others may fail for the cut's own sake (fewer iterations,
 * an exact count), and the file should fail for this reason only. */
static void keep_target_expectation(json_t *doc, const char *path)
{
    json_t *e = json_object_get(doc, "expect"), *mine = json_object_get(e, path);
    json_t *only = json_object();
    if (mine)
        json_object_set(only, path, mine);
    json_object_set_new(doc, "expect", only);
}

int lb_shrink(json_t *doc, const lb_shrink_target *t, lb_shrink_result *out, char *err,
              size_t errlen)
{
    shrinker k = {.t = t, .cur = json_deep_copy(doc), .steps = json_array(), .err = err,
                  .errlen = errlen, .deadline_us = dlock__mono_us() + MAX_SECONDS * 1000000LL};
    *out = (lb_shrink_result){0};
    if (!k.cur || !k.steps) {
        snprintf(err, errlen, "out of memory");
        json_decref(k.cur);
        json_decref(k.steps);
        return -1;
    }
    keep_target_expectation(k.cur, t->path);
    out->events_before = (int64_t)json_array_size(events_of(k.cur));
    out->clients_before = count_clients(k.cur);
    out->iterations_before = iterations_of(k.cur);
    int rc = fails(&k, k.cur);
    bool recurred = rc == 1, changed = recurred;
    if (rc == 0)
        step(&k, "the failure did not recur from the resolved file: nothing was cut");
    while (rc >= 0 && changed && !k.out_of_budget) {
        changed = false;
        if (drop_events(&k, &changed) < 0 || drop_clients(&k, &changed) < 0 ||
            shorten(&k, &changed) < 0)
            rc = -1;
        else
            rc = 1;
    }
    if (rc < 0) {
        json_decref(k.cur);
        json_decref(k.steps);
        return -1;
    }
    const char *d = json_string_value(json_object_get(k.cur, "description"));
    char *desc;
    if (asprintf(&desc, "%s%sMinimized by lockbench explore in %zu steps: it fails %s %s.",
                 d ? d : "", d && *d ? " " : "", json_array_size(k.steps), t->path,
                 t->above ? "above its bound" : "below its bound") >= 0) {
        json_object_set_new(k.cur, "description", json_string(desc));
        free(desc);
    }
    out->doc = k.cur;
    out->steps = k.steps;
    out->events_after = (int64_t)json_array_size(events_of(k.cur));
    out->clients_after = count_clients(k.cur);
    out->iterations_after = iterations_of(k.cur);
    out->trials = k.trials;
    out->one_minimal = recurred && !k.out_of_budget;
    return 0;
}
