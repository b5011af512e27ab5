/* model.h -- the modelled Redis's insides, shared by the files of harness/sim and nothing else.
 *
 * store.c    memory (the reply arena), the hash table, values (strings, lists, sorted sets),
 *            the keyspace with lazy expiry, the undo log that persistence rolls back
 * commands.c the command table and the commands, replying into the arena
 * script.c   EVAL, EVALSHA, SCRIPT: Lua 5.1 with redis.call into the command table; SHA1
 * redis.c    the server: connections, the event loop in virtual time, blocking, MULTI/EXEC,
 *            WATCH, pause, kill and restart */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/redis.h"

typedef struct sim_str {
    const char *p;
    size_t len;
} sim_str;

/* ---- the reply arena: blocks kept for reuse, reset once an iteration's replies are out ---- */

typedef struct sim_ablock {
    struct sim_ablock *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} sim_ablock;

typedef struct sim_arena {
    sim_ablock *first, *cur;
} sim_arena;

typedef struct sim_mark {
    sim_ablock *b;
    size_t used;
} sim_mark;

void *sa_alloc(sim_arena *a, size_t n);  /* aborts when out of memory */
void  sa_reset(sim_arena *a);
void  sa_free(sim_arena *a);
sim_mark sa_mark(const sim_arena *a);
void  sa_release(sim_arena *a, sim_mark m);

/* ---- hash table: byte strings to pointers ---- */

typedef struct sim_dent {
    struct sim_dent *next;
    uint64_t hash;
    void *val;
    size_t klen;
    char key[];  /* NUL-terminated */
} sim_dent;

typedef struct sim_dict {
    sim_dent **b;
    size_t mask;  /* buckets - 1 (0 with no buckets yet) */
    size_t n;
} sim_dict;

uint64_t  dict_hash(const char *k, size_t len);
sim_dent *dict_find(const sim_dict *d, const char *k, size_t len);
sim_dent *dict_add(sim_dict *d, const char *k, size_t len, void *val);  /* k not present */
void      dict_delete(sim_dict *d, sim_dent *e);                         /* frees e, not val */
/* Visits every entry; fn may not change d. */
void      dict_each(const sim_dict *d, void (*fn)(sim_dent *e, void *ud), void *ud);
void      dict_clear(sim_dict *d, void (*free_val)(void *val));

/* ---- values ---- */

enum { SIM_STRING = 1, SIM_LIST, SIM_ZSET };

typedef struct sim_list {  /* a ring of owned strings */
    sim_str *item;
    size_t head, n, cap;
} sim_list;

typedef struct sim_znode sim_znode;
typedef struct sim_zlevel {
    sim_znode *forward;
    size_t span;
} sim_zlevel;
struct sim_znode {
    char *member;
    size_t mlen;
    double score;
    sim_znode *backward;
    int nlevel;
    sim_zlevel level[];
};
#define SIM_ZMAXLEVEL 32
typedef struct sim_zset {  /* Redis's skiplist with spans, and member -> node */
    sim_znode *header, *tail;
    size_t length;
    int level;
    sim_dict members;
    uint64_t rng;
} sim_zset;

typedef struct sim_val {
    int type;
    int64_t expire_ms;  /* absolute virtual ms; -1 none */
    union {
        struct { char *p; size_t len; } s;
        sim_list *l;
        sim_zset *z;
    } u;
} sim_val;

sim_val *val_new_string(const char *p, size_t len);
sim_val *val_new_list(void);
sim_val *val_new_zset(void);
sim_val *val_copy(const sim_val *v);
void     val_free(void *v);
void     val_set_string(sim_val *v, const char *p, size_t len);

void     list_push(sim_list *l, const char *p, size_t len, bool head);
sim_str  list_pop(sim_list *l, bool head);  /* the caller frees .p (a char *) */
sim_str  list_at(const sim_list *l, size_t i);
size_t   list_remove(sim_list *l, const char *p, size_t len, long long count);

sim_znode *zset_find(const sim_zset *z, const char *m, size_t mlen);
void       zset_insert(sim_zset *z, const char *m, size_t mlen, double score);
void       zset_update(sim_zset *z, sim_znode *n, double score);
void       zset_remove(sim_zset *z, sim_znode *n);
sim_znode *zset_at(const sim_zset *z, size_t rank);      /* 0-based */
size_t     zset_rank(const sim_zset *z, const sim_znode *n);  /* 0-based */
/* The first node with score > min (>= when !minex), NULL when none. */
sim_znode *zset_first_from(const sim_zset *z, double min, bool minex);
/* The last node with score < max (<= when !maxex), NULL when none. */
sim_znode *zset_last_upto(const sim_zset *z, double max, bool maxex);

/* ---- the server ---- */

typedef struct sim_cmd {  /* a command in a query buffer or a MULTI queue */
    struct sim_cmd *next;
    int64_t at_us;
    uint64_t seq;
    int argc;
    bool ref;         /* argv points at the pusher's strings (sim_conn_push_ref) */
    size_t cap;       /* bytes after the header */
    sim_str *argv;
} sim_cmd;

typedef struct sim_db {
    sim_dict keys;      /* key -> sim_val */
    sim_dict blocking;  /* key -> sim_bqueue: the clients blocked on it, first come first */
    sim_dict watched;   /* key -> the first sim_watch of the clients watching it */
} sim_db;
#define SIM_DBS 16

typedef struct sim_bwait {  /* a client blocked on a key, in the key's FIFO */
    struct sim_bwait *prev, *next;
    sim_conn *c;
    sim_dent *key;      /* the db->blocking entry */
    int db;
} sim_bwait;

typedef struct sim_bqueue {
    sim_bwait *head, *tail;
} sim_bqueue;

typedef struct sim_block {
    int64_t deadline_ms;  /* 0 = none */
    bool head;            /* BLPOP (true) or BRPOP */
    bool replicas;        /* WAIT (no keys): timed out, it is answered the count, not nil */
    int wait_n;           /* WAIT: the replicas wanted */
    uint64_t wait_off;    /* WAIT: the primary's offset when it ran */
    sim_conn *wait_prev, *wait_next;  /* WAIT: the server's clients waiting for acks, in the
                                         order they blocked */
    int nkeys;
    sim_bwait w[];
} sim_block;

typedef struct sim_watch {
    struct sim_watch *next_in_conn;
    struct sim_watch *prev, *next;  /* in the key's list */
    sim_conn *c;
    sim_dent *key;                  /* the db->watched entry */
    int db;
    bool expired;                   /* the key was expired when watched */
} sim_watch;

enum {
    SIM_C_MULTI = 1 << 0,
    SIM_C_DIRTY_CAS = 1 << 1,
    SIM_C_DIRTY_EXEC = 1 << 2,
    SIM_C_BLOCKED = 1 << 3,
    SIM_C_UNBLOCKED = 1 << 4,  /* in the server's unblocked list */
    SIM_C_DEAD = 1 << 5,       /* cut by a kill */
    SIM_C_CLOSED = 1 << 6,     /* closed, waiting for its last replies to be dropped */
    SIM_C_AUTHED = 1 << 7,
    SIM_C_CLOSING = 1 << 8,    /* its client has closed it (sim_conn_shutdown): no replies */
    SIM_C_EOF = 1 << 9,        /* its FIN has come: freed once what is queued has run */
};

struct sim_conn {
    sim_server *s;
    void *owner;
    sim_conn *prev, *next;          /* every open connection */
    sim_cmd *qhead, *qtail;         /* query buffer */
    sim_cmd *mhead, *mtail;         /* MULTI queue */
    int mcount;
    int db;
    unsigned flags;
    int ready_idx;                  /* in s->ready, -1 when not */
    int timeout_idx;                /* in s->timeouts, -1 when not */
    unsigned pending;               /* replies of the iteration in progress */
    sim_conn *next_unblocked;
    sim_watch *watches;
    sim_block *block;
    uint64_t id;
};

typedef struct sim_heap {
    sim_conn **a;
    int n, cap;
    bool (*less)(const sim_conn *, const sim_conn *);
    size_t idx_off;                 /* offsetof the int index in sim_conn */
} sim_heap;

typedef struct sim_outreply {
    sim_conn *c;
    const dlock_reply *r;
} sim_outreply;

typedef struct sim_undo {  /* the value of a key before an iteration first wrote it */
    char *key;
    size_t klen;
    int db;
    sim_val *pre;          /* NULL: the key was absent */
    uint64_t iter;
} sim_undo;

typedef struct sim_ready_key {
    int db;
    char *key;
    size_t klen;
} sim_ready_key;

struct lua_State;
typedef struct sim_exec sim_exec;

/* ---- replication (repl.c) ---- */

typedef struct sim_rkey {  /* a key's value after a write: NULL, deleted */
    int db;
    char *key;
    size_t klen;
    sim_val *v;
} sim_rkey;

typedef struct sim_rentry {  /* the effects of one command, as the replicas apply them */
    struct sim_rentry *next;  /* in the primary's list for the iteration in progress */
    unsigned refs;
    uint64_t off;
    size_t n;
    sim_rkey k[];
} sim_rentry;

typedef struct sim_group sim_group;

struct sim_server {
    sim_server_params p;
    sim_reply_fn fn;
    void *ctx;

    sim_db *db[SIM_DBS];
    sim_conn *conns;
    size_t nconns;
    uint64_t next_conn_id, next_seq;
    sim_cmd *free_cmds;

    sim_heap ready;                 /* connections with input, by first arrival */
    sim_heap timeouts;              /* blocked connections with a timeout, by deadline */
    sim_conn *unblocked_head, *unblocked_tail;
    sim_ready_key *ready_keys;      /* list keys that got elements with clients blocked on them */
    size_t nready_keys, cap_ready_keys;

    /* the event loop */
    bool down;
    bool in_iter;
    int64_t iter_end;               /* when the iteration in progress ends */
    int64_t t_free;                 /* when the last iteration ended */
    int64_t paused_until;
    int64_t next_cron;
    int hz;                         /* the current (dynamic) hz */
    uint64_t iter;                  /* iteration number */
    sim_arena arena;
    sim_outreply *out;
    size_t nout, capout;
    sim_conn *graveyard;            /* closed during an iteration, freed at its end */

    /* persistence */
    sim_undo *undo;
    size_t nundo, capundo;
    sim_dict undo_seen;             /* "<db><key>" -> last iteration logged */
    int64_t last_fsync_sec;

    /* scripts */
    struct lua_State *lua;
    sim_dict scripts;               /* sha (40 lowercase hex) -> 1 */
    sim_exec *script_x;             /* the script running, for redis.call */

    sim_server_stats stats;

    /* replication: NULL without replicas */
    sim_group *grp;
    int gidx;                       /* this server's index among the group's members */
    uint64_t repl_off;              /* the primary's offset, or what a replica has applied */
    sim_rkey *dirty;                /* keys the command running wrote */
    size_t ndirty, capdirty;
    sim_rentry *rpend_head, *rpend_tail;  /* this iteration's effects: they leave at its end */
    sim_conn *waiting_head, *waiting_tail;  /* clients blocked in WAIT (sim_block.wait_*) */
};

/* What a command runs with. */
struct sim_exec {
    sim_server *s;
    sim_conn *c;
    sim_db *db;
    int dbi;
    int64_t now_us;
    int64_t now_ms;
    bool in_script;
    bool deny_blocking;  /* inside EXEC or a script: BLPOP on empty lists answers nil */
    bool blocked;        /* out: the command blocked the client */
    unsigned script_calls;  /* out: redis.call and redis.pcall made by a script */
};

typedef const dlock_reply *(*sim_cmd_fn)(sim_exec *x, int argc, const sim_str *argv);

enum {
    SIM_F_NOSCRIPT = 1 << 0,
    SIM_F_NOAUTH = 1 << 1,  /* allowed before AUTH */
    SIM_F_SCRIPT = 1 << 2,  /* EVAL, EVALSHA: costs us_per_script more */
};

typedef struct sim_command {
    const char *name;  /* lower case, as Redis names it in errors */
    int arity;         /* Redis's: > 0 exactly, < 0 at least -arity */
    unsigned flags;
    sim_cmd_fn fn;
} sim_command;

const sim_command *sim_lookup_command(const char *name, size_t len);
/* Runs a command that passed lookup and arity: replies from the arena. */
const dlock_reply *sim_call(sim_exec *x, const sim_command *cmd, int argc, const sim_str *argv);

/* replies */
extern const dlock_reply sim_r_ok, sim_r_nil, sim_r_zero, sim_r_one, sim_r_empty;
const dlock_reply *r_error(sim_exec *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const dlock_reply *r_status(sim_exec *x, const char *s);
const dlock_reply *r_int(sim_exec *x, long long v);
const dlock_reply *r_bulk(sim_exec *x, const char *p, size_t len);
const dlock_reply *r_double(sim_exec *x, double d);
dlock_reply       *r_array(sim_exec *x, size_t n);  /* elements to fill */
const dlock_reply *r_arity(sim_exec *x, const char *name);

/* the keyspace (store.c) */
sim_db  *db_get(sim_server *s, int i);
sim_val *db_lookup(sim_exec *x, const sim_str *key);           /* NULL: absent or expired */
bool     db_is_expired(const sim_val *v, int64_t now_ms);
/* Before changing, adding or deleting key in this iteration: the undo log. */
void     db_prepare_write(sim_exec *x, const sim_str *key);
sim_val *db_add(sim_exec *x, const sim_str *key, sim_val *v);  /* key absent */
void     db_delete(sim_exec *x, const sim_str *key);           /* key present */
void     db_signal_modified(sim_exec *x, const sim_str *key);  /* WATCH (redis.c) */
void     db_signal_list_ready(sim_exec *x, const sim_str *key);
/* A pop for a blocked client: [key, element] (commands.c). */
const dlock_reply *sim_pop_for_blocked(sim_exec *x, const sim_str *key, sim_val *v, bool head);
void     undo_trim(sim_server *s);
void     undo_rollback(sim_server *s, uint64_t from_iter);
void     db_flush_all(sim_server *s);

/* redis.c, for the commands of the connection itself */
void conn_watch(sim_exec *x, const sim_str *key);
void conn_unwatch_all(sim_conn *c);
void conn_block(sim_exec *x, int nkeys, const sim_str *keys, int64_t deadline_ms, bool head);
const dlock_reply *cmd_multi(sim_exec *x, int argc, const sim_str *argv);
const dlock_reply *cmd_exec(sim_exec *x, int argc, const sim_str *argv);
const dlock_reply *cmd_discard(sim_exec *x, int argc, const sim_str *argv);
const dlock_reply *cmd_watch(sim_exec *x, int argc, const sim_str *argv);
const dlock_reply *cmd_unwatch(sim_exec *x, int argc, const sim_str *argv);
const dlock_reply *cmd_auth(sim_exec *x, int argc, const sim_str *argv);

/* repl.c */
bool repl_is_primary(const sim_server *s);
void repl_note_write(sim_server *s, int db, const sim_str *key);   /* db_prepare_write */
void repl_propagate(sim_server *s);                  /* after a command: its effects */
void repl_send(sim_server *s, int64_t at_us);        /* the iteration's effects leave */
void repl_drop_pending(sim_server *s);               /* a kill: they never leave */
void repl_take_acks(sim_server *s, int64_t w);       /* acks that arrived by w */
int64_t repl_next_ack(const sim_server *s);          /* INT64_MAX: none */
int64_t repl_next_delivery(const sim_server *s);     /* INT64_MAX: none */
void repl_deliver_next(sim_server *s);
int  repl_acked(const sim_server *s, uint64_t off);  /* replicas that acknowledged off */
void repl_free_group(sim_server *s);                 /* sim_server_free */
void repl_on_restart(sim_server *s);
void sim_server_demote(sim_server *s, int64_t now_us);  /* redis.c: connections cut, data kept */

/* script.c */
int  script_init(sim_server *s);
void script_free(sim_server *s);
void script_flush(sim_server *s);
const dlock_reply *cmd_eval(sim_exec *x, int argc, const sim_str *argv);
const dlock_reply *cmd_evalsha(sim_exec *x, int argc, const sim_str *argv);
const dlock_reply *cmd_script(sim_exec *x, int argc, const sim_str *argv);
void sim_sha1_hex(const void *data, size_t len, char out[41]);

/* numbers as Redis parses and prints them */
bool sim_str2ll(const char *p, size_t len, long long *v);
bool sim_str2d(const char *p, size_t len, double *v);
bool sim_str2ld(const char *p, size_t len, long double *v);
bool sim_eqi(const sim_str *a, const char *lit);  /* case-insensitive */

#endif
