/* connect.h -- Redis URLs and connecting to them, for the lock core and for lockbench (which
 * connects to the same servers and to the protected resource, and should read URLs alike).
 * Internal: not installed. */
#ifndef DLOCK_CONNECT_H
#define DLOCK_CONNECT_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dlock__sentinel;  /* sentinel.h */

typedef struct dlock__url {
    char *host;        /* NULL for a unix socket and for a sentinel:// URL */
    int port;
    char *path;        /* unix socket path */
    char *user;
    char *pass;
    int db;
    char where[96];    /* host:port, [v6]:port or path, for messages; never the credentials */
    struct dlock__sentinel *sentinel;  /* sentinel://: whom to ask for the primary (user, pass
                                          and db are the primary's) */
} dlock__url;

/* redis://[user:password@]host[:port][/db], unix:///path or
 * sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db]. 0, or -1 with err
 * filled (the message names the part that is wrong and never repeats the URL, which may hold a
 * password); on failure u is left empty. */
int  dlock__url_parse(dlock__url *u, const char *url, char *err, size_t errlen);
void dlock__url_clear(dlock__url *u);  /* wipes the password */

/* The pieces URLs are read with (sentinel.c reads sentinel:// with them): a decimal in
 * [lo, hi] spanning exactly len characters; "[user:password@]" (percent-decoded into u; a
 * userinfo without ':' is a password, as redis-cli reads it), returning what follows. */
bool        dlock__url_int(const char *s, size_t len, int lo, int hi, int *out);
const char *dlock__url_userinfo(dlock__url *u, const char *p);

/* Connects with a timeout (also set as the socket timeout), sends AUTH and SELECT as the URL
 * asks (for a sentinel:// URL: to the primary the sentinels name, checked with ROLE). NULL on failure with err filled. refusal (NULL = not wanted) tells a server's refusal
 * from a network failure: it gets the server's own error reply to AUTH or SELECT (WRONGPASS
 * ..., never the password), and stays "" otherwise. */
redisContext *dlock__connect(const dlock__url *u, int64_t timeout_ms, char *err, size_t errlen,
                             char *refusal, size_t refusal_len);

/* The same for an event loop, where nothing may wait: the connection is under way when this
 * returns (its first writes may find the socket not yet connected: hiredis then waits for
 * writability), and AUTH and SELECT wait in its output buffer, ahead of anything appended after
 * them (and ROLE, for a sentinel:// URL); *setup says how many replies of theirs come first. NULL with err filled when not even
 * the socket could be started. */
redisContext *dlock__connect_nonblock(const dlock__url *u, char *err, size_t errlen, int *setup);

/* Whether a Redis error reply says the server refuses us -- credentials, permissions, a command
 * or a form of it that it does not know, a database it does not have -- rather than that it
 * cannot serve us right now (LOADING, BUSY, OOM, max clients) or a lock-state answer. A refusal
 * comes back on every retry until someone changes the server's or the client's configuration,
 * so waiting never mends it. */
bool dlock__error_is_refusal(const char *reply);

/* hiredis 0.14 writes with write(2): writes go between these so a SIGPIPE never kills the host
 * process. */
typedef struct dlock__pipe_guard {
    sigset_t old;
} dlock__pipe_guard;
void dlock__sigpipe_block(dlock__pipe_guard *g);
void dlock__sigpipe_unblock(dlock__pipe_guard *g, bool write_failed);
/* The same for many writes (an event loop's round): between these, block and unblock cost
 * nothing, and a SIGPIPE a failed write raised is consumed at the release. */
void dlock__sigpipe_hold(dlock__pipe_guard *g);
void dlock__sigpipe_release(dlock__pipe_guard *g);

#endif
