/* test_url.c -- sentinel:// URLs: the good forms and every malformed one, each refused with the
 * part that is wrong named and the password never repeated. No server needed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scripted.h"

#include "connect.h"
#include "sentinel.h"

static void good_forms(void **state)
{
    char err[256];
    dlock__url u;
    assert_int_equal(dlock__url_parse(&u, "sentinel://127.0.0.1:26380/mymaster", err, sizeof err), 0);
    assert_non_null(u.sentinel);
    assert_null(u.host);
    assert_int_equal(u.sentinel->n, 1);
    assert_string_equal(u.sentinel->host[0], "127.0.0.1");
    assert_int_equal(u.sentinel->port[0], 26380);
    assert_string_equal(u.sentinel->master, "mymaster");
    assert_int_equal(u.db, 0);
    assert_null(u.pass);
    assert_string_equal(u.where, "mymaster via 127.0.0.1:26380");
    dlock__url_clear(&u);

    assert_int_equal(dlock__url_parse(&u, "sentinel://alice:p%40ss@a:1,b:2,[::1]:3/m-1/5", err,
                                      sizeof err), 0);
    assert_int_equal(u.sentinel->n, 3);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.pass, "p@ss");
    assert_string_equal(u.sentinel->host[1], "b");
    assert_int_equal(u.sentinel->port[1], 2);
    assert_string_equal(u.sentinel->host[2], "::1");
    assert_int_equal(u.sentinel->port[2], 3);
    assert_string_equal(u.sentinel->master, "m-1");
    assert_int_equal(u.db, 5);
    assert_null(strstr(u.where, "p@ss"));
    assert_null(strstr(u.where, "alice"));
    dlock__url_clear(&u);

    /* the sentinel's default port; a trailing slash; a password alone */
    assert_int_equal(dlock__url_parse(&u, "sentinel://:pw@a,b:7/m/", err, sizeof err), 0);
    assert_int_equal(u.sentinel->port[0], 26379);
    assert_int_equal(u.sentinel->port[1], 7);
    assert_null(u.user);
    assert_string_equal(u.pass, "pw");
    assert_int_equal(u.db, 0);
    dlock__url_clear(&u);
}

/* Each malformed form with the part its message must name. The password (s3cr3t) is in every
 * URL and must never show. */
static void malformed_forms_name_the_part(void **state)
{
    static const struct {
        const char *url, *part;
    } cases[] = {
        {"sentinel://:s3cr3t@", "empty host list"},
        {"sentinel://:s3cr3t@/m", "empty host list"},
        {"sentinel://:s3cr3t@a:1", "no master name"},
        {"sentinel://:s3cr3t@a:1/", "no master name"},
        {"sentinel://:s3cr3t@a:1//0", "no master name"},
        {"sentinel://:s3cr3t@a:0/m", "host 1: bad port"},
        {"sentinel://:s3cr3t@a:65536/m", "host 1: bad port"},
        {"sentinel://:s3cr3t@a:1,b:x/m", "host 2: bad port"},
        {"sentinel://:s3cr3t@a:1,b:/m", "host 2: bad port"},
        {"sentinel://:s3cr3t@a:1,[::1]x/m", "host 2: bad port"},
        {"sentinel://:s3cr3t@,a:1/m", "host 1: empty host"},
        {"sentinel://:s3cr3t@a:1,,b:2/m", "host 2: empty host"},
        {"sentinel://:s3cr3t@a:1,/m", "host 2: empty host"},
        {"sentinel://:s3cr3t@:1/m", "host 1: empty host"},
        {"sentinel://:s3cr3t@[::1/m", "host 1: unclosed ["},
        {"sentinel://:s3cr3t@a:1/m/x", "bad db"},
        {"sentinel://:s3cr3t@a:1/m/-1", "bad db"},
        {"sentinel://:s3cr3t@a:1/m/1/2", "bad db"},
        {"sentinel://:s3cr3t@a:1/m/99999999", "bad db"},
        {"sentinel://:s3cr3t@a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a/m", "too many hosts"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        dlock__url u;
        int rc = dlock__url_parse(&u, cases[i].url, err, sizeof err);
        if (rc != -1 || !strstr(err, cases[i].part) || strstr(err, "s3cr3t"))
            fail_msg("%s: rc %d, message \"%s\", expected one naming \"%s\"", cases[i].url, rc,
                     err, cases[i].part);
        assert_true(strncmp(err, "bad sentinel URL: ", 18) == 0);
        assert_null(u.sentinel);  /* left empty */
        assert_null(u.pass);
    }
}

/* The library's own entry point takes the same path: no client, and the reason. */
static void client_new_refuses_them(void **state)
{
    const char *url = "sentinel://user:s3cr3t@127.0.0.1:1,127.0.0.1:x/m";
    char err[256];
    assert_null(dlock_client_new(&url, 1, err, sizeof err));
    assert_non_null(strstr(err, "host 2: bad port"));
    assert_null(strstr(err, "s3cr3t"));
}

/* No sentinel answering: the client cannot start, and says why without the password. */
static void no_sentinel_answers(void **state)
{
    const char *url = "sentinel://:s3cr3t@127.0.0.1:1/nowhere";
    char err[256];
    uint64_t before = dlock__sentinel_queries();
    assert_null(dlock_client_new(&url, 1, err, sizeof err));
    assert_non_null(strstr(err, "no sentinel named the primary of nowhere"));
    assert_null(strstr(err, "s3cr3t"));
    assert_int_equal(dlock__sentinel_queries(), before);  /* nothing reached: nothing sent */
}

/* A listening socket that never answers (its connections wait in the backlog). */
static int silent_listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Three sentinels that take the connection and never answer: the client gives up within its
 * one connect timeout (1 s) for the whole connect, not a second for each sentinel. */
static void silent_sentinels_cost_one_timeout(void **state)
{
    int p[3], fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = silent_listener(&p[i]);
    char url[160], err[256];
    snprintf(url, sizeof url, "sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/silent", p[0],
             p[1], p[2]);
    const char *u = url;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_null(dlock_client_new(&u, 1, err, sizeof err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    print_message("three silent sentinels: gave up after %lld ms (%s)\n", (long long)ms, err);
    assert_in_range(ms, 900, 1900);
    for (int i = 0; i < 3; i++)
        close(fd[i]);
}

static void role_and_moved_replies(void **state)
{
    redisReply master_s = {.type = REDIS_REPLY_STRING, .str = "master", .len = 6};
    redisReply slave_s = {.type = REDIS_REPLY_STRING, .str = "slave", .len = 5};
    redisReply *m[] = {&master_s}, *sl[] = {&slave_s};
    redisReply master = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = m};
    redisReply slave = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = sl};
    redisReply empty = {.type = REDIS_REPLY_ARRAY};
    char why[64];
    assert_true(dlock__role_is_master(&master, why, sizeof why));
    assert_false(dlock__role_is_master(&slave, why, sizeof why));
    assert_string_equal(why, "ROLE says slave");
    assert_false(dlock__role_is_master(&empty, why, sizeof why));
    assert_true(dlock__error_says_moved("READONLY You can't write against a read only replica."));
    assert_true(dlock__error_says_moved("ERR Error running script: READONLY You can't write"));
    assert_true(dlock__error_says_moved("MASTERDOWN Link with MASTER is down"));
    assert_false(dlock__error_says_moved("LOADING Redis is loading the dataset in memory"));
    assert_false(dlock__error_says_moved("NOAUTH Authentication required."));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_forms),
        cmocka_unit_test(malformed_forms_name_the_part),
        cmocka_unit_test(client_new_refuses_them),
        cmocka_unit_test(no_sentinel_answers),
        cmocka_unit_test(silent_sentinels_cost_one_timeout),
        cmocka_unit_test(role_and_moved_replies),
    };
    return cmocka_run_group_tests_name("test_url", tests, NULL, NULL);
}
