/* redis.c -- the modelled server: connections and their query buffers, the event loop in
 * virtual time, blocked clients, MULTI/EXEC and WATCH, pause, kill and restart.
 *
 * The event loop is Redis 7.0's (ae.c, server.c beforeSleep, blocked.c, timeout.c):
 *   - an iteration starts when input is waiting and the server is free, or at a cron tick that
 *     has a timed-out blocked client to answer; an idle server sleeps to the next tick;
 *   - it reads every connection whose input arrived by its start, in the order they became
 *     readable, and runs each one's commands in turn, us_per_command each (plus us_per_script
 *     for each redis.call a script makes); a command that blocks (BLPOP on empty lists) leaves the rest of that
 *     connection's commands in its query buffer;
 *   - after every command, clients blocked on a list that got elements are served, first
 *     blocked first, and queued as unblocked (processCommand -> handleClientsBlockedOnKeys);
 *   - serverCron runs when due (dynamic hz as Redis: more clients, higher hz);
 *   - beforeSleep: blocked clients whose deadline passed (deadline < now in ms) get nil (a WAIT
 *     gets the count of replicas that acknowledged, repl.c); the
 *     unblocked clients run what is pipelined behind their BLPOP; the AOF is written (and under
 *     appendfsync always, fsynced; under everysec, fsynced at the first iteration end in a new
 *     second); every reply of the iteration leaves at its end.
 * An iteration is computed when it starts (its input is fixed then) and its replies held until
 * its end, so a pause or a kill that falls inside it can still delay or drop them. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/model.h"

#define MAX_CLIENTS_PER_CLOCK_TICK 200
#define CONFIG_MAX_HZ 500

void sim_server_params_init(sim_server_params *p)
{
    memset(p, 0, sizeof *p);
    p->us_per_command = 8;
    p->us_per_script = 10;
    p->hz = 10;
    p->dynamic_hz = true;
    p->persistence = LB_PERSIST_NONE;
    p->unix_epoch_us = 1700000000LL * 1000000;
    p->requirepass = NULL;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* ---- heaps of connections --------------------------------------------------------------- */

static int *heap_idx(const sim_heap *h, sim_conn *c)
{
    return (int *)((char *)c + h->idx_off);
}

static void heap_set(sim_heap *h, int i, sim_conn *c)
{
    h->a[i] = c;
    *heap_idx(h, c) = i;
}

static void heap_up(sim_heap *h, int i)
{
    sim_conn *c = h->a[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!h->less(c, h->a[parent]))
            break;
        heap_set(h, i, h->a[parent]);
        i = parent;
    }
    heap_set(h, i, c);
}

static void heap_down(sim_heap *h, int i)
{
    sim_conn *c = h->a[i];
    for (;;) {
        int l = 2 * i + 1, m = i;
        sim_conn *best = c;
        if (l < h->n && h->less(h->a[l], best))
            m = l, best = h->a[l];
        if (l + 1 < h->n && h->less(h->a[l + 1], best))
            m = l + 1, best = h->a[l + 1];
        if (m == i)
            break;
        heap_set(h, i, best);
        i = m;
    }
    heap_set(h, i, c);
}

static void heap_push(sim_heap *h, sim_conn *c)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        sim_conn **a = realloc(h->a, (size_t)h->cap * sizeof *a);
        if (!a)
            abort();
        h->a = a;
    }
    h->a[h->n] = c;
    *heap_idx(h, c) = h->n;
    h->n++;
    heap_up(h, h->n - 1);
}

static void heap_remove(sim_heap *h, sim_conn *c)
{
    int i = *heap_idx(h, c);
    if (i < 0)
        return;
    *heap_idx(h, c) = -1;
    h->n--;
    if (i == h->n)
        return;
    sim_conn *moved = h->a[h->n];
    heap_set(h, i, moved);
    heap_up(h, i);
    heap_down(h, *heap_idx(h, moved));
}

static bool ready_less(const sim_conn *a, const sim_conn *b)
{
    if (a->qhead->at_us != b->qhead->at_us)
        return a->qhead->at_us < b->qhead->at_us;
    return a->qhead->seq < b->qhead->seq;
}

static bool timeout_less(const sim_conn *a, const sim_conn *b)
{
    if (a->block->deadline_ms != b->block->deadline_ms)
        return a->block->deadline_ms < b->block->deadline_ms;
    return a->id < b->id;
}

/* ---- commands in query buffers ---------------------------------------------------------- */

/* A command with room for need bytes after its header, from the free list when one fits. */
static sim_cmd *cmd_alloc(sim_server *s, size_t need)
{
    sim_cmd *c = s->free_cmds;
    if (c && c->cap >= need) {
        s->free_cmds = c->next;
    } else {
        if (c) {
            s->free_cmds = c->next;
            free(c);
        }
        c = malloc(sizeof *c + need);
        if (!c)
            abort();
        c->cap = need;
    }
    c->next = NULL;
    return c;
}

/* Copies p (len bytes) to *data, NUL-terminated, and moves *data past it. */
static sim_str cmd_put(char **data, const char *p, size_t len)
{
    sim_str a = {*data, len};
    memcpy(*data, p, len);
    (*data)[len] = '\0';
    *data += len + 1;
    return a;
}

/* A command for a query buffer: argv copied after it, or (ref) only pointed at. */
static sim_cmd *cmd_new(sim_server *s, int argc, const char *const *argv, const size_t *len,
                        bool ref)
{
    size_t need = (size_t)argc * sizeof(sim_str);
    for (int i = 0; i < argc && !ref; i++)
        need += len[i] + 1;
    sim_cmd *c = cmd_alloc(s, need);
    c->argc = argc;
    c->ref = ref;
    c->argv = (sim_str *)(c + 1);
    char *data = (char *)(c->argv + argc);
    for (int i = 0; i < argc; i++)
        c->argv[i] = ref ? (sim_str){argv[i], len[i]} : cmd_put(&data, argv[i], len[i]);
    return c;
}

/* A copy of q that owns its strings, to take q's place in its list. */
static sim_cmd *cmd_own(sim_server *s, const sim_cmd *q)
{
    size_t need = (size_t)q->argc * sizeof(sim_str);
    for (int i = 0; i < q->argc; i++)
        need += q->argv[i].len + 1;
    sim_cmd *c = cmd_alloc(s, need);
    c->next = q->next;
    c->at_us = q->at_us;
    c->seq = q->seq;
    c->argc = q->argc;
    c->ref = false;
    c->argv = (sim_str *)(c + 1);
    char *data = (char *)(c->argv + c->argc);
    for (int i = 0; i < q->argc; i++)
        c->argv[i] = cmd_put(&data, q->argv[i].p, q->argv[i].len);
    return c;
}

static void cmd_release(sim_server *s, sim_cmd *c)
{
    c->next = s->free_cmds;
    s->free_cmds = c;
}

static void cmd_release_all(sim_server *s, sim_cmd **head, sim_cmd **tail)
{
    for (sim_cmd *c = *head, *n; c; c = n) {
        n = c->next;
        cmd_release(s, c);
    }
    *head = *tail = NULL;
}

/* ---- replies ---------------------------------------------------------------------------- */

static void add_reply(sim_server *s, sim_conn *c, const dlock_reply *r)
{
    if (s->nout == s->capout) {
        s->capout = s->capout ? s->capout * 2 : 256;
        sim_outreply *o = realloc(s->out, s->capout * sizeof *o);
        if (!o)
            abort();
        s->out = o;
    }
    s->out[s->nout++] = (sim_outreply){c, r};
    c->pending++;
}

static void free_graveyard(sim_server *s)
{
    for (sim_conn *c = s->graveyard, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    s->graveyard = NULL;
}

/* ---- WATCH ------------------------------------------------------------------------------ */

static void watch_unlink(sim_server *s, sim_watch *w)
{
    sim_db *db = db_get(s, w->db);
    if (w->prev)
        w->prev->next = w->next;
    else if (w->next)
        w->key->val = w->next;
    else
        dict_delete(&db->watched, w->key);
    if (w->next)
        w->next->prev = w->prev;
}

void conn_unwatch_all(sim_conn *c)
{
    for (sim_watch *w = c->watches, *n; w; w = n) {
        n = w->next_in_conn;
        watch_unlink(c->s, w);
        free(w);
    }
    c->watches = NULL;
}

void conn_watch(sim_exec *x, const sim_str *key)
{
    sim_conn *c = x->c;
    for (sim_watch *w = c->watches; w; w = w->next_in_conn)
        if (w->db == x->dbi && w->key->klen == key->len && memcmp(w->key->key, key->p, key->len) == 0)
            return;
    sim_watch *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    sim_dent *e = dict_find(&x->db->watched, key->p, key->len);
    if (!e)
        e = dict_add(&x->db->watched, key->p, key->len, NULL);
    sim_dent *k = dict_find(&x->db->keys, key->p, key->len);
    w->c = c;
    w->key = e;
    w->db = x->dbi;
    w->expired = k && db_is_expired(k->val, x->now_ms);
    w->next = e->val;  /* at the head: the order of watchers does not matter */
    if (w->next)
        w->next->prev = w;
    e->val = w;
    w->next_in_conn = c->watches;
    c->watches = w;
}

/* touchWatchedKey: every client watching key is dirty, except one that watched it already
 * expired and sees it deleted now (logically no change) -- and, as Redis 7.0 does, the scan
 * stops at a client that watched it expired and finds it present again. */
void db_signal_modified(sim_exec *x, const sim_str *key)
{
    if (x->db->watched.n == 0)
        return;
    sim_dent *e = dict_find(&x->db->watched, key->p, key->len);
    if (!e)
        return;
    bool exists = dict_find(&x->db->keys, key->p, key->len) != NULL;
    for (sim_watch *w = e->val, *n; w; w = n) {
        n = w->next;
        if (w->expired) {
            if (!exists) {
                w->expired = false;
                continue;
            }
            break;
        }
        sim_conn *c = w->c;
        c->flags |= SIM_C_DIRTY_CAS;
        bool last = !n;
        conn_unwatch_all(c);  /* frees w, and e when c was its last watcher */
        if (last)
            break;
    }
}

/* ---- MULTI / EXEC ------------------------------------------------------------------------ */

static void discard_transaction(sim_conn *c)
{
    cmd_release_all(c->s, &c->mhead, &c->mtail);
    c->mcount = 0;
    c->flags &= ~(unsigned)(SIM_C_MULTI | SIM_C_DIRTY_CAS | SIM_C_DIRTY_EXEC);
    conn_unwatch_all(c);
}

const dlock_reply *cmd_multi(sim_exec *x, int argc, const sim_str *argv)
{
    if (x->c->flags & SIM_C_MULTI)
        return r_error(x, "ERR MULTI calls can not be nested");
    x->c->flags |= SIM_C_MULTI;
    return &sim_r_ok;
}

const dlock_reply *cmd_discard(sim_exec *x, int argc, const sim_str *argv)
{
    if (!(x->c->flags & SIM_C_MULTI))
        return r_error(x, "ERR DISCARD without MULTI");
    discard_transaction(x->c);
    return &sim_r_ok;
}

static bool watched_key_expired(sim_exec *x)
{
    for (sim_watch *w = x->c->watches; w; w = w->next_in_conn) {
        if (w->expired)
            continue;
        sim_dent *k = dict_find(&db_get(x->s, w->db)->keys, w->key->key, w->key->klen);
        if (k && db_is_expired(k->val, x->now_ms))
            return true;
    }
    return false;
}

const dlock_reply *cmd_exec(sim_exec *x, int argc, const sim_str *argv)
{
    sim_conn *c = x->c;
    if (!(c->flags & SIM_C_MULTI))
        return r_error(x, "ERR EXEC without MULTI");
    if (watched_key_expired(x))
        c->flags |= SIM_C_DIRTY_CAS;
    if (c->flags & (SIM_C_DIRTY_CAS | SIM_C_DIRTY_EXEC)) {
        const dlock_reply *r = c->flags & SIM_C_DIRTY_EXEC
            ? r_error(x, "EXECABORT Transaction discarded because of previous errors.")
            : &sim_r_nil;
        discard_transaction(c);
        return r;
    }
    conn_unwatch_all(c);
    dlock_reply *r = r_array(x, (size_t)c->mcount);
    bool deny = x->deny_blocking;
    x->deny_blocking = true;
    size_t i = 0;
    for (sim_cmd *q = c->mhead; q; q = q->next, i++) {
        const sim_command *cmd = sim_lookup_command(q->argv[0].p, q->argv[0].len);
        ((dlock_reply *)r->element)[i] = *sim_call(x, cmd, q->argc, q->argv);
    }
    x->deny_blocking = deny;
    discard_transaction(c);
    return r;
}

const dlock_reply *cmd_watch(sim_exec *x, int argc, const sim_str *argv)
{
    if (x->c->flags & SIM_C_MULTI)
        return r_error(x, "ERR WATCH inside MULTI is not allowed");
    if (!(x->c->flags & SIM_C_DIRTY_CAS))
        for (int j = 1; j < argc; j++)
            conn_watch(x, &argv[j]);
    return &sim_r_ok;
}

const dlock_reply *cmd_unwatch(sim_exec *x, int argc, const sim_str *argv)
{
    conn_unwatch_all(x->c);
    x->c->flags &= ~(unsigned)SIM_C_DIRTY_CAS;
    return &sim_r_ok;
}

/* AUTH [user] password. Without requirepass the default user takes any password, and AUTH
 * with a password alone is an error, as in Redis 7. */
const dlock_reply *cmd_auth(sim_exec *x, int argc, const sim_str *argv)
{
    const char *pass = x->s->p.requirepass;
    if (argc > 3)
        return r_error(x, "ERR syntax error");
    if (!pass && argc == 2)
        return r_error(x, "ERR AUTH <password> called without any password configured for the "
                          "default user. Are you sure your configuration is correct?");
    bool user_ok = argc == 2 || sim_eqi(&argv[1], "default");
    const sim_str *given = &argv[argc - 1];
    bool ok = user_ok && (!pass || (given->len == strlen(pass) &&
                                    memcmp(given->p, pass, given->len) == 0));
    if (!ok)
        return r_error(x, "WRONGPASS invalid username-password pair or user is disabled.");
    x->c->flags |= SIM_C_AUTHED;
    return &sim_r_ok;
}

/* ---- blocking --------------------------------------------------------------------------- */

void conn_block(sim_exec *x, int nkeys, const sim_str *keys, int64_t deadline_ms, bool head)
{
    sim_conn *c = x->c;
    sim_block *b = malloc(sizeof *b + (size_t)nkeys * sizeof(sim_bwait));
    if (!b)
        abort();
    b->deadline_ms = deadline_ms;
    b->head = head;
    b->replicas = false;
    b->wait_prev = b->wait_next = NULL;
    b->nkeys = 0;
    for (int i = 0; i < nkeys; i++) {
        bool dup = false;
        for (int j = 0; j < i; j++)
            dup |= keys[j].len == keys[i].len && memcmp(keys[j].p, keys[i].p, keys[i].len) == 0;
        if (dup)
            continue;
        sim_dent *e = dict_find(&x->db->blocking, keys[i].p, keys[i].len);
        if (!e) {
            sim_bqueue *q = calloc(1, sizeof *q);
            if (!q)
                abort();
            e = dict_add(&x->db->blocking, keys[i].p, keys[i].len, q);
        }
        sim_bqueue *q = e->val;
        sim_bwait *w = &b->w[b->nkeys++];
        *w = (sim_bwait){q->tail, NULL, c, e, x->dbi};
        if (q->tail)
            q->tail->next = w;
        else
            q->head = w;
        q->tail = w;
    }
    c->block = b;
    c->flags |= SIM_C_BLOCKED;
    if (deadline_ms)
        heap_push(&x->s->timeouts, c);
}

/* Leaves every key's queue; the client is no longer blocked. */
static void block_abandon(sim_server *s, sim_conn *c)
{
    sim_block *b = c->block;
    if (!b)
        return;
    for (int i = 0; i < b->nkeys; i++) {
        sim_bwait *w = &b->w[i];
        sim_bqueue *q = w->key->val;
        if (w->prev)
            w->prev->next = w->next;
        else
            q->head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            q->tail = w->prev;
        if (!q->head) {
            free(q);
            dict_delete(&db_get(s, w->db)->blocking, w->key);
        }
    }
    heap_remove(&s->timeouts, c);
    if (b->replicas) {
        sim_conn *p = b->wait_prev, *n = b->wait_next;
        *(p ? &p->block->wait_next : &s->waiting_head) = n;
        *(n ? &n->block->wait_prev : &s->waiting_tail) = p;
    }
    free(b);
    c->block = NULL;
    c->flags &= ~(unsigned)SIM_C_BLOCKED;
}

static void unblock(sim_server *s, sim_conn *c)
{
    block_abandon(s, c);
    if (c->flags & SIM_C_UNBLOCKED)
        return;
    c->flags |= SIM_C_UNBLOCKED;
    c->next_unblocked = NULL;
    if (s->unblocked_tail)
        s->unblocked_tail->next_unblocked = c;
    else
        s->unblocked_head = c;
    s->unblocked_tail = c;
}

/* handleClientsBlockedOnKeys: each list that got elements serves its blocked clients in the
 * order they blocked, one element each, while it has any. */
static void serve_ready_keys(sim_server *s, int64_t t)
{
    while (s->nready_keys) {
        sim_ready_key *keys = s->ready_keys;  /* serving may signal more: a fresh list */
        size_t n = s->nready_keys;
        s->ready_keys = NULL;
        s->nready_keys = s->cap_ready_keys = 0;
        for (size_t i = 0; i < n; i++) {
            sim_db *db = db_get(s, keys[i].db);
            sim_exec x = {.s = s, .db = db, .dbi = keys[i].db, .now_us = t, .now_ms = t / 1000};
            sim_str key = {keys[i].key, keys[i].klen};
            sim_val *v = db_lookup(&x, &key);
            sim_dent *e = dict_find(&db->blocking, key.p, key.len);
            while (v && v->type == SIM_LIST && e) {
                sim_bqueue *q = e->val;
                sim_conn *c = q->head->c;
                bool last = q->head == q->tail;
                x.c = c;
                add_reply(s, c, sim_pop_for_blocked(&x, &key, v, c->block->head));
                unblock(s, c);  /* frees q and e after the last one */
                if (last)
                    break;
                v = db_lookup(&x, &key);
            }
            free(keys[i].key);
        }
        free(keys);
    }
}

/* ---- running commands ------------------------------------------------------------------- */

static const dlock_reply *unknown_command(sim_exec *x, const sim_cmd *q)
{
    char args[160];
    size_t n = 0;
    args[0] = '\0';
    for (int i = 1; i < q->argc && n < 128; i++) {
        int w = snprintf(args + n, sizeof args - n, "'%.*s' ", (int)(128 - n),
                         q->argv[i].p);
        if (w < 0)
            break;
        n += (size_t)w < sizeof args - n ? (size_t)w : sizeof args - n - 1;
    }
    return r_error(x, "ERR unknown command '%.128s', with args beginning with: %s",
                   q->argv[0].p, args);
}

static bool is_transaction_control(const sim_command *cmd)
{
    return cmd->fn == cmd_exec || cmd->fn == cmd_discard || cmd->fn == cmd_multi ||
           cmd->fn == cmd_watch;
}

/* processCommand for one command of c's query buffer, at *t; *t moves on by its cost. */
static void process_command(sim_server *s, sim_conn *c, sim_cmd *q, int64_t *t)
{
    sim_exec x = {.s = s, .c = c, .db = db_get(s, c->db), .dbi = c->db,
                  .now_us = *t, .now_ms = *t / 1000};
    const sim_command *cmd = sim_lookup_command(q->argv[0].p, q->argv[0].len);
    const dlock_reply *r = NULL;
    bool queued = false, rejected = true;
    *t += s->p.us_per_command;
    s->stats.commands++;
    if (!cmd) {
        r = unknown_command(&x, q);
    } else if ((cmd->arity > 0 && cmd->arity != q->argc) || q->argc < -cmd->arity) {
        r = r_arity(&x, cmd->name);
    } else if (!(c->flags & SIM_C_AUTHED) && !(cmd->flags & SIM_F_NOAUTH)) {
        r = r_error(&x, "NOAUTH Authentication required.");
    } else if ((c->flags & SIM_C_MULTI) && !is_transaction_control(cmd)) {
        rejected = false;
        q->next = NULL;
        if (c->mtail)
            c->mtail->next = q;
        else
            c->mhead = q;
        c->mtail = q;
        c->mcount++;
        queued = true;
        static const dlock_reply queued_reply = {.type = DLOCK_REPLY_STATUS, .str = "QUEUED",
                                                 .len = 6};
        r = &queued_reply;
    } else {
        rejected = false;
        r = sim_call(&x, cmd, q->argc, q->argv);
        if (cmd->flags & SIM_F_SCRIPT)  /* a script costs by the work it does */
            *t += s->p.us_per_script * (int64_t)x.script_calls;
    }
    if (rejected && (c->flags & SIM_C_MULTI))
        c->flags |= SIM_C_DIRTY_EXEC;  /* rejected while queueing: EXEC will abort */
    if (!queued)
        cmd_release(s, q);
    if (!x.blocked)
        add_reply(s, c, r);
    serve_ready_keys(s, *t);
    if (s->grp)
        repl_propagate(s);  /* the command's effects, and the pops it served */
}

/* Runs c's commands that arrived by limit, until it blocks or has none. */
static void process_input(sim_server *s, sim_conn *c, int64_t limit, int64_t *t)
{
    while (c->qhead && c->qhead->at_us <= limit && !(c->flags & (SIM_C_BLOCKED | SIM_C_DEAD))) {
        sim_cmd *q = c->qhead;
        c->qhead = q->next;
        if (!c->qhead)
            c->qtail = NULL;
        process_command(s, c, q, t);
    }
    if ((c->flags & SIM_C_EOF) && (!c->qhead || (c->flags & SIM_C_BLOCKED)))
        sim_conn_close(c, *t);  /* read up to its FIN: freed, a blocked one with the rest unrun */
}

static void requeue(sim_server *s, sim_conn *c)
{
    if (c->qhead && c->ready_idx < 0 &&
        !(c->flags & (SIM_C_BLOCKED | SIM_C_UNBLOCKED | SIM_C_DEAD | SIM_C_CLOSED)))
        heap_push(&s->ready, c);
}

/* ---- the event loop --------------------------------------------------------------------- */

static int dynamic_hz(const sim_server *s)
{
    int hz = s->p.hz;
    if (!s->p.dynamic_hz)
        return hz;
    while (s->nconns / (size_t)hz > MAX_CLIENTS_PER_CLOCK_TICK) {
        hz *= 2;
        if (hz > CONFIG_MAX_HZ) {
            hz = CONFIG_MAX_HZ;
            break;
        }
    }
    return hz;
}

static int64_t period_us(int hz)
{
    return 1000000 / hz;
}

static void fsync_if_due(sim_server *s, int64_t t)
{
    if (s->p.persistence == LB_PERSIST_AOF_ALWAYS) {
        undo_trim(s);
    } else if (s->p.persistence == LB_PERSIST_AOF_EVERYSEC && s->nundo > 0 &&
               t / 1000000 > s->last_fsync_sec) {
        undo_trim(s);
        s->last_fsync_sec = t / 1000000;
    }
}

static void cron(sim_server *s, int64_t t)
{
    s->hz = dynamic_hz(s);
    s->next_cron = t + period_us(s->hz);
}

/* The cron ticks of an idle server before w, which nothing needed an iteration for: their only
 * trace is the hz and an fsync. */
static void catch_up_cron(sim_server *s, int64_t w)
{
    int64_t tick = max64(s->next_cron, max64(s->t_free, s->paused_until));
    if (tick >= w)
        return;
    cron(s, tick);
    fsync_if_due(s, tick);
    int64_t p = period_us(s->hz);
    if (s->next_cron < w) {
        int64_t k = (w - 1 - s->next_cron) / p;  /* the last tick before w */
        tick = s->next_cron + k * p;
        s->next_cron = tick + p;
        fsync_if_due(s, tick);
    }
}

static void handle_timeouts(sim_server *s, int64_t t)
{
    int64_t now_ms = t / 1000;
    while (s->timeouts.n && s->timeouts.a[0]->block->deadline_ms < now_ms) {
        sim_conn *c = s->timeouts.a[0];
        sim_exec x = {.s = s, .c = c};
        add_reply(s, c, c->block->replicas ? r_int(&x, repl_acked(s, c->block->wait_off))
                                           : &sim_r_nil);
        unblock(s, c);
    }
}

/* processClientsWaitingReplicas: a WAIT that enough replicas acknowledged is answered; only
 * the clients blocked in WAIT are looked at, in the order they blocked. */
static void serve_waiting(sim_server *s)
{
    for (sim_conn *c = s->waiting_head, *next; c; c = next) {
        next = c->block->wait_next;   /* unblock unlinks c */
        int n = repl_acked(s, c->block->wait_off);
        if (n < c->block->wait_n)
            continue;
        sim_exec x = {.s = s, .c = c};
        add_reply(s, c, r_int(&x, n));
        unblock(s, c);
    }
}

static void process_unblocked(sim_server *s, int64_t *t)
{
    while (s->unblocked_head) {
        sim_conn *c = s->unblocked_head;
        s->unblocked_head = c->next_unblocked;
        if (!s->unblocked_head)
            s->unblocked_tail = NULL;
        c->flags &= ~(unsigned)SIM_C_UNBLOCKED;
        process_input(s, c, *t, t);
        requeue(s, c);
    }
}

/* An iteration takes the input that has come by w, when the server wakes; on shared cores it
 * runs once one is free, and everything it does is timed from then. */
static void iterate(sim_server *s, int64_t w)
{
    int64_t start = s->p.cores ? sim_cores_start(s->p.cores, w) : w;
    catch_up_cron(s, start);
    s->iter++;
    s->stats.iterations++;
    s->in_iter = true;
    int64_t t = start;
    repl_take_acks(s, w);
    while (s->ready.n && s->ready.a[0]->qhead->at_us <= w) {
        sim_conn *c = s->ready.a[0];
        heap_remove(&s->ready, c);
        process_input(s, c, w, &t);
        requeue(s, c);
    }
    if (s->next_cron <= t)
        cron(s, t);
    handle_timeouts(s, t);
    serve_waiting(s);
    process_unblocked(s, &t);
    if (s->p.cores && t > start)
        t = sim_cores_book(s->p.cores, w, t - start);
    s->iter_end = t;
    s->t_free = t;
}

static void finish_iteration(sim_server *s)
{
    fsync_if_due(s, s->iter_end);  /* the AOF is written before the replies */
    repl_send(s, s->iter_end);
    for (size_t i = 0; i < s->nout; i++) {
        sim_conn *c = s->out[i].c;
        c->pending--;
        if (!(c->flags & (SIM_C_CLOSED | SIM_C_DEAD | SIM_C_CLOSING)))
            s->fn(s->ctx, c->owner, s->iter_end, s->out[i].r);
    }
    s->nout = 0;
    sa_reset(&s->arena);
    free_graveyard(s);
    s->in_iter = false;
}

static int64_t next_wake(const sim_server *s)
{
    if (s->down)
        return INT64_MAX;
    int64_t base = max64(s->t_free, s->paused_until);
    int64_t w = INT64_MAX;
    if (s->ready.n)
        w = max64(base, s->ready.a[0]->qhead->at_us);
    if (s->timeouts.n) {
        /* it fires at the first tick at which now_ms > deadline_ms */
        int64_t due = (s->timeouts.a[0]->block->deadline_ms + 1) * 1000;
        int64_t tick = max64(s->next_cron, base);
        if (tick < due) {
            int64_t p = period_us(dynamic_hz(s));
            tick += (due - tick + p - 1) / p * p;
        }
        w = min64(w, tick);
    }
    if (s->waiting_head)
        w = min64(w, max64(base, repl_next_ack(s)));
    return w;
}

void sim_server_run(sim_server *s, int64_t now_us)
{
    for (;;) {
        int64_t d = repl_next_delivery(s);  /* the links: replicas apply what reached them */
        int64_t w = s->down ? INT64_MAX : s->in_iter ? s->iter_end : next_wake(s);
        if (d <= now_us && d <= w) {
            repl_deliver_next(s);
            continue;
        }
        if (w > now_us)
            return;
        if (s->in_iter)
            finish_iteration(s);
        else
            iterate(s, w);
    }
}

int64_t sim_server_next_us(const sim_server *s)
{
    int64_t w = s->down ? INT64_MAX : s->in_iter ? s->iter_end : next_wake(s);
    return min64(w, repl_next_delivery(s));
}

void sim_server_pause(sim_server *s, int64_t now_us, int64_t until_us)
{
    sim_server_run(s, now_us);
    if (until_us <= now_us || s->down)
        return;
    if (s->in_iter && s->iter_end > now_us) {
        s->iter_end += until_us - now_us;
        s->t_free = s->iter_end;
    }
    s->paused_until = max64(s->paused_until, until_us);
}

/* ---- connections ------------------------------------------------------------------------ */

sim_conn *sim_conn_open(sim_server *s, void *owner)
{
    if (s->down)
        return NULL;
    sim_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->s = s;
    c->owner = owner;
    c->ready_idx = c->timeout_idx = -1;
    c->id = s->next_conn_id++;
    if (!s->p.requirepass)
        c->flags |= SIM_C_AUTHED;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;
}

bool sim_conn_is_dead(const sim_conn *c)
{
    return c->flags & SIM_C_DEAD;
}

static void push(sim_conn *c, int64_t now_us, int argc, const char *const *argv,
                 const size_t *argvlen, bool ref)
{
    sim_server *s = c->s;
    if ((c->flags & SIM_C_DEAD) || argc < 1)
        return;
    sim_cmd *q = cmd_new(s, argc, argv, argvlen, ref);
    q->at_us = now_us;
    q->seq = s->next_seq++;
    if (c->qtail)
        c->qtail->next = q;
    else
        c->qhead = q;
    c->qtail = q;
    requeue(s, c);
}

void sim_conn_push(sim_conn *c, int64_t now_us, int argc, const char *const *argv,
                   const size_t *argvlen)
{
    push(c, now_us, argc, argv, argvlen, false);
}

void sim_conn_push_ref(sim_conn *c, int64_t now_us, int argc, const char *const *argv,
                       const size_t *argvlen)
{
    push(c, now_us, argc, argv, argvlen, true);
}

/* Everything the server holds for c, gone: its input, transaction, watches, block. */
static void conn_drop_state(sim_server *s, sim_conn *c)
{
    cmd_release_all(s, &c->qhead, &c->qtail);
    discard_transaction(c);
    block_abandon(s, c);
    heap_remove(&s->ready, c);
    if (c->flags & SIM_C_UNBLOCKED) {
        sim_conn **p = &s->unblocked_head, *prev = NULL;
        while (*p && *p != c)
            prev = *p, p = &(*p)->next_unblocked;
        if (*p) {
            *p = c->next_unblocked;
            if (s->unblocked_tail == c)
                s->unblocked_tail = prev;
        }
        c->flags &= ~(unsigned)SIM_C_UNBLOCKED;
    }
}

void sim_conn_close(sim_conn *c, int64_t now_us)
{
    if (!c)
        return;
    sim_server *s = c->s;
    if (!(c->flags & SIM_C_DEAD)) {
        conn_drop_state(s, c);
        s->nconns--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->pending || s->in_iter) {  /* replies of the iteration in progress, or the iteration
                                        itself (a client read up to its FIN), still point at it */
        c->flags |= SIM_C_CLOSED;
        c->next = s->graveyard;
        s->graveyard = c;
    } else {
        free(c);
    }
}

/* Owned copies in place of the commands of the list that point at their pusher's strings. */
static void cmds_own(sim_server *s, sim_cmd **head, sim_cmd **tail)
{
    for (sim_cmd **p = head; *p; p = &(*p)->next) {
        sim_cmd *q = *p;
        if (!q->ref)
            continue;
        *p = cmd_own(s, q);
        if (*tail == q)
            *tail = *p;
        cmd_release(s, q);
    }
}

void sim_conn_shutdown(sim_conn *c)
{
    c->flags |= SIM_C_CLOSING;
    cmds_own(c->s, &c->qhead, &c->qtail);
    cmds_own(c->s, &c->mhead, &c->mtail);  /* a MULTI's, for an EXEC still on its way */
}

/* Redis reads what came before the EOF and runs it; the EOF then frees the client, at once
 * when it is blocked (processInputBuffer skips a blocked client's input). process_input frees
 * one whose commands are still queued, once they have run or it blocks. */
void sim_conn_fin(sim_conn *c, int64_t now_us)
{
    c->flags |= SIM_C_CLOSING | SIM_C_EOF;
    if (!c->qhead || (c->flags & (SIM_C_BLOCKED | SIM_C_DEAD)))
        sim_conn_close(c, now_us);
}

/* The iteration in progress answers no one and its effects never leave for the replicas. */
static void abandon_iteration(sim_server *s)
{
    repl_drop_pending(s);
    for (size_t i = 0; i < s->nout; i++)
        s->out[i].c->pending--;
    s->nout = 0;
    sa_reset(&s->arena);
    free_graveyard(s);
    s->in_iter = false;
}

/* ---- the server ------------------------------------------------------------------------- */

sim_server *sim_server_new(const sim_server_params *p, sim_reply_fn fn, void *ctx)
{
    sim_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = *p;
    if (s->p.hz < 1)
        s->p.hz = 1;
    if (s->p.hz > CONFIG_MAX_HZ)
        s->p.hz = CONFIG_MAX_HZ;
    s->fn = fn;
    s->ctx = ctx;
    s->ready.less = ready_less;
    s->ready.idx_off = offsetof(sim_conn, ready_idx);
    s->timeouts.less = timeout_less;
    s->timeouts.idx_off = offsetof(sim_conn, timeout_idx);
    s->hz = s->p.hz;
    s->next_cron = period_us(s->hz);
    s->paused_until = INT64_MIN;
    if (script_init(s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void free_bqueue(void *q)
{
    free(q);
}

static void kill_connections(sim_server *s)
{
    for (sim_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (c->flags & SIM_C_DEAD)
            continue;
        conn_drop_state(s, c);
        c->flags |= SIM_C_DEAD;
        if (c->flags & SIM_C_EOF)
            sim_conn_close(c, 0);  /* its client is gone: no one else will close it */
    }
    s->nconns = 0;
    while (s->nready_keys)
        free(s->ready_keys[--s->nready_keys].key);
}

void sim_server_free(sim_server *s)
{
    if (!s)
        return;
    repl_free_group(s);
    repl_drop_pending(s);
    free(s->dirty);
    kill_connections(s);
    for (sim_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    s->nout = 0;
    free_graveyard(s);
    for (int i = 0; i < SIM_DBS; i++) {
        if (!s->db[i])
            continue;
        dict_clear(&s->db[i]->keys, val_free);
        dict_clear(&s->db[i]->blocking, free_bqueue);
        dict_clear(&s->db[i]->watched, NULL);
        free(s->db[i]);
    }
    undo_trim(s);
    free(s->undo);
    for (sim_cmd *c = s->free_cmds, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    script_free(s);
    sa_free(&s->arena);
    free(s->out);
    free(s->ready_keys);
    free(s->ready.a);
    free(s->timeouts.a);
    free(s);
}

void sim_server_kill(sim_server *s, int64_t now_us, bool host)
{
    sim_server_run(s, now_us);
    if (s->down)
        return;
    if (!s->in_iter)
        catch_up_cron(s, now_us + 1);  /* the idle ticks so far, and their fsyncs */
    /* the iteration in progress never wrote its AOF: before it is what the OS has */
    uint64_t unwritten = s->in_iter ? s->iter : s->iter + 1;
    switch (s->p.persistence) {
    case LB_PERSIST_NONE:
        db_flush_all(s);
        break;
    case LB_PERSIST_AOF_ALWAYS:
        undo_rollback(s, unwritten);
        break;
    case LB_PERSIST_AOF_EVERYSEC:
        undo_rollback(s, host ? 0 : unwritten);
        break;
    }
    undo_trim(s);
    abandon_iteration(s);
    kill_connections(s);
    script_flush(s);
    s->down = true;
}

/* A primary made a replica: its clients are disconnected, the iteration in progress answers no
 * one (its effects never leave), and the data it keeps until the resync replaces it. */
void sim_server_demote(sim_server *s, int64_t now_us)
{
    sim_server_run(s, now_us);
    if (s->down)
        return;
    abandon_iteration(s);
    s->t_free = max64(s->t_free, now_us);
    kill_connections(s);
}

void sim_server_restart(sim_server *s, int64_t now_us)
{
    if (!s->down)
        return;
    s->down = false;
    s->t_free = now_us;
    s->paused_until = INT64_MIN;
    s->hz = s->p.hz;
    s->next_cron = now_us + period_us(s->hz);
    s->last_fsync_sec = now_us / 1000000;
    repl_on_restart(s);
}

bool sim_server_is_down(const sim_server *s)
{
    return s->down;
}

void sim_server_get_stats(const sim_server *s, sim_server_stats *out)
{
    *out = s->stats;
    out->keys = s->db[0] ? s->db[0]->keys.n : 0;
}
