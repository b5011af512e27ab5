/* faults.c -- the fault schedule: the scenario's events applied at their times, on the main
 * thread, while the clients run; each group stopped at its deadline; the progress line.
 *
 * Client faults (crash, pause, clock skew) change a client's control block, which a client
 * thread sees through its condition variable and a loop's client through its driver's notice;
 * network faults go through the proxy; server faults (failover and the replication faults
 * included) through the managed servers and their replicas (replicas.h). The main
 * thread applies them because a managed redis-server restarted by a thread dies with that
 * thread (PR_SET_PDEATHSIG), and the main thread outlives the run. What was applied, and when,
 * goes into the run's fault records for events.csv and the timeline. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlock.h"
#include "monotonic.h"
#include "proxy.h"
#include "replicas.h"
#include "runner_priv.h"
#include "sentinels.h"
#include "servers.h"

typedef rn_action action;

/* In time order; at the same time an ending comes before a start, so back-to-back faults of
 * one kind do not cancel each other. */
static int by_time(const void *a, const void *b)
{
    const action *x = a, *y = b;
    if (x->at_us != y->at_us)
        return (x->at_us > y->at_us) - (x->at_us < y->at_us);
    return (int)y->ending - (int)x->ending;
}

size_t rn_fault_actions(const lb_scenario *sc, rn_action *acts)
{
    size_t n = 0;
    for (size_t i = 0; i < sc->nevents; i++) {
        acts[n++] = (action){.at_us = sc->events[i].at_ms * 1000, .event = i};
        int64_t end = rn_event_end_us(&sc->events[i]);
        if (end >= 0)
            acts[n++] = (action){.at_us = (sc->events[i].at_ms * 1000) + end, .event = i,
                                 .ending = true};
    }
    qsort(acts, n, sizeof *acts, by_time);
    return n;
}

int64_t rn_event_end_us(const lb_event *e)
{
    switch (e->action) {
    case LB_EV_PAUSE:
        return e->when_holding ? -1 : e->duration_ms * 1000;
    case LB_EV_DELAY:
    case LB_EV_PARTITION:
    case LB_EV_PAUSE_SERVER:
    case LB_EV_DELAY_REPLICATION:
    case LB_EV_PARTITION_REPLICATION:
        return e->duration_ms * 1000;
    case LB_EV_KILL_SERVER:
    case LB_EV_CRASH_HOST:
    case LB_EV_FAILOVER:  /* a window only while a killed old primary is down */
        return e->restart_after_ms >= 0 ? e->restart_after_ms * 1000 : -1;
    default:
        return -1;
    }
}

void rn_fault_describe(const lb_event *e, lb_fault_record *f)
{
    f->at_ms = e->at_ms;
    f->action = e->action;
    f->start_us = f->end_us = -1;
    if (e->server >= 0) {
        snprintf(f->target, sizeof f->target, "server=%d", e->server);
    } else if (e->all_clients) {
        snprintf(f->target, sizeof f->target, "clients=all");
    } else {
        size_t len = (size_t)snprintf(f->target, sizeof f->target, "clients=");
        for (size_t i = 0; i < e->nclients && len < sizeof f->target; i++)
            len += (size_t)snprintf(f->target + len, sizeof f->target - len, "%s%d",
                                    i ? "," : "", e->clients[i]);
    }
    switch (e->action) {
    case LB_EV_DELAY:
        snprintf(f->detail, sizeof f->detail, "latency_ms=%lld jitter_ms=%lld duration_ms=%lld",
                 (long long)e->latency_ms, (long long)e->jitter_ms, (long long)e->duration_ms);
        break;
    case LB_EV_DELAY_REPLICATION:
        snprintf(f->detail, sizeof f->detail, "latency_ms=%lld duration_ms=%lld",
                 (long long)e->latency_ms, (long long)e->duration_ms);
        break;
    case LB_EV_FAILOVER:  /* the node promoted is added when it is applied */
        snprintf(f->detail, sizeof f->detail, "old=%s restart_after_ms=%lld",
                 lb_failover_old_name(e->old), (long long)e->restart_after_ms);
        break;
    case LB_EV_CLOCK_SKEW:
        snprintf(f->detail, sizeof f->detail, "offset_ms=%lld", (long long)e->offset_ms);
        break;
    case LB_EV_CRASH:
    case LB_EV_KILL_SERVER:
    case LB_EV_CRASH_HOST:
        snprintf(f->detail, sizeof f->detail, "%srestart_after_ms=%lld",
                 e->when_holding ? "when=holding " : "", (long long)e->restart_after_ms);
        break;
    case LB_EV_RESET:
        f->detail[0] = '\0';  /* an instant: nothing more to say */
        break;
    default:
        snprintf(f->detail, sizeof f->detail, "%sduration_ms=%lld",
                 e->when_holding ? "when=holding " : "", (long long)e->duration_ms);
        break;
    }
}

/* Applies fn to each client of the event; false when it failed for any of them. */
/* A client thread sees its control block change through the condition variable; a loop's
 * clients through their driver's notice. */
static void notify(run *r, client *c)
{
    if (r->notify)
        r->notify(c);
}

static bool for_clients(run *r, const lb_event *e,
                        bool (*fn)(run *, client *, const lb_event *, bool), bool ending)
{
    bool ok = true;
    for (size_t i = 0; i < e->nclients; i++) {
        client *c = rn_client_of(r, e->clients[i]);  /* another rank's: that rank applies it */
        if (c)
            ok &= fn(r, c, e, ending);
    }
    return ok;
}

static int event_index(const run *r, const lb_event *e)
{
    return (int)(e - r->sc->events);
}

static bool do_crash(run *r, client *c, const lb_event *e, bool ending)
{
    pthread_mutex_lock(&c->ctl.mu);
    c->ctl.restart_after_us = e->restart_after_ms >= 0 ? e->restart_after_ms * 1000 : -1;
    if (e->when_holding) {
        c->ctl.crash_when_holding = event_index(r, e) + 1;
    } else {
        c->ctl.crashes++;
        c->ctl.crashed = true;
        if (c->lock)
            dlock_client_interrupt(c->lock);  /* wakes a back-off sleep at once */
    }
    pthread_cond_broadcast(&c->ctl.cv);
    pthread_mutex_unlock(&c->ctl.mu);
    notify(r, c);
    return true;
}

/* At a group's deadline (or Ctrl-C, for every group) a wait in progress is abandoned and no new
 * iteration starts: sleeps between iterations end, a client in its critical section finishes. */
static void stop_group(run *r, size_t group)
{
    r->stopped[group] = true;
    for (size_t i = 0; i < r->n; i++) {
        client *c = &r->clients[i];
        if (c->group != group)
            continue;
        pthread_mutex_lock(&c->ctl.mu);
        c->ctl.stopping = true;
        if (c->lock)
            dlock_client_interrupt(c->lock);
        pthread_cond_broadcast(&c->ctl.cv);
        pthread_mutex_unlock(&c->ctl.mu);
        notify(r, c);
    }
}

static bool do_pause(run *r, client *c, const lb_event *e, bool ending)
{
    if (e->when_holding) {
        pthread_mutex_lock(&c->ctl.mu);
        c->ctl.pause_when_holding = event_index(r, e) + 1;
        c->ctl.pause_when_holding_us = e->duration_ms * 1000;
        pthread_mutex_unlock(&c->ctl.mu);
        return true;
    }
    rn_ctl_pause(&c->ctl, ending ? -1 : 1);
    notify(r, c);
    return true;
}

/* Overlapping delays: the latest one in effect sets the link; when none is left, the group's. */
static void track_delay(client *c, const lb_event *e, bool ending, int64_t *lat, int64_t *jit)
{
    if (!ending) {
        c->delays[c->ndelays++] = e;
    } else {
        for (size_t i = 0; i < c->ndelays; i++) {
            if (c->delays[i] == e) {
                memmove(&c->delays[i], &c->delays[i + 1], (c->ndelays - i - 1) * sizeof *c->delays);
                c->ndelays--;
                break;
            }
        }
    }
    const lb_event *now = c->ndelays ? c->delays[c->ndelays - 1] : NULL;
    *lat = now ? now->latency_ms : c->g->network.latency_ms;
    *jit = now ? now->jitter_ms : c->g->network.jitter_ms;
}

static bool do_network(run *r, client *c, const lb_event *e, bool ending)
{
    int64_t lat = 0, jit = 0;
    if (e->action == LB_EV_PARTITION) {  /* overlapping partitions: heal when the last ends */
        c->partitions += ending ? -1 : 1;
        if (c->partitions != (ending ? 0 : 1))
            return true;
    } else if (e->action == LB_EV_DELAY) {
        track_delay(c, e, ending, &lat, &jit);
    }
    bool ok = true;
    for (int s = 0; s < r->t->nservers; s++) {
        int link = c->links[s];
        if (link < 0)
            continue;
        if (e->action == LB_EV_DELAY)
            ok &= lb_proxy_set_latency(r->t->proxy, link, lat * 1000, jit * 1000) == 0;
        else if (e->action == LB_EV_PARTITION)
            ok &= lb_proxy_set_partition(r->t->proxy, link, !ending) == 0;
        else if (e->action == LB_EV_RESET)
            ok &= lb_proxy_reset(r->t->proxy, link) == 0;
    }
    return ok;
}

static bool do_skew(run *r, client *c, const lb_event *e, bool ending)
{
    atomic_store(&c->ctl.skew_ms, e->offset_ms);
    return true;
}

/* A failover: the node promoted goes into the fault's detail for events.csv. */
static int do_failover(lb_group *g, const lb_event *e, lb_fault_record *f, char *err,
                       size_t errlen)
{
    int from = lb_group_primary(g);
    int to = lb_group_failover(g, e->old == LB_OLD_KILL, err, errlen);
    f->node = to >= 0 && e->old == LB_OLD_KILL ? from : -1;
    if (to >= 0) {
        size_t len = strlen(f->detail);
        snprintf(f->detail + len, sizeof f->detail - len, " from=node%d promoted=node%d", from, to);
    }
    return to;
}

/* Server faults act on the server's current primary (the node a failover promoted, if one
 * did; with sentinels, the node they name now, asked at the fault's start); a restart brings
 * back the node that was killed, and the end of a pause resumes the node paused. */
static bool do_server(run *r, const lb_event *e, bool ending, lb_fault_record *f)
{
    lb_group *g = r->t->groups ? r->t->groups[e->server] : NULL;
    char err[256] = "";
    int rc = -1;
    if (!g)
        return false;
    if (r->t->sentinels && !ending)
        lb_sentinels_sync_group(r->t->sentinels, e->server, g);
    switch (e->action) {
    case LB_EV_PAUSE_SERVER:
        rc = ending ? lb_group_resume(g) : lb_group_pause(g);
        break;
    case LB_EV_KILL_SERVER:
    case LB_EV_FAILOVER:
        if (ending)
            rc = lb_group_restart(g, f->node, err, sizeof err);
        else if (e->action == LB_EV_FAILOVER)
            rc = do_failover(g, e, f, err, sizeof err);
        else
            rc = f->node = lb_group_kill(g);
        break;
    case LB_EV_DELAY_REPLICATION:
        rc = lb_group_repl_delay(g, e->latency_ms * 1000, !ending);
        break;
    case LB_EV_PARTITION_REPLICATION:
        rc = lb_group_repl_partition(g, !ending);
        break;
    default:
        break;
    }
    if (rc < 0 && err[0])
        fprintf(stderr, "lockbench: %s%s, server %d: %s\n", ending ? "ending " : "",
                lb_event_action_name(e->action), e->server, err);
    return rc >= 0;
}

static bool apply(run *r, const lb_event *e, bool ending, lb_fault_record *f)
{
    switch (e->action) {
    case LB_EV_CRASH: return for_clients(r, e, do_crash, ending);
    case LB_EV_PAUSE: return for_clients(r, e, do_pause, ending);
    case LB_EV_CLOCK_SKEW: return for_clients(r, e, do_skew, ending);
    case LB_EV_DELAY:
    case LB_EV_PARTITION:
    case LB_EV_RESET:
        return r->t->proxy && for_clients(r, e, do_network, ending);
    case LB_EV_KILL_SERVER:
    case LB_EV_PAUSE_SERVER:
    case LB_EV_FAILOVER:
    case LB_EV_DELAY_REPLICATION:
    case LB_EV_PARTITION_REPLICATION:
        return do_server(r, e, ending, f);
    case LB_EV_CRASH_HOST:  /* the simulator's only: validation keeps it from a real run */
        return false;
    }
    return false;
}

int64_t rn_planned_us(const lb_scenario *sc)
{
    int64_t total = 0;
    for (size_t g = 0; g < sc->ngroups; g++) {
        int64_t d = sc->groups[g].workload.duration_ms;
        if (d < 0)
            return -1;
        total = d * 1000 > total ? d * 1000 : total;
    }
    return total;
}

/* One line, rewritten in place four times a second once the run is a second old: the variant,
 * elapsed of planned, acquisitions/s, timeouts, errors and faults so far. */
static void progress(run *r, int64_t now, lb_run_result *out, int64_t *next_us)
{
    if (!r->t->progress || now < *next_us)
        return;
    *next_us = now + 250000;
    long long acq = 0, timeouts = 0, errors = 0;
    for (size_t i = 0; i < r->n; i++) {
        lb_wl_tally *t = &r->clients[i].tally;
        acq += atomic_load_explicit(&t->acquired, memory_order_relaxed);
        timeouts += atomic_load_explicit(&t->timeouts, memory_order_relaxed);
        errors += atomic_load_explicit(&t->errors, memory_order_relaxed);
    }
    double s = (double)(now - r->t0) / 1e6;
    if (s < 1.0)
        return;
    char total[32] = "";
    int64_t planned = rn_planned_us(r->sc);
    if (planned > 0)
        snprintf(total, sizeof total, " / %.1f", (double)planned / 1e6);
    fprintf(stderr, "\r  %s  %.1f%s s  %.0f acquisitions/s  %lld timeouts  %lld errors  "
            "%lld faults \033[K", r->t->label ? r->t->label : "", s, total, (double)acq / s,
            timeouts, errors, (long long)out->faults_applied);
}

/* Waits until `at_us`, a client finishing, or the next progress tick, whichever comes first. */
static void wait_for(run *r, int64_t at_us)
{
    int64_t tick = dlock__mono_us() + 100000;
    struct timespec ts = dlock__mono_timespec(at_us < tick ? at_us : tick);
    pthread_mutex_lock(&r->done_mu);
    if (atomic_load(&r->running) > 0 && dlock__mono_us() < at_us)
        pthread_cond_timedwait(&r->done_cv, &r->done_mu, &ts);
    pthread_mutex_unlock(&r->done_mu);
}

/* Stops the groups whose deadline has come (all of them on Ctrl-C); returns the next deadline
 * still ahead. */
static int64_t stop_due_groups(run *r, int64_t now)
{
    int64_t next = INT64_MAX;
    bool all = lb_runner_stopped();
    for (size_t g = 0; g < r->sc->ngroups; g++) {
        if (r->stopped[g])
            continue;
        if (all || now >= r->deadline[g])
            stop_group(r, g);
        else if (r->deadline[g] < next)
            next = r->deadline[g];
    }
    return next;
}

void rn_schedule(run *r, lb_run_result *out)
{
    const lb_scenario *sc = r->sc;
    action *acts = calloc(2 * sc->nevents + 1, sizeof *acts);
    size_t n = acts ? rn_fault_actions(sc, acts) : 0, next = 0;
    int64_t next_progress = 0;
    while (atomic_load(&r->running) > 0) {
        int64_t now = dlock__mono_us();
        progress(r, now, out, &next_progress);
        int64_t next_deadline = stop_due_groups(r, now);
        if (next < n && now - r->t0 >= acts[next].at_us) {
            action *a = &acts[next++];
            const lb_event *e = &sc->events[a->event];
            lb_fault_record *f = &out->faults[a->event];
            bool ok = apply(r, e, a->ending, f);
            if (!a->ending) {
                f->applied = ok;
                f->start_us = ok ? dlock__mono_us() - r->t0 : -1;
                out->faults_applied += ok;
            } else if (f->applied) {
                f->end_us = dlock__mono_us() - r->t0;
            }
            continue;
        }
        int64_t wake = next < n ? r->t0 + acts[next].at_us : INT64_MAX;
        wait_for(r, next_deadline < wake ? next_deadline : wake);
    }
    /* Faults still open when the clients finished end with the run; heal what we broke. */
    for (; next < n; next++) {
        action *a = &acts[next];
        if (a->ending && out->faults[a->event].applied) {
            apply(r, &sc->events[a->event], true, &out->faults[a->event]);
            out->faults[a->event].end_us = dlock__mono_us() - r->t0;
        }
    }
    if (r->t->progress && dlock__mono_us() - r->t0 >= 1000000)
        fputc('\n', stderr);
    free(acts);
}

/* The real windows of the faults, once the run is over. A "when": "holding" event counts from
 * the moment it fired (if it ever did), not from when it was armed; a fault with no end of its
 * own (a kill without restart, a clock skew) lasts to the end of the run. */
void rn_fault_windows_of(const lb_scenario *sc, const int64_t *fired_start,
                         const int64_t *fired_end, lb_run_result *out)
{
    for (size_t i = 0; i < sc->nevents; i++) {
        const lb_event *e = &sc->events[i];
        lb_fault_record *f = &out->faults[i];
        if (e->when_holding) {
            bool did = fired_start[i] >= 0;
            out->faults_applied -= f->applied && !did;
            f->applied = did;
            f->start_us = did ? fired_start[i] : -1;
            f->end_us = did && e->action == LB_EV_PAUSE ? fired_end[i] : -1;
        } else if (f->applied && f->end_us < 0 &&
                   (((e->action == LB_EV_KILL_SERVER || e->action == LB_EV_CRASH_HOST) &&
                     e->restart_after_ms < 0) ||
                    e->action == LB_EV_CLOCK_SKEW)) {
            f->end_us = out->elapsed_us;
        }
    }
}

void rn_fault_windows(run *r, lb_run_result *out)
{
    size_t n = r->sc->nevents;
    int64_t *start = calloc(2 * n + 1, sizeof *start), *end = start ? start + n : NULL;
    if (!start)
        return;  /* out of memory: the windows stay as applied */
    for (size_t i = 0; i < n; i++) {  /* the clients have finished: plain reads from here */
        start[i] = atomic_load(&r->fired_start[i]);
        end[i] = atomic_load(&r->fired_end[i]);
    }
    rn_fault_windows_of(r->sc, start, end, out);
    free(start);
}
