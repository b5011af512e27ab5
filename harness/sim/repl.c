/* repl.c -- replication in the modelled Redis: a primary, its replicas, the links between them.
 *
 * The primary replicates effects: after each command that wrote, the value each written key
 * has now (or its deletion), with its expiry as an absolute time (PEXPIREAT), is one entry of
 * the stream, and the offset counts entries. The entries of an iteration leave at its end, as
 * Redis writes the replicas' output buffers in beforeSleep, and cross each link in order (one
 * way: the group's one_way_us plus a delay-replication's latency); a partition-replication holds
 * what is not yet delivered, both ways, until it heals. A replica applies an entry when it
 * arrives and acknowledges its offset at once (the primary asks for acks, REPLCONF GETACK, when
 * a client waits); the primary takes acks in at its next iteration and answers the WAITs they
 * satisfy before it sleeps. A full resync (after a failover or a restart) copies the primary's
 * keys at once. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sim/model.h"

#define HELD INT64_MAX
#define MAX_MEMBERS 8

typedef struct rmsg {   /* an entry on its way to a replica, or an acknowledgement coming back */
    struct rmsg *next;
    int64_t at;         /* when it arrives (HELD: while a partition holds it) */
    sim_rentry *e;      /* to the replica: the entry */
    uint64_t off;       /* back: the offset acknowledged */
} rmsg;

typedef struct rqueue { /* one direction of a link: in order */
    rmsg *h, *t;
    int64_t last_at;    /* the latest arrival so far: none may overtake it */
} rqueue;

enum { TO, BACK };     /* a link's directions: entries to the member, its acknowledgements back */

typedef struct rlink {  /* the link from the primary to one member */
    rqueue q[2];
    uint64_t acked;     /* the offset the primary knows the member has */
    bool linked;        /* the member replicates the primary */
} rlink;

struct sim_group {
    sim_server *m[MAX_MEMBERS];
    int n;
    int primary;
    int64_t one_way_us, extra_us;
    bool held;
    /* Faults may overlap, as on the real drivers (replicas.c): the latest delay still in effect
     * applies, and the links stay cut while any partition lasts. */
    int64_t delays[8];
    int ndelays, partitions;
    rlink link[MAX_MEMBERS];
};

static void *xcalloc1(size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        abort();
    return p;
}

bool repl_is_primary(const sim_server *s)
{
    return s->grp && s->grp->m[s->grp->primary] == s;
}

static void entry_unref(sim_rentry *e)
{
    if (--e->refs > 0)
        return;
    for (size_t i = 0; i < e->n; i++) {
        free(e->k[i].key);
        val_free(e->k[i].v);
    }
    free(e);
}

void repl_note_write(sim_server *s, int db, const sim_str *key)
{
    if (!repl_is_primary(s))
        return;
    for (size_t i = 0; i < s->ndirty; i++)
        if (s->dirty[i].db == db && s->dirty[i].klen == key->len &&
            memcmp(s->dirty[i].key, key->p, key->len) == 0)
            return;
    if (s->ndirty == s->capdirty) {
        s->capdirty = s->capdirty ? 2 * s->capdirty : 8;
        sim_rkey *d = realloc(s->dirty, s->capdirty * sizeof *d);
        if (!d)
            abort();
        s->dirty = d;
    }
    char *k = malloc(key->len + 1);
    if (!k)
        abort();
    memcpy(k, key->p, key->len);
    k[key->len] = '\0';
    s->dirty[s->ndirty++] = (sim_rkey){db, k, key->len, NULL};
}

void repl_propagate(sim_server *s)
{
    if (s->ndirty == 0)
        return;
    sim_rentry *e = xcalloc1(sizeof *e + s->ndirty * sizeof(sim_rkey));
    e->refs = 1;  /* the pending list's */
    e->off = ++s->repl_off;
    e->n = s->ndirty;
    for (size_t i = 0; i < s->ndirty; i++) {
        sim_rkey *k = &s->dirty[i];
        sim_dent *d = dict_find(&db_get(s, k->db)->keys, k->key, k->klen);
        e->k[i] = *k;
        e->k[i].v = d ? val_copy(d->val) : NULL;
    }
    s->ndirty = 0;
    if (s->rpend_tail)
        s->rpend_tail->next = e;
    else
        s->rpend_head = e;
    s->rpend_tail = e;
}

void repl_drop_pending(sim_server *s)
{
    for (size_t i = 0; i < s->ndirty; i++)
        free(s->dirty[i].key);
    s->ndirty = 0;
    for (sim_rentry *e = s->rpend_head, *n; e; e = n) {
        n = e->next;
        entry_unref(e);
    }
    s->rpend_head = s->rpend_tail = NULL;
}

static int64_t one_way(const sim_group *g)
{
    return g->one_way_us + g->extra_us;
}

/* Sends m on q: it arrives one way after `from`, never before what went ahead of it, or is held
 * while a partition lasts. */
static void q_push(const sim_group *g, rqueue *q, rmsg *m, int64_t from)
{
    if (g->held) {
        m->at = HELD;
    } else {
        m->at = from + one_way(g);
        if (m->at < q->last_at)
            m->at = q->last_at;
        q->last_at = m->at;
    }
    *(q->t ? &q->t->next : &q->h) = m;
    q->t = m;
}

static rmsg *q_pop(rqueue *q)
{
    rmsg *m = q->h;
    q->h = m->next;
    if (!q->h)
        q->t = NULL;
    return m;
}

/* The link whose queue in direction dir has the earliest arrival, -1 if none. */
static int q_earliest(const sim_group *g, int dir)
{
    int best = -1;
    for (int i = 0; i < g->n; i++) {
        const rmsg *h = g->link[i].q[dir].h;
        if (h && (best < 0 || h->at < g->link[best].q[dir].h->at))
            best = i;
    }
    return best;
}

static int64_t q_next_at(const sim_group *g, int dir)
{
    int i = q_earliest(g, dir);
    return i < 0 ? INT64_MAX : g->link[i].q[dir].h->at;
}

void repl_send(sim_server *s, int64_t at_us)
{
    sim_group *g = s->grp;
    if (!g || !s->rpend_head)
        return;
    for (sim_rentry *e = s->rpend_head, *n; e; e = n) {
        n = e->next;
        e->next = NULL;
        for (int i = 0; i < g->n; i++) {
            rlink *l = &g->link[i];
            if (!l->linked)
                continue;
            rmsg *m = xcalloc1(sizeof *m);
            m->e = e;
            e->refs++;
            q_push(g, &l->q[TO], m, at_us);
        }
        entry_unref(e);
    }
    s->rpend_head = s->rpend_tail = NULL;
}

int64_t repl_next_delivery(const sim_server *s)
{
    const sim_group *g = s->grp;
    return g && repl_is_primary(s) ? q_next_at(g, TO) : INT64_MAX;
}

static void apply_entry(sim_server *r, const sim_rentry *e)
{
    for (size_t i = 0; i < e->n; i++) {
        const sim_rkey *k = &e->k[i];
        sim_db *db = db_get(r, k->db);
        sim_dent *d = dict_find(&db->keys, k->key, k->klen);
        if (d) {
            val_free(d->val);
            dict_delete(&db->keys, d);
        }
        if (k->v)
            dict_add(&db->keys, k->key, k->klen, val_copy(k->v));
    }
    r->repl_off = e->off;
}

/* The earliest delivery: the replica applies the entry and acknowledges it. */
void repl_deliver_next(sim_server *s)
{
    sim_group *g = s->grp;
    int best = q_earliest(g, TO);
    if (best < 0)
        return;
    rlink *l = &g->link[best];
    rmsg *r = q_pop(&l->q[TO]);
    sim_server *m = g->m[best];
    if (!m->down) {
        apply_entry(m, r->e);
        rmsg *a = xcalloc1(sizeof *a);
        a->off = m->repl_off;
        q_push(g, &l->q[BACK], a, r->at);
    }
    entry_unref(r->e);
    free(r);
}

int64_t repl_next_ack(const sim_server *s)
{
    const sim_group *g = s->grp;
    return g && repl_is_primary(s) ? q_next_at(g, BACK) : INT64_MAX;
}

void repl_take_acks(sim_server *s, int64_t w)
{
    sim_group *g = s->grp;
    if (!g || !repl_is_primary(s))
        return;
    for (int i = 0; i < g->n; i++) {
        rlink *l = &g->link[i];
        while (l->q[BACK].h && l->q[BACK].h->at <= w) {
            rmsg *a = q_pop(&l->q[BACK]);
            if (a->off > l->acked)
                l->acked = a->off;
            free(a);
        }
    }
}

int repl_acked(const sim_server *s, uint64_t off)
{
    const sim_group *g = s->grp;
    int n = 0;
    if (!g || !repl_is_primary(s))
        return 0;
    for (int i = 0; i < g->n; i++)
        n += g->link[i].linked && !g->m[i]->down && g->link[i].acked >= off;
    return n;
}

static void link_clear(rlink *l)
{
    for (rqueue *q = l->q; q < l->q + 2; q++)
        for (rmsg *m = q->h, *n; m; m = n) {
            n = m->next;
            if (m->e)
                entry_unref(m->e);
            free(m);
        }
    memset(l, 0, sizeof *l);
}

static void copy_key(sim_dent *e, void *ud)
{
    sim_db *to = ud;
    dict_add(&to->keys, e->key, e->klen, val_copy(e->val));
}

/* A full resync: member i takes a copy of the primary's keys and its offset. */
static void full_sync(sim_group *g, int i)
{
    sim_server *p = g->m[g->primary], *r = g->m[i];
    rlink *l = &g->link[i];
    link_clear(l);
    db_flush_all(r);
    undo_trim(r);
    for (int d = 0; d < SIM_DBS; d++)
        if (p->db[d])
            dict_each(&p->db[d]->keys, copy_key, db_get(r, d));
    r->repl_off = p->repl_off;
    l->acked = p->repl_off;
    l->linked = true;
}

int sim_server_add_replicas(sim_server *p, int n, int64_t one_way_us)
{
    if (n <= 0)
        return 0;
    if (p->grp || n + 1 > MAX_MEMBERS)
        return -1;
    sim_group *g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    g->one_way_us = one_way_us;
    g->m[0] = p;
    g->n = 1;
    p->grp = g;
    p->gidx = 0;
    for (int i = 1; i <= n; i++) {
        sim_server *r = sim_server_new(&p->p, p->fn, p->ctx);
        if (!r)
            return -1;  /* the group so far is freed with p */
        r->grp = g;
        r->gidx = i;
        g->m[g->n++] = r;
        full_sync(g, i);
    }
    return 0;
}

void repl_free_group(sim_server *s)
{
    sim_group *g = s->grp;
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        link_clear(&g->link[i]);
        g->m[i]->grp = NULL;
    }
    for (int i = 0; i < g->n; i++)
        if (g->m[i] != s)
            sim_server_free(g->m[i]);
    free(g);
}

sim_server *sim_server_failover(sim_server *p, int64_t now_us, bool demote)
{
    sim_group *g = p->grp;
    if (!g || !repl_is_primary(p))
        return NULL;
    sim_server_run(p, now_us);
    int best = -1;
    for (int i = 0; i < g->n; i++) {
        sim_server *m = g->m[i];
        if (i == g->primary || m->down || !g->link[i].linked)
            continue;
        if (best < 0 || m->repl_off > g->m[best]->repl_off)
            best = i;
    }
    if (best < 0)
        return NULL;
    if (demote)
        sim_server_demote(p, now_us);
    else
        sim_server_kill(p, now_us, false);
    repl_drop_pending(p);
    for (int i = 0; i < g->n; i++)
        link_clear(&g->link[i]);
    g->primary = best;
    sim_server *np = g->m[best];
    np->t_free = np->t_free > now_us ? np->t_free : now_us;
    if (np->next_cron < now_us)
        np->next_cron = now_us + 1000000 / np->hz;
    for (int i = 0; i < g->n; i++)
        if (i != best && !g->m[i]->down)
            full_sync(g, i);
    return np;
}

/* A restarted member: a primary's replicas resync from it (empty, with persistence none, they
 * become empty too); an old primary that a failover replaced is re-pointed as a replica. */
void repl_on_restart(sim_server *s)
{
    sim_group *g = s->grp;
    if (!g)
        return;
    if (repl_is_primary(s)) {
        for (int i = 0; i < g->n; i++)
            if (i != g->primary && !g->m[i]->down)
                full_sync(g, i);
    } else {
        full_sync(g, s->gidx);
    }
}

void sim_server_repl_delay(sim_server *p, int64_t now_us, int64_t latency_us, bool on)
{
    sim_group *g = p->grp;
    if (!g)
        return;
    sim_server_run(p, now_us);
    if (on && g->ndelays < (int)(sizeof g->delays / sizeof g->delays[0])) {
        g->delays[g->ndelays++] = latency_us;
    } else if (!on) {
        for (int i = g->ndelays - 1; i >= 0; i--)
            if (g->delays[i] == latency_us) {
                memmove(&g->delays[i], &g->delays[i + 1],
                        (size_t)(g->ndelays - i - 1) * sizeof g->delays[0]);
                g->ndelays--;
                break;
            }
    }
    g->extra_us = g->ndelays ? g->delays[g->ndelays - 1] : 0;
}

void sim_server_repl_hold(sim_server *p, int64_t now_us, bool on)
{
    sim_group *g = p->grp;
    if (!g)
        return;
    sim_server_run(p, now_us);
    g->partitions += on ? 1 : -1;
    if (g->partitions < 0)
        g->partitions = 0;
    bool hold = g->partitions > 0;
    if (hold == g->held)
        return;
    g->held = hold;
    for (int i = 0; i < g->n; i++) {
        rlink *l = &g->link[i];
        int64_t t = now_us + one_way(g);
        for (rqueue *q = l->q; q < l->q + 2; q++) {
            for (rmsg *m = q->h; m; m = m->next)
                m->at = hold ? HELD : t;
            q->last_at = hold ? 0 : t;
        }
    }
}

int sim_server_nmembers(const sim_server *s)
{
    return s->grp ? s->grp->n : 1;
}

sim_server *sim_server_member(const sim_server *s, int i)
{
    if (!s->grp)
        return i == 0 ? (sim_server *)s : NULL;
    return i >= 0 && i < s->grp->n ? s->grp->m[i] : NULL;
}

bool sim_server_is_primary(const sim_server *s)
{
    return !s->grp || repl_is_primary(s);
}

uint64_t sim_server_offset(const sim_server *s)
{
    return s->repl_off;
}

const char *sim_server_peek(sim_server *s, const char *key, int64_t now_us)
{
    sim_dent *e = dict_find(&db_get(s, 0)->keys, key, strlen(key));
    if (!e)
        return NULL;
    sim_val *v = e->val;
    if (db_is_expired(v, now_us / 1000) || v->type != SIM_STRING)
        return NULL;
    return v->u.s.p;
}
