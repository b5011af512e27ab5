/* endpoint.c -- see endpoint.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "endpoint.h"

int lb_endpoint_check(const char *url, char *err, size_t errlen)
{
    dlock__url u;
    if (dlock__url_parse(&u, url, err, errlen) < 0)
        return -1;
    dlock__url_clear(&u);
    return 0;
}

/* Appends s percent-encoded (all but RFC 3986's unreserved characters). */
static void put_encoded(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~", ch))
            fputc(ch, f);
        else
            fprintf(f, "%%%02X", ch);
    }
}

/* Writes u as a URL to host:port. */
static char *compose(const dlock__url *u, const char *host, int port)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fputs("redis://", f);
    if (u->pass) {
        if (u->user)
            put_encoded(f, u->user);
        fputc(':', f);
        put_encoded(f, u->pass);
        fputc('@', f);
    }
    fprintf(f, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (u->db)
        fprintf(f, "/%d", u->db);
    fclose(f);
    return out;
}

char *lb_endpoint_with_env_auth(const char *url)
{
    const char *env = getenv("REDISCLI_AUTH");
    char err[128];
    dlock__url u;
    if (!env || !*env || dlock__url_parse(&u, url, err, sizeof err) < 0)
        return strdup(url);
    char *out = NULL;
    if (u.pass || u.path || u.sentinel) {
        out = strdup(url);  /* a password of its own wins; a unix URL cannot carry one; a
                               sentinel URL carries its own (no redis:// form to put it in) */
    } else {
        u.pass = strdup(env);
        out = u.pass ? compose(&u, u.host, u.port) : NULL;
    }
    dlock__url_clear(&u);
    return out;
}

char *lb_endpoint_via(const char *url, const char *host, int port)
{
    char err[128];
    dlock__url u;
    if (dlock__url_parse(&u, url, err, sizeof err) < 0)
        return NULL;
    char *out = u.path || u.sentinel ? NULL : compose(&u, host, port);
    dlock__url_clear(&u);
    return out;
}

int lb_endpoint_hostport(const char *url, char *host, size_t hostlen, int *port)
{
    char err[128];
    dlock__url u;
    if (dlock__url_parse(&u, url, err, sizeof err) < 0)
        return -1;
    int rc = u.path || u.sentinel ? -1 : 0;
    if (rc == 0) {
        snprintf(host, hostlen, "%s", u.host);
        *port = u.port;
    }
    dlock__url_clear(&u);
    return rc;
}

redisContext *lb_endpoint_connect(const char *url, int64_t timeout_ms, char *err, size_t errlen)
{
    dlock__url u;
    if (dlock__url_parse(&u, url, err, errlen) < 0)
        return NULL;
    redisContext *c = dlock__connect(&u, timeout_ms, err, errlen, NULL, 0);
    dlock__url_clear(&u);
    return c;
}
