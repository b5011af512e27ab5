/* endpoint.h -- the Redis URLs lockbench handles itself: checking the command line's, adding
 * REDISCLI_AUTH, pointing a URL through the fault proxy, and plain connections for calibration,
 * the protected resource and clean-up. Built on the lock core's URL parser, so lockbench and
 * libdlock read a URL alike (credentials, /db, unix sockets) and never print a password. */
#ifndef LB_ENDPOINT_H
#define LB_ENDPOINT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* 0 when url parses, else -1 with the reason in err (the URL itself is not repeated). */
int           lb_endpoint_check(const char *url, char *err, size_t errlen);
/* The URL with the password from $REDISCLI_AUTH when it names none; malloc'd. */
char         *lb_endpoint_with_env_auth(const char *url);
/* The same URL (user, password, db) aimed at host:port instead; malloc'd; NULL for a unix
 * socket, which the proxy cannot relay, and for a sentinel:// URL (its primary moves). */
char         *lb_endpoint_via(const char *url, const char *host, int port);
/* The TCP host and port of url; -1 for a unix socket, a sentinel:// URL or a bad URL. */
int           lb_endpoint_hostport(const char *url, char *host, size_t hostlen, int *port);
/* A plain hiredis connection with AUTH and SELECT done; NULL with err filled. */
redisContext *lb_endpoint_connect(const char *url, int64_t timeout_ms, char *err, size_t errlen);

#endif
