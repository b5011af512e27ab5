/* script.c -- EVAL, EVALSHA and SCRIPT on the modelled server: the scripts the lock core sends
 * (its very core/scripts files, embedded in libdlock) run in Lua 5.1, the version Redis embeds,
 * as Redis 7.0's eval.c and script_lua.c run them:
 *   - a script is compiled as "function f_<sha1>() <body>\nend", chunk name @user_script, and
 *     known by the SHA1 of its body (EVALSHA, SCRIPT LOAD/EXISTS; NOSCRIPT otherwise);
 *   - KEYS and ARGV are global tables; creating another global or reading an undefined one is
 *     an error (globals protection);
 *   - redis.call / redis.pcall run the model's commands (not BLPOP, MULTI, EVAL...: "not allowed
 *     from script") at the script's start time, and convert replies as Redis does: integer ->
 *     number, bulk -> string, nil -> false, status -> {ok=...}, error -> {err=...} (raised by
 *     redis.call), array -> table;
 *   - the script's result becomes a reply: number -> integer (truncated), string -> bulk,
 *     true -> 1, false/nil -> nil, {err=...} -> error, {ok=...} -> status, table -> array up
 *     to the first nil; an error raised ends the script with its code (WRONGTYPE, ERR...).
 * A script is atomic: it runs within one command's slot of server time. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "sim/model.h"

/* ---- SHA1 (FIPS 180-1) ------------------------------------------------------------------ */

static uint32_t rol(uint32_t v, int n)
{
    return (v << n) | (v >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

void sim_sha1_hex(const void *data, size_t len, char out[41])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const unsigned char *p = data;
    size_t left = len;
    for (; left >= 64; p += 64, left -= 64)
        sha1_block(h, p);
    unsigned char last[128] = {0};
    memcpy(last, p, left);
    last[left] = 0x80;
    size_t n = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        last[n - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, last);
    if (n == 128)
        sha1_block(h, last + 64);
    for (int i = 0; i < 5; i++)
        snprintf(out + 8 * i, 9, "%08x", h[i]);
}

/* ---- replies to Lua and back ------------------------------------------------------------ */

/* An error table as luaPushErrorBuff makes it: {err = "CODE message"}. A message that comes
 * with its code ("-CODE message", what a command replied) keeps it; one without gets ERR. */
static void push_error_table(lua_State *L, const char *msg, size_t len, bool coded)
{
    lua_newtable(L);
    lua_pushstring(L, "err");
    if (coded && len > 0 && msg[0] == '-')
        msg++, len--;
    if (coded && memchr(msg, ' ', len)) {
        lua_pushlstring(L, msg, len);
    } else {
        lua_pushstring(L, "ERR ");
        lua_pushlstring(L, msg, len);
        lua_concat(L, 2);
    }
    lua_settable(L, -3);
}

static void push_reply(lua_State *L, const dlock_reply *r)
{
    luaL_checkstack(L, 4, "reply too deep");
    switch (r->type) {
    case DLOCK_REPLY_INTEGER:
        lua_pushnumber(L, (lua_Number)r->integer);
        break;
    case DLOCK_REPLY_STRING:
        lua_pushlstring(L, r->str, r->len);
        break;
    case DLOCK_REPLY_NIL:
        lua_pushboolean(L, 0);
        break;
    case DLOCK_REPLY_STATUS:
        lua_newtable(L);
        lua_pushstring(L, "ok");
        lua_pushlstring(L, r->str, r->len);
        lua_settable(L, -3);
        break;
    case DLOCK_REPLY_ERROR:
        push_error_table(L, r->str, r->len, true);
        break;
    case DLOCK_REPLY_ARRAY:
        lua_newtable(L);
        for (size_t i = 0; i < r->elements; i++) {
            lua_pushnumber(L, (lua_Number)(i + 1));
            push_reply(L, &r->element[i]);
            lua_settable(L, -3);
        }
        break;
    }
}

/* (long long) of a Lua number, as the cast on x86-64 gives it where C leaves it undefined. */
static long long number_to_ll(lua_Number n)
{
    if (isnan(n) || n >= 9223372036854775808.0 || n < -9223372036854775808.0)
        return (long long)0x8000000000000000ULL;
    return (long long)n;
}

/* luaReplyToRedisReply for the value on top of the stack (popped). */
static const dlock_reply *lua_to_reply(sim_exec *x, lua_State *L)
{
    const dlock_reply *r = &sim_r_nil;
    luaL_checkstack(L, 4, "reply too deep");
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t len;
        const char *p = lua_tolstring(L, -1, &len);
        r = r_bulk(x, p, len);
        break;
    }
    case LUA_TBOOLEAN:
        r = lua_toboolean(L, -1) ? &sim_r_one : &sim_r_nil;
        break;
    case LUA_TNUMBER:
        r = r_int(x, number_to_ll(lua_tonumber(L, -1)));
        break;
    case LUA_TTABLE: {
        lua_pushstring(L, "err");
        lua_rawget(L, -2);
        if (lua_type(L, -1) == LUA_TSTRING) {
            r = r_error(x, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            break;
        }
        lua_pop(L, 1);
        lua_pushstring(L, "ok");
        lua_rawget(L, -2);
        if (lua_type(L, -1) == LUA_TSTRING) {
            char *ok = (char *)sa_alloc(&x->s->arena, lua_strlen(L, -1) + 1);
            strcpy(ok, lua_tostring(L, -1));
            for (char *q = ok; *q; q++)
                if (*q == '\r' || *q == '\n')
                    *q = ' ';
            r = r_status(x, ok);
            lua_pop(L, 1);
            break;
        }
        lua_pop(L, 1);
        size_t n = 0;
        for (;; n++) {
            lua_rawgeti(L, -1, (int)n + 1);
            bool end = lua_isnil(L, -1);
            lua_pop(L, 1);
            if (end)
                break;
        }
        dlock_reply *arr = r_array(x, n);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, -1, (int)i + 1);
            ((dlock_reply *)arr->element)[i] = *lua_to_reply(x, L);
        }
        r = arr;
        break;
    }
    default:
        break;
    }
    lua_pop(L, 1);
    return r;
}

/* ---- the redis table -------------------------------------------------------------------- */

static sim_server *server_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "sim_server");
    sim_server *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

static int raise_or_return(lua_State *L, bool raise)
{
    return raise ? lua_error(L) : 1;
}

/* luaRedisGenericCommand */
static int redis_call_generic(lua_State *L, bool raise)
{
    sim_server *s = server_of(L);
    sim_exec *x = s->script_x;
    int argc = lua_gettop(L);
    if (!x) {
        push_error_table(L, "redis.call/pcall can only be called inside a script invocation", 62,
                         false);
        return lua_error(L);
    }
    x->script_calls++;  /* each costs the server us_per_script (redis.c) */
    if (argc == 0) {
        const char *m = "Please specify at least one argument for this redis lib call";
        push_error_table(L, m, strlen(m), false);
        return raise_or_return(L, raise);
    }
    sim_mark mark = sa_mark(&s->arena);
    sim_str *argv = sa_alloc(&s->arena, (size_t)argc * sizeof *argv);
    for (int j = 0; j < argc; j++) {
        int t = lua_type(L, j + 1);
        if (t == LUA_TNUMBER) {
            char *buf = sa_alloc(&s->arena, 64);
            int n = snprintf(buf, 64, "%.17g", (double)lua_tonumber(L, j + 1));
            argv[j] = (sim_str){buf, (size_t)n};
        } else if (t == LUA_TSTRING) {
            argv[j].p = lua_tolstring(L, j + 1, &argv[j].len);
        } else {
            sa_release(&s->arena, mark);
            const char *m = "Lua redis lib command arguments must be strings or integers";
            push_error_table(L, m, strlen(m), false);
            return raise_or_return(L, raise);
        }
    }
    const sim_command *cmd = sim_lookup_command(argv[0].p, argv[0].len);
    const char *err = NULL;
    if (!cmd)
        err = "Unknown Redis command called from script";
    else if ((cmd->arity > 0 && cmd->arity != argc) || argc < -cmd->arity)
        err = "Wrong number of args calling Redis command from script";
    else if (cmd->flags & SIM_F_NOSCRIPT)
        err = "This Redis command is not allowed from script";
    if (err) {
        sa_release(&s->arena, mark);
        push_error_table(L, err, strlen(err), false);
        return raise_or_return(L, raise);
    }
    const dlock_reply *r = sim_call(x, cmd, argc, argv);
    push_reply(L, r);
    bool is_error = r->type == DLOCK_REPLY_ERROR;
    sa_release(&s->arena, mark);
    return raise_or_return(L, raise && is_error);
}

static int redis_call(lua_State *L)
{
    return redis_call_generic(L, true);
}

static int redis_pcall(lua_State *L)
{
    return redis_call_generic(L, false);
}

static int redis_error_reply(lua_State *L)
{
    if (lua_gettop(L) != 1 || !lua_isstring(L, -1))
        return luaL_error(L, "wrong number or type of arguments");
    size_t len;
    const char *m = lua_tolstring(L, -1, &len);
    push_error_table(L, m, len, true);  /* error_reply adds the '-' it lacks */
    return 1;
}

static int redis_status_reply(lua_State *L)
{
    if (lua_gettop(L) != 1 || !lua_isstring(L, -1))
        return luaL_error(L, "wrong number or type of arguments");
    lua_newtable(L);
    lua_pushstring(L, "ok");
    lua_pushvalue(L, -3);
    lua_settable(L, -3);
    return 1;
}

static int redis_sha1hex(lua_State *L)
{
    if (lua_gettop(L) != 1)
        return luaL_error(L, "wrong number of arguments");
    size_t len;
    const char *p = lua_tolstring(L, 1, &len);
    char hex[41];
    sim_sha1_hex(p ? p : "", p ? len : 0, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int redis_log(lua_State *L)
{
    if (lua_gettop(L) < 2)
        return luaL_error(L, "redis.log() requires two arguments or more.");
    return 0;
}

static int redis_noop_true(lua_State *L)
{
    lua_pushboolean(L, 1);
    return 1;
}

/* Redis 7's pcall: an error table comes back as its message. */
static int lua_pcall_compat(lua_State *L)
{
    int argc = lua_gettop(L);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    if (lua_pcall(L, argc - 1, LUA_MULTRET, 0)) {
        lua_remove(L, 1);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            if (lua_isstring(L, -1))
                lua_replace(L, -2);
            else
                lua_pop(L, 1);
        }
        lua_pushboolean(L, 0);
        lua_insert(L, 1);
    }
    return lua_gettop(L);
}

static const char lua_prelude[] =
    "local dbg = debug\n"
    "function __redis__err__handler(err)\n"
    "  local i = dbg.getinfo(2,'nSl')\n"
    "  if i and i.what == 'C' then i = dbg.getinfo(3,'nSl') end\n"
    "  if type(err) ~= 'table' then err = {err='ERR ' .. tostring(err)} end\n"
    "  if i then err['source'] = i.source; err['line'] = i.currentline end\n"
    "  return err\n"
    "end\n"
    "local mt = {}\n"
    "setmetatable(_G, mt)\n"
    "mt.__newindex = function (t, n, v)\n"
    "  if dbg.getinfo(2) then\n"
    "    local w = dbg.getinfo(2, 'S').what\n"
    "    if w ~= 'main' and w ~= 'C' then\n"
    "      error(\"Script attempted to create global variable '\"..tostring(n)..\"'\", 2)\n"
    "    end\n"
    "  end\n"
    "  rawset(t, n, v)\n"
    "end\n"
    "mt.__index = function (t, n)\n"
    "  if dbg.getinfo(2) and dbg.getinfo(2, 'S').what ~= 'C' then\n"
    "    error(\"Script attempted to access nonexistent global variable '\"..tostring(n)..\"'\", 2)\n"
    "  end\n"
    "  return rawget(t, n)\n"
    "end\n"
    "debug = nil\n";

static void open_lib(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_pushstring(L, name);
    lua_call(L, 1, 0);
}

static void set_fn(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushstring(L, name);
    lua_pushcfunction(L, fn);
    lua_settable(L, -3);
}

static void set_num(lua_State *L, const char *name, double v)
{
    lua_pushstring(L, name);
    lua_pushnumber(L, v);
    lua_settable(L, -3);
}

int script_init(sim_server *s)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return -1;
    open_lib(L, "", luaopen_base);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_DBLIBNAME, luaopen_debug);
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushcfunction(L, lua_pcall_compat);
    lua_setglobal(L, "pcall");
    lua_pushlightuserdata(L, s);
    lua_setfield(L, LUA_REGISTRYINDEX, "sim_server");

    lua_newtable(L);
    set_fn(L, "call", redis_call);
    set_fn(L, "pcall", redis_pcall);
    set_fn(L, "error_reply", redis_error_reply);
    set_fn(L, "status_reply", redis_status_reply);
    set_fn(L, "sha1hex", redis_sha1hex);
    set_fn(L, "log", redis_log);
    set_fn(L, "set_repl", redis_noop_true);
    set_fn(L, "replicate_commands", redis_noop_true);
    set_num(L, "LOG_DEBUG", 0);
    set_num(L, "LOG_VERBOSE", 1);
    set_num(L, "LOG_NOTICE", 2);
    set_num(L, "LOG_WARNING", 3);
    set_num(L, "REPL_NONE", 0);
    set_num(L, "REPL_AOF", 1);
    set_num(L, "REPL_SLAVE", 2);
    set_num(L, "REPL_REPLICA", 2);
    set_num(L, "REPL_ALL", 3);
    lua_setglobal(L, "redis");

    if (luaL_loadbuffer(L, lua_prelude, sizeof lua_prelude - 1, "@prelude") ||
        lua_pcall(L, 0, 0, 0)) {
        lua_close(L);
        return -1;
    }
    s->lua = L;
    return 0;
}

void script_free(sim_server *s)
{
    if (s->lua)
        lua_close(s->lua);
    s->lua = NULL;
    dict_clear(&s->scripts, NULL);
}

/* SCRIPT FLUSH, and a restart: a new interpreter with no scripts. */
void script_flush(sim_server *s)
{
    script_free(s);
    if (script_init(s) != 0) {
        fprintf(stderr, "sim: cannot restart Lua\n");
        abort();
    }
}

/* ---- EVAL, EVALSHA, SCRIPT -------------------------------------------------------------- */

/* Defines f_<sha> for body (luaCreateFunction); NULL when done, else the error reply. */
static const dlock_reply *script_create(sim_exec *x, const sim_str *body, char sha[41])
{
    sim_server *s = x->s;
    lua_State *L = s->lua;
    sim_sha1_hex(body->p, body->len, sha);
    if (dict_find(&s->scripts, sha, 40))
        return NULL;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "function f_");
    luaL_addlstring(&b, sha, 40);
    luaL_addstring(&b, "() ");
    luaL_addlstring(&b, body->p, body->len);
    luaL_addstring(&b, "\nend");
    luaL_pushresult(&b);
    size_t len;
    const char *def = lua_tolstring(L, -1, &len);
    if (luaL_loadbuffer(L, def, len, "@user_script")) {
        const dlock_reply *r = r_error(x, "ERR Error compiling script (new function): %s",
                                       lua_tostring(L, -1));
        lua_pop(L, 2);
        return r;
    }
    lua_remove(L, -2);
    if (lua_pcall(L, 0, 0, 0)) {
        const dlock_reply *r = r_error(x, "ERR Error running script (new function): %s",
                                       lua_tostring(L, -1));
        lua_pop(L, 1);
        return r;
    }
    dict_add(&s->scripts, sha, 40, (void *)1);
    return NULL;
}

static void set_array_global(lua_State *L, const char *name, const sim_str *v, long long n)
{
    lua_newtable(L);
    for (long long i = 0; i < n; i++) {
        lua_pushlstring(L, v[i].p, v[i].len);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setglobal(L, name);
}

/* The reply for a script that raised an error (luaCallFunction). */
static const dlock_reply *script_error(sim_exec *x, lua_State *L, const char *sha)
{
    if (!lua_istable(L, -1)) {
        const char *m = lua_isstring(L, -1) ? lua_tostring(L, -1) : "execution failure";
        return r_error(x, "ERR Error running script %s, %.100s", sha, m);
    }
    lua_getfield(L, -1, "err");
    lua_getfield(L, -2, "source");
    lua_getfield(L, -3, "line");
    const char *msg = lua_tostring(L, -3), *src = lua_tostring(L, -2);
    const dlock_reply *r;
    if (src && lua_isnumber(L, -1))
        r = r_error(x, "%s script: %s, on %s:%d.", msg ? msg : "ERR", sha, src,
                    (int)lua_tonumber(L, -1));
    else
        r = r_error(x, "%s", msg ? msg : "ERR");
    lua_pop(L, 3);
    return r;
}

static const dlock_reply *script_run(sim_exec *x, const char *sha, int argc, const sim_str *argv,
                                     long long numkeys)
{
    sim_server *s = x->s;
    lua_State *L = s->lua;
    char fname[43] = "f_";
    memcpy(fname + 2, sha, 41);
    lua_getglobal(L, "__redis__err__handler");
    lua_getglobal(L, fname);
    set_array_global(L, "KEYS", argv + 3, numkeys);
    set_array_global(L, "ARGV", argv + 3 + numkeys, argc - 3 - numkeys);
    sim_exec sx = *x;
    sx.in_script = true;
    sx.deny_blocking = true;
    s->script_x = &sx;
    int err = lua_pcall(L, 0, 1, -2);
    s->script_x = NULL;
    x->script_calls += sx.script_calls;
    const dlock_reply *r = err ? script_error(x, L, sha) : lua_to_reply(x, L);
    if (err)
        lua_pop(L, 1);
    lua_pop(L, 1);  /* the error handler */
    return r;
}

static const dlock_reply *parse_numkeys(sim_exec *x, int argc, const sim_str *argv,
                                        long long *numkeys)
{
    if (!sim_str2ll(argv[2].p, argv[2].len, numkeys))
        return r_error(x, "ERR value is not an integer or out of range");
    if (*numkeys > argc - 3)
        return r_error(x, "ERR Number of keys can't be greater than number of args");
    if (*numkeys < 0)
        return r_error(x, "ERR Number of keys can't be negative");
    return NULL;
}

const dlock_reply *cmd_eval(sim_exec *x, int argc, const sim_str *argv)
{
    long long numkeys;
    const dlock_reply *r = parse_numkeys(x, argc, argv, &numkeys);
    if (r)
        return r;
    char sha[41];
    if ((r = script_create(x, &argv[1], sha)))
        return r;
    return script_run(x, sha, argc, argv, numkeys);
}

static const dlock_reply *noscript(sim_exec *x)
{
    return r_error(x, "NOSCRIPT No matching script. Please use EVAL.");
}

const dlock_reply *cmd_evalsha(sim_exec *x, int argc, const sim_str *argv)
{
    if (argv[1].len != 40)
        return noscript(x);
    long long numkeys;
    const dlock_reply *r = parse_numkeys(x, argc, argv, &numkeys);
    if (r)
        return r;
    char sha[41];
    for (int i = 0; i < 40; i++)
        sha[i] = (char)tolower((unsigned char)argv[1].p[i]);
    sha[40] = '\0';
    if (!dict_find(&x->s->scripts, sha, 40))
        return noscript(x);
    return script_run(x, sha, argc, argv, numkeys);
}

const dlock_reply *cmd_script(sim_exec *x, int argc, const sim_str *argv)
{
    const sim_str *sub = &argv[1];
    if (sim_eqi(sub, "load")) {
        if (argc != 3)
            return r_arity(x, "script|load");
        char sha[41];
        const dlock_reply *r = script_create(x, &argv[2], sha);
        return r ? r : r_bulk(x, sha, 40);
    }
    if (sim_eqi(sub, "exists")) {
        if (argc < 3)
            return r_arity(x, "script|exists");
        dlock_reply *r = r_array(x, (size_t)argc - 2);
        for (int j = 2; j < argc; j++) {
            char sha[41] = {0};
            bool found = false;
            if (argv[j].len == 40) {
                for (int i = 0; i < 40; i++)
                    sha[i] = (char)tolower((unsigned char)argv[j].p[i]);
                found = dict_find(&x->s->scripts, sha, 40) != NULL;
            }
            ((dlock_reply *)r->element)[j - 2] = found ? sim_r_one : sim_r_zero;
        }
        return r;
    }
    if (sim_eqi(sub, "flush")) {
        if (argc > 3 || (argc == 3 && !sim_eqi(&argv[2], "sync") && !sim_eqi(&argv[2], "async")))
            return r_error(x, "ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        script_flush(x->s);
        return &sim_r_ok;
    }
    return r_error(x, "ERR unknown subcommand '%.128s'. Try SCRIPT HELP.", sub->p);
}
