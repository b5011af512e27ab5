/* store.c -- the modelled Redis's memory and keyspace: the reply arena, a hash table, the
 * values (strings, lists, sorted sets as Redis's skiplist with spans), lazy expiry as Redis's
 * keyIsExpired does it (a key expires when now > its expiry, in ms), and the undo log that lets
 * a kill roll the keyspace back to what the AOF had. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/model.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "sim: out of memory\n");
        abort();
    }
    return p;
}

static char *xmemdup(const char *p, size_t len)
{
    char *d = xmalloc(len + 1);
    if (len)
        memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

/* ---- arena ------------------------------------------------------------------------------ */

#define SA_BLOCK (64 * 1024)

void *sa_alloc(sim_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    for (;;) {
        sim_ablock *b = a->cur;
        if (b && b->size - b->used >= n) {
            void *p = b->data + b->used;
            b->used += n;
            return p;
        }
        if (b && b->next) {  /* a block kept from before: use it from its start */
            a->cur = b->next;
            a->cur->used = 0;
            continue;
        }
        size_t size = n > SA_BLOCK ? n : SA_BLOCK;
        sim_ablock *nb = xmalloc(sizeof *nb + size);
        nb->next = NULL;
        nb->size = size;
        nb->used = 0;
        if (b)
            b->next = nb;
        else
            a->first = nb;
        a->cur = nb;
    }
}

void sa_reset(sim_arena *a)
{
    a->cur = a->first;
    if (a->cur)
        a->cur->used = 0;
}

void sa_free(sim_arena *a)
{
    for (sim_ablock *b = a->first, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    a->first = a->cur = NULL;
}

sim_mark sa_mark(const sim_arena *a)
{
    return (sim_mark){a->cur, a->cur ? a->cur->used : 0};
}

void sa_release(sim_arena *a, sim_mark m)
{
    if (!m.b) {
        sa_reset(a);
        return;
    }
    a->cur = m.b;
    m.b->used = m.used;
}

/* ---- hash table ------------------------------------------------------------------------- */

uint64_t dict_hash(const char *k, size_t len)  /* FNV-1a, then a final mix */
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

sim_dent *dict_find(const sim_dict *d, const char *k, size_t len)
{
    if (!d->b)
        return NULL;
    uint64_t h = dict_hash(k, len);
    for (sim_dent *e = d->b[h & d->mask]; e; e = e->next)
        if (e->hash == h && e->klen == len && memcmp(e->key, k, len) == 0)
            return e;
    return NULL;
}

static void dict_grow(sim_dict *d)
{
    size_t nb = d->b ? (d->mask + 1) * 2 : 8;
    sim_dent **b = xcalloc(nb, sizeof *b);
    if (d->b) {
        for (size_t i = 0; i <= d->mask; i++) {
            for (sim_dent *e = d->b[i], *n; e; e = n) {
                n = e->next;
                e->next = b[e->hash & (nb - 1)];
                b[e->hash & (nb - 1)] = e;
            }
        }
        free(d->b);
    }
    d->b = b;
    d->mask = nb - 1;
}

sim_dent *dict_add(sim_dict *d, const char *k, size_t len, void *val)
{
    if (!d->b || d->n >= d->mask + 1)
        dict_grow(d);
    sim_dent *e = xmalloc(sizeof *e + len + 1);
    e->hash = dict_hash(k, len);
    e->val = val;
    e->klen = len;
    if (len)
        memcpy(e->key, k, len);
    e->key[len] = '\0';
    sim_dent **slot = &d->b[e->hash & d->mask];
    e->next = *slot;
    *slot = e;
    d->n++;
    return e;
}

void dict_delete(sim_dict *d, sim_dent *e)
{
    for (sim_dent **p = &d->b[e->hash & d->mask]; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            d->n--;
            free(e);
            return;
        }
    }
}

void dict_each(const sim_dict *d, void (*fn)(sim_dent *e, void *ud), void *ud)
{
    if (!d->b)
        return;
    for (size_t i = 0; i <= d->mask; i++)
        for (sim_dent *e = d->b[i], *n; e; e = n) {
            n = e->next;
            fn(e, ud);
        }
}

void dict_clear(sim_dict *d, void (*free_val)(void *val))
{
    if (d->b) {
        for (size_t i = 0; i <= d->mask; i++)
            for (sim_dent *e = d->b[i], *n; e; e = n) {
                n = e->next;
                if (free_val)
                    free_val(e->val);
                free(e);
            }
        free(d->b);
    }
    d->b = NULL;
    d->mask = d->n = 0;
}

/* ---- lists ------------------------------------------------------------------------------ */

static void list_grow(sim_list *l)
{
    size_t cap = l->cap ? l->cap * 2 : 4;
    sim_str *it = xmalloc(cap * sizeof *it);
    for (size_t i = 0; i < l->n; i++)
        it[i] = l->item[(l->head + i) % l->cap];
    free(l->item);
    l->item = it;
    l->head = 0;
    l->cap = cap;
}

void list_push(sim_list *l, const char *p, size_t len, bool head)
{
    if (l->n == l->cap)
        list_grow(l);
    sim_str s = {xmemdup(p, len), len};
    if (head) {
        l->head = (l->head + l->cap - 1) % l->cap;
        l->item[l->head] = s;
    } else {
        l->item[(l->head + l->n) % l->cap] = s;
    }
    l->n++;
}

sim_str list_pop(sim_list *l, bool head)
{
    sim_str s;
    if (head) {
        s = l->item[l->head];
        l->head = (l->head + 1) % l->cap;
    } else {
        s = l->item[(l->head + l->n - 1) % l->cap];
    }
    l->n--;
    return s;
}

sim_str list_at(const sim_list *l, size_t i)
{
    return l->item[(l->head + i) % l->cap];
}

/* LREM: count > 0 from the head, < 0 from the tail, 0 all. */
size_t list_remove(sim_list *l, const char *p, size_t len, long long count)
{
    size_t n = l->n, removed = 0;
    sim_str *keep = xmalloc((n ? n : 1) * sizeof *keep);
    bool *drop = xcalloc(n, sizeof *drop);
    unsigned long long limit = count == 0 ? (unsigned long long)-1
                               : count < 0 ? (unsigned long long)(-(count + 1)) + 1
                                           : (unsigned long long)count;
    for (size_t k = 0; k < n && removed < limit; k++) {
        size_t i = count < 0 ? n - 1 - k : k;
        sim_str s = list_at(l, i);
        if (s.len == len && memcmp(s.p, p, len) == 0) {
            drop[i] = true;
            removed++;
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        sim_str s = list_at(l, i);
        if (drop[i])
            free((char *)s.p);
        else
            keep[m++] = s;
    }
    free(l->item);
    free(drop);
    l->item = keep;
    l->head = 0;
    l->n = m;
    l->cap = n ? n : 1;
    return removed;
}

/* ---- sorted sets: Redis's skiplist (t_zset.c), with a deterministic level draw ------------ */

static sim_znode *znode_new(int level, const char *m, size_t mlen, double score)
{
    sim_znode *n = xcalloc(1, sizeof *n + (size_t)level * sizeof(sim_zlevel));
    n->member = m ? xmemdup(m, mlen) : NULL;
    n->mlen = mlen;
    n->score = score;
    n->nlevel = level;
    return n;
}

static int zrandom_level(sim_zset *z)
{
    int level = 1;
    for (;;) {
        z->rng ^= z->rng << 13;
        z->rng ^= z->rng >> 7;
        z->rng ^= z->rng << 17;
        if ((z->rng & 0xFFFF) >= 0xFFFF / 4 || level >= SIM_ZMAXLEVEL)
            return level;
        level++;
    }
}

/* Redis's order: by score, then by member bytes. */
static bool zless(const sim_znode *n, double score, const char *m, size_t mlen)
{
    if (n->score != score)
        return n->score < score;
    size_t k = n->mlen < mlen ? n->mlen : mlen;
    int c = memcmp(n->member, m, k);
    return c < 0 || (c == 0 && n->mlen < mlen);
}

static sim_zset *zset_new(void)
{
    sim_zset *z = xcalloc(1, sizeof *z);
    z->level = 1;
    z->header = znode_new(SIM_ZMAXLEVEL, NULL, 0, 0);
    z->rng = 0x9E3779B97F4A7C15ULL;
    return z;
}

sim_znode *zset_find(const sim_zset *z, const char *m, size_t mlen)
{
    sim_dent *e = dict_find(&z->members, m, mlen);
    return e ? e->val : NULL;
}

void zset_insert(sim_zset *z, const char *m, size_t mlen, double score)
{
    sim_znode *update[SIM_ZMAXLEVEL], *x = z->header;
    size_t rank[SIM_ZMAXLEVEL];
    for (int i = z->level - 1; i >= 0; i--) {
        rank[i] = i == z->level - 1 ? 0 : rank[i + 1];
        while (x->level[i].forward && zless(x->level[i].forward, score, m, mlen)) {
            rank[i] += x->level[i].span;
            x = x->level[i].forward;
        }
        update[i] = x;
    }
    int level = zrandom_level(z);
    if (level > z->level) {
        for (int i = z->level; i < level; i++) {
            rank[i] = 0;
            update[i] = z->header;
            update[i]->level[i].span = z->length;
        }
        z->level = level;
    }
    x = znode_new(level, m, mlen, score);
    for (int i = 0; i < level; i++) {
        x->level[i].forward = update[i]->level[i].forward;
        update[i]->level[i].forward = x;
        x->level[i].span = update[i]->level[i].span - (rank[0] - rank[i]);
        update[i]->level[i].span = (rank[0] - rank[i]) + 1;
    }
    for (int i = level; i < z->level; i++)
        update[i]->level[i].span++;
    x->backward = update[0] == z->header ? NULL : update[0];
    if (x->level[0].forward)
        x->level[0].forward->backward = x;
    else
        z->tail = x;
    z->length++;
    dict_add(&z->members, m, mlen, x);
}

static void zunlink(sim_zset *z, sim_znode *n)
{
    sim_znode *update[SIM_ZMAXLEVEL], *x = z->header;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].forward && x->level[i].forward != n &&
               zless(x->level[i].forward, n->score, n->member, n->mlen))
            x = x->level[i].forward;
        update[i] = x;
    }
    for (int i = 0; i < z->level; i++) {
        if (update[i]->level[i].forward == n) {
            update[i]->level[i].span += n->level[i].span - 1;
            update[i]->level[i].forward = n->level[i].forward;
        } else {
            update[i]->level[i].span--;
        }
    }
    if (n->level[0].forward)
        n->level[0].forward->backward = n->backward;
    else
        z->tail = n->backward;
    while (z->level > 1 && z->header->level[z->level - 1].forward == NULL)
        z->level--;
    z->length--;
}

void zset_remove(sim_zset *z, sim_znode *n)
{
    zunlink(z, n);
    dict_delete(&z->members, dict_find(&z->members, n->member, n->mlen));
    free(n->member);
    free(n);
}

void zset_update(sim_zset *z, sim_znode *n, double score)
{
    char *m = xmemdup(n->member, n->mlen);
    size_t mlen = n->mlen;
    zset_remove(z, n);
    zset_insert(z, m, mlen, score);
    free(m);
}

sim_znode *zset_at(const sim_zset *z, size_t rank)
{
    size_t traversed = 0;
    sim_znode *x = z->header;
    rank++;  /* the skiplist's ranks are 1-based */
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].forward && traversed + x->level[i].span <= rank) {
            traversed += x->level[i].span;
            x = x->level[i].forward;
        }
        if (traversed == rank)
            return x;
    }
    return NULL;
}

size_t zset_rank(const sim_zset *z, const sim_znode *n)
{
    size_t rank = 0;
    sim_znode *x = z->header;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].forward &&
               (x->level[i].forward == n ||
                zless(x->level[i].forward, n->score, n->member, n->mlen))) {
            rank += x->level[i].span;
            x = x->level[i].forward;
            if (x == n)
                return rank - 1;
        }
    }
    return rank - 1;
}

sim_znode *zset_first_from(const sim_zset *z, double min, bool minex)
{
    sim_znode *x = z->header;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].forward &&
               (minex ? x->level[i].forward->score <= min : x->level[i].forward->score < min))
            x = x->level[i].forward;
    return x->level[0].forward;
}

sim_znode *zset_last_upto(const sim_zset *z, double max, bool maxex)
{
    sim_znode *x = z->header;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].forward &&
               (maxex ? x->level[i].forward->score < max : x->level[i].forward->score <= max))
            x = x->level[i].forward;
    return x == z->header ? NULL : x;
}

static void zset_free(sim_zset *z)
{
    for (sim_znode *n = z->header->level[0].forward, *next; n; n = next) {
        next = n->level[0].forward;
        free(n->member);
        free(n);
    }
    free(z->header);
    dict_clear(&z->members, NULL);
    free(z);
}

/* ---- values ----------------------------------------------------------------------------- */

sim_val *val_new_string(const char *p, size_t len)
{
    sim_val *v = xcalloc(1, sizeof *v);
    v->type = SIM_STRING;
    v->expire_ms = -1;
    v->u.s.p = xmemdup(p, len);
    v->u.s.len = len;
    return v;
}

void val_set_string(sim_val *v, const char *p, size_t len)
{
    char *n = xmemdup(p, len);
    free(v->u.s.p);
    v->u.s.p = n;
    v->u.s.len = len;
}

sim_val *val_new_list(void)
{
    sim_val *v = xcalloc(1, sizeof *v);
    v->type = SIM_LIST;
    v->expire_ms = -1;
    v->u.l = xcalloc(1, sizeof *v->u.l);
    return v;
}

sim_val *val_new_zset(void)
{
    sim_val *v = xcalloc(1, sizeof *v);
    v->type = SIM_ZSET;
    v->expire_ms = -1;
    v->u.z = zset_new();
    return v;
}

sim_val *val_copy(const sim_val *v)
{
    sim_val *c;
    switch (v->type) {
    case SIM_STRING:
        c = val_new_string(v->u.s.p, v->u.s.len);
        break;
    case SIM_LIST:
        c = val_new_list();
        for (size_t i = 0; i < v->u.l->n; i++) {
            sim_str s = list_at(v->u.l, i);
            list_push(c->u.l, s.p, s.len, false);
        }
        break;
    default:
        c = val_new_zset();
        for (sim_znode *n = v->u.z->header->level[0].forward; n; n = n->level[0].forward)
            zset_insert(c->u.z, n->member, n->mlen, n->score);
        break;
    }
    c->expire_ms = v->expire_ms;
    return c;
}

void val_free(void *p)
{
    sim_val *v = p;
    if (!v)
        return;
    switch (v->type) {
    case SIM_STRING:
        free(v->u.s.p);
        break;
    case SIM_LIST:
        for (size_t i = 0; i < v->u.l->n; i++)
            free((char *)list_at(v->u.l, i).p);
        free(v->u.l->item);
        free(v->u.l);
        break;
    default:
        zset_free(v->u.z);
        break;
    }
    free(v);
}

/* ---- the keyspace ----------------------------------------------------------------------- */

sim_db *db_get(sim_server *s, int i)
{
    if (!s->db[i])
        s->db[i] = xcalloc(1, sizeof *s->db[i]);
    return s->db[i];
}

bool db_is_expired(const sim_val *v, int64_t now_ms)
{
    return v->expire_ms >= 0 && now_ms > v->expire_ms;
}

/* A key found expired is deleted, as Redis's expireIfNeeded does, which touches its watchers. */
sim_val *db_lookup(sim_exec *x, const sim_str *key)
{
    sim_dent *e = dict_find(&x->db->keys, key->p, key->len);
    if (!e)
        return NULL;
    sim_val *v = e->val;
    if (!db_is_expired(v, x->now_ms))
        return v;
    db_prepare_write(x, key);
    val_free(v);
    dict_delete(&x->db->keys, e);
    db_signal_modified(x, key);
    return NULL;
}

sim_val *db_add(sim_exec *x, const sim_str *key, sim_val *v)
{
    db_prepare_write(x, key);
    dict_add(&x->db->keys, key->p, key->len, v);
    return v;
}

void db_delete(sim_exec *x, const sim_str *key)
{
    sim_dent *e = dict_find(&x->db->keys, key->p, key->len);
    if (!e)
        return;
    db_prepare_write(x, key);
    val_free(e->val);
    dict_delete(&x->db->keys, e);
}

void db_signal_list_ready(sim_exec *x, const sim_str *key)
{
    sim_server *s = x->s;
    if (!dict_find(&x->db->blocking, key->p, key->len))
        return;
    for (size_t i = 0; i < s->nready_keys; i++)
        if (s->ready_keys[i].db == x->dbi && s->ready_keys[i].klen == key->len &&
            memcmp(s->ready_keys[i].key, key->p, key->len) == 0)
            return;
    if (s->nready_keys == s->cap_ready_keys) {
        s->cap_ready_keys = s->cap_ready_keys ? s->cap_ready_keys * 2 : 4;
        sim_ready_key *n = realloc(s->ready_keys, s->cap_ready_keys * sizeof *n);
        if (!n)
            abort();
        s->ready_keys = n;
    }
    s->ready_keys[s->nready_keys++] = (sim_ready_key){x->dbi, xmemdup(key->p, key->len),
                                                       key->len};
}

/* ---- the undo log ----------------------------------------------------------------------- *
 * With AOF, what a kill keeps is a past state of the keyspace: before the iteration in
 * progress (its writes never reached the AOF), or as of the last fsync (a host crash under
 * everysec). Each iteration logs the value of a key before its first write to it; rolling the
 * log back in reverse restores any earlier point. */

static bool undo_wanted(const sim_server *s)
{
    return s->p.persistence != LB_PERSIST_NONE;
}

void db_prepare_write(sim_exec *x, const sim_str *key)
{
    sim_server *s = x->s;
    if (s->grp)
        repl_note_write(s, x->dbi, key);
    if (!undo_wanted(s))
        return;
    char buf[256];
    size_t n = key->len + 1;
    char *k = n <= sizeof buf ? buf : xmalloc(n);
    k[0] = (char)x->dbi;
    memcpy(k + 1, key->p, key->len);
    sim_dent *seen = dict_find(&s->undo_seen, k, n);
    if (seen && (uint64_t)(uintptr_t)seen->val == s->iter) {
        if (k != buf)
            free(k);
        return;
    }
    if (seen)
        seen->val = (void *)(uintptr_t)s->iter;
    else
        dict_add(&s->undo_seen, k, n, (void *)(uintptr_t)s->iter);
    if (k != buf)
        free(k);
    if (s->nundo == s->capundo) {
        s->capundo = s->capundo ? s->capundo * 2 : 64;
        sim_undo *u = realloc(s->undo, s->capundo * sizeof *u);
        if (!u)
            abort();
        s->undo = u;
    }
    sim_dent *e = dict_find(&x->db->keys, key->p, key->len);
    s->undo[s->nundo++] = (sim_undo){xmemdup(key->p, key->len), key->len, x->dbi,
                                     e ? val_copy(e->val) : NULL, s->iter};
}

/* Everything logged is durable now (an fsync). */
void undo_trim(sim_server *s)
{
    for (size_t i = 0; i < s->nundo; i++) {
        free(s->undo[i].key);
        val_free(s->undo[i].pre);
    }
    s->nundo = 0;
    dict_clear(&s->undo_seen, NULL);
}

/* Back to the state before iteration from_iter. */
void undo_rollback(sim_server *s, uint64_t from_iter)
{
    while (s->nundo > 0 && s->undo[s->nundo - 1].iter >= from_iter) {
        sim_undo *u = &s->undo[--s->nundo];
        sim_db *db = db_get(s, u->db);
        sim_dent *e = dict_find(&db->keys, u->key, u->klen);
        if (e) {
            val_free(e->val);
            dict_delete(&db->keys, e);
        }
        if (u->pre)
            dict_add(&db->keys, u->key, u->klen, u->pre);
        free(u->key);
    }
    dict_clear(&s->undo_seen, NULL);
}

void db_flush_all(sim_server *s)
{
    for (int i = 0; i < SIM_DBS; i++)
        if (s->db[i])
            dict_clear(&s->db[i]->keys, val_free);
}
