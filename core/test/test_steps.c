/* test_steps.c -- the token and legacy step functions, driven by scripted replies. */
#include <math.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scripted.h"

static const dlock__now T0 = {.mono_us = 5000000, .wall_ms = 1000000};

/* Feeds one step with replies; returns its result and leaves the next batch in out. */
static int feed(dlock *l, dlock__step_fn step, const dlock__now *now, dlock__batch *out,
                int n, ...)
{
    const dlock_reply *r[DLOCK__MAX_BATCH];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        r[i] = va_arg(ap, const dlock_reply *);
    va_end(ap);
    out->n = 0;
    return step(l, now, r, n, out);
}

static dlock *new_lock(dlock_algorithm a, int64_t ttl, bool fencing)
{
    dlock_options o;
    dlock_options_init(&o);
    o.algorithm = a;
    o.ttl_ms = ttl;
    o.fencing = fencing;
    dlock *l = scripted_lock(&o, 1);
    l->phase = 0;
    return l;
}

/* ---- token --------------------------------------------------------------- */

static void token_acquire_sends_set_nx_px(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 30000, false);
    SCRIPTED_BATCH(b);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 0), DLOCK__SEND);
    assert_int_equal(b.n, 1);
    assert_cmd(&b, 0, 0, NULL, "SET", "res", l->token, "NX", "PX", "30000", NULL);
    assert_int_equal(strlen(l->token), 32);
    dlock_reply ok = R_STATUS("OK");
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 1, &ok), DLOCK_OK);
    assert_int_equal(dlock_fencing_token(l), 0);
    dlock__lock_free(l);
}

static void token_acquire_without_ttl_sets_no_expiry(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 0, false);
    SCRIPTED_BATCH(b);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 0), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "SET", "res", l->token, "NX", NULL);
    dlock__lock_free(l);
}

static void token_acquire_held_is_busy(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply nil = R_NIL;
    feed(l, dlock__token.acquire, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 1, &nil), DLOCK_EBUSY);
    assert_int_equal(b.n, 0);
    dlock__lock_free(l);
}

static void token_acquire_error_or_no_reply_is_eio(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply err = R_ERROR("OOM command not allowed");
    feed(l, dlock__token.acquire, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 1, &err), DLOCK_EIO);
    assert_non_null(strstr(dlock__lock_err(l), "OOM command not allowed"));
    l->phase = 0;
    feed(l, dlock__token.acquire, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 1, (const dlock_reply *)NULL), DLOCK_EIO);
    assert_non_null(strstr(dlock__lock_err(l), "no reply"));
    dlock__lock_free(l);
}

/* The token is the driver's 16 random bytes, in hex: the lock core draws none itself. */
static void tokens_are_the_drivers_bytes_in_hex(void **state)
{
    static const unsigned char x[16] = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xfe, 0xff};
    static const unsigned char y[16] = {0};
    dlock_options o;
    dlock_options_init(&o);
    dlock *a = dlock__lock_new(NULL, "res", &o, 1, x), *b = dlock__lock_new(NULL, "res", &o, 1, y);
    assert_string_equal(a->token, "deadbeef00010203040506070809feff");
    assert_string_equal(b->token, "00000000000000000000000000000000");
    dlock__lock_free(a);
    dlock__lock_free(b);
}

static void fencing_acquire_returns_the_incremented_token(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 5000, true);
    SCRIPTED_BATCH(b);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 0), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_acquire_fenced, "res", "res:fence", l->token, "5000", NULL);
    assert_int_equal(b.cmd[0].nkeys, 2);
    dlock_reply seven = R_INT(7);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 1, &seven), DLOCK_OK);
    assert_int_equal(dlock_fencing_token(l), 7);
    dlock__lock_free(l);
}

static void fencing_acquire_held_is_busy(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 5000, true);
    SCRIPTED_BATCH(b);
    dlock_reply zero = R_INT(0), bad = R_STATUS("OK");
    feed(l, dlock__token.acquire, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 1, &zero), DLOCK_EBUSY);
    assert_int_equal(dlock_fencing_token(l), 0);
    l->phase = 0;
    feed(l, dlock__token.acquire, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__token.acquire, &T0, &b, 1, &bad), DLOCK_EIO);
    dlock__lock_free(l);
}

static void token_release_compares_and_deletes(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply one = R_INT(1), zero = R_INT(0);
    assert_int_equal(feed(l, dlock__token.release, &T0, &b, 0), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_release, "res", l->token, NULL);
    assert_int_equal(b.cmd[0].nkeys, 1);
    assert_int_equal(feed(l, dlock__token.release, &T0, &b, 1, &one), DLOCK_OK);
    /* someone else's token (or no key): nothing deleted, not ours */
    l->phase = 0;
    feed(l, dlock__token.release, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__token.release, &T0, &b, 1, &zero), DLOCK_ENOTOWNER);
    dlock__lock_free(l);
}

static void token_extend_compares_and_pexpires(void **state)
{
    dlock *l = new_lock(DLOCK_TOKEN, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply one = R_INT(1), zero = R_INT(0);
    dlock__set_ttl_arg(l, 45000);
    assert_int_equal(feed(l, dlock__token.extend, &T0, &b, 0), DLOCK__SEND);
    assert_cmd(&b, 0, 0, &dlock__script_extend, "res", l->token, "45000", NULL);
    assert_int_equal(feed(l, dlock__token.extend, &T0, &b, 1, &one), DLOCK_OK);
    l->phase = 0;
    feed(l, dlock__token.extend, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__token.extend, &T0, &b, 1, &zero), DLOCK_ENOTOWNER);
    dlock__lock_free(l);
}

/* ---- legacy -------------------------------------------------------------- */

static void legacy_setnx_success(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply one = R_INT(1);
    assert_int_equal(feed(l, dlock__legacy.acquire, &T0, &b, 0), DLOCK__SEND);
    /* the value is the expiry: wall clock + lease + 1 */
    assert_cmd(&b, 0, 0, NULL, "SETNX", "res", "1030001", NULL);
    assert_int_equal(feed(l, dlock__legacy.acquire, &T0, &b, 1, &one), DLOCK_OK);
    dlock__lock_free(l);
}

static void legacy_without_ttl_leases_365_days(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 0, false);
    SCRIPTED_BATCH(b);
    feed(l, dlock__legacy.acquire, &T0, &b, 0);
    assert_cmd(&b, 0, 0, NULL, "SETNX", "res", "31537000001", NULL);
    dlock__lock_free(l);
}

/* SETNX fails; WATCH/GET shows the value given; returns the step's result after that. */
static int legacy_after_get(dlock *l, const dlock__now *now, const dlock_reply *get,
                            dlock__batch *b)
{
    dlock_reply zero = R_INT(0), ok = R_STATUS("OK");
    feed(l, dlock__legacy.acquire, now, b, 0);
    assert_int_equal(feed(l, dlock__legacy.acquire, now, b, 1, &zero), DLOCK__SEND);
    assert_int_equal(b->n, 2);
    assert_cmd(b, 0, 0, NULL, "WATCH", "res", NULL);
    assert_cmd(b, 1, 0, NULL, "GET", "res", NULL);
    return feed(l, dlock__legacy.acquire, now, b, 2, &ok, get);
}

static void legacy_live_lock_unwatches_and_is_busy(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply future = R_STRING("1000001"), ok = R_STATUS("OK");
    assert_int_equal(legacy_after_get(l, &T0, &future, &b), DLOCK__SEND);
    assert_int_equal(b.n, 1);
    assert_cmd(&b, 0, 0, NULL, "UNWATCH", NULL);
    assert_int_equal(feed(l, dlock__legacy.acquire, &T0, &b, 1, &ok), DLOCK_EBUSY);
    dlock__lock_free(l);
}

static void legacy_expired_lock_is_taken_over(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply past = R_STRING("999999"), ok = R_STATUS("OK"), queued = R_STATUS("QUEUED"),
               committed = R_ARRAY0;
    assert_int_equal(legacy_after_get(l, &T0, &past, &b), DLOCK__SEND);
    assert_int_equal(b.n, 3);
    assert_cmd(&b, 0, 0, NULL, "MULTI", NULL);
    assert_cmd(&b, 1, 0, NULL, "SET", "res", "1030001", NULL);
    assert_cmd(&b, 2, 0, NULL, "EXEC", NULL);
    assert_int_equal(feed(l, dlock__legacy.acquire, &T0, &b, 3, &ok, &queued, &committed),
                     DLOCK_OK);
    dlock__lock_free(l);
}

static void legacy_expiry_equal_to_now_counts_as_expired(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply now = R_STRING("1000000");
    assert_int_equal(legacy_after_get(l, &T0, &now, &b), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "MULTI", NULL);
    dlock__lock_free(l);
}

static void legacy_takeover_race_lost_is_busy(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply past = R_STRING("1"), ok = R_STATUS("OK"), queued = R_STATUS("QUEUED"),
               aborted = R_NIL;
    legacy_after_get(l, &T0, &past, &b);
    assert_int_equal(feed(l, dlock__legacy.acquire, &T0, &b, 3, &ok, &queued, &aborted),
                     DLOCK_EBUSY);
    dlock__lock_free(l);
}

static void legacy_non_numeric_or_missing_value_is_busy(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply garbage = R_STRING("12abc"), nil = R_NIL;
    assert_int_equal(legacy_after_get(l, &T0, &garbage, &b), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "UNWATCH", NULL);
    l->phase = 0;
    assert_int_equal(legacy_after_get(l, &T0, &nil, &b), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "UNWATCH", NULL);
    dlock__lock_free(l);
}

/* The flaw: expiry is judged by the reader's clock, so a clock running ahead steals a lock
 * that is live by the holder's clock. */
static void legacy_skewed_clock_takes_over_a_live_lock(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply live = R_STRING("1020000");
    assert_int_equal(legacy_after_get(l, &T0, &live, &b), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "UNWATCH", NULL);
    dlock__now ahead = T0;
    ahead.wall_ms += 60000;
    l->phase = 0;
    assert_int_equal(legacy_after_get(l, &ahead, &live, &b), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "MULTI", NULL);
    dlock__lock_free(l);
}

static void legacy_release_is_an_unconditional_del(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply one = R_INT(1), zero = R_INT(0);
    assert_int_equal(feed(l, dlock__legacy.release, &T0, &b, 0), DLOCK__SEND);
    assert_cmd(&b, 0, 0, NULL, "DEL", "res", NULL);
    assert_int_equal(feed(l, dlock__legacy.release, &T0, &b, 1, &one), DLOCK_OK);
    l->phase = 0;
    feed(l, dlock__legacy.release, &T0, &b, 0);
    assert_int_equal(feed(l, dlock__legacy.release, &T0, &b, 1, &zero), DLOCK_OK);
    dlock__lock_free(l);
}

static void legacy_has_no_extend(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    assert_int_equal(feed(l, dlock__legacy.extend, &T0, &b, 0), DLOCK_EINVAL);
    assert_int_equal(b.n, 0);
    dlock__lock_free(l);
}

static void legacy_watch_error_is_eio(void **state)
{
    dlock *l = new_lock(DLOCK_LEGACY, 30000, false);
    SCRIPTED_BATCH(b);
    dlock_reply zero = R_INT(0), err = R_ERROR("ERR WATCH inside MULTI is not allowed"),
               v = R_STRING("1");
    feed(l, dlock__legacy.acquire, &T0, &b, 0);
    feed(l, dlock__legacy.acquire, &T0, &b, 1, &zero);
    assert_int_equal(feed(l, dlock__legacy.acquire, &T0, &b, 2, &err, &v), DLOCK_EIO);
    assert_non_null(strstr(dlock__lock_err(l), "WATCH"));
    dlock__lock_free(l);
}

/* ---- options ------------------------------------------------------------- */

static void option_combinations_are_checked(void **state)
{
    dlock_options o;
    char err[128];
    dlock_options_init(&o);
    assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_OK);
    o.fencing = true;
    o.algorithm = DLOCK_LEGACY;
    assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_EINVAL);
    assert_non_null(strstr(err, "fencing"));
    dlock_options_init(&o);
    assert_int_equal(dlock__check_options(&o, 3, err, sizeof err), DLOCK_EINVAL);
    o.ttl_ms = -5;
    assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_EINVAL);
    dlock_options_init(&o);
    o.backoff.cap_ms = 0;
    o.backoff.base_ms = 10;
    assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_EINVAL);
}

/* Durations are turned into microseconds and added to clock readings: each has a range, and a
 * value past it is refused with the option named, not left to overflow. */
static void option_ranges_are_checked(void **state)
{
    static const struct {
        const char *name;
        size_t off;
        int64_t lo, hi;          /* the range; below lo and above hi are refused */
    } fields[] = {
        {"ttl_ms", offsetof(dlock_options, ttl_ms), 0, DLOCK_MAX_DURATION_MS},
        {"wait_timeout_ms", offsetof(dlock_options, wait_timeout_ms), -1, DLOCK_MAX_DURATION_MS},
        {"command_timeout_ms", offsetof(dlock_options, command_timeout_ms), 1,
         DLOCK_MAX_DURATION_MS},
        {"cap_ms", offsetof(dlock_options, backoff.cap_ms), 0, DLOCK_MAX_DURATION_MS},
    };
    const int64_t bad[] = {INT64_MAX, INT64_MAX / 1000 + 1, DLOCK_MAX_DURATION_MS + 1};
    dlock_options o;
    char err[160];
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        int64_t *v = (int64_t *)((char *)&o + fields[i].off);
        dlock_options_init(&o);
        o.backoff.base_ms = 0;
        *v = fields[i].hi;
        assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_OK);
        *v = fields[i].lo;
        assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_OK);
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            *v = bad[k];
            err[0] = '\0';
            assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_EINVAL);
            assert_non_null(strstr(err, fields[i].name));
        }
        *v = fields[i].lo - 1;
        assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_EINVAL);
        assert_non_null(strstr(err, fields[i].name));
    }
    dlock_options_init(&o);
    o.backoff.base_ms = INT64_MAX;   /* base <= cap, and cap is bounded */
    o.backoff.cap_ms = INT64_MAX;
    assert_int_equal(dlock__check_options(&o, 1, err, sizeof err), DLOCK_EINVAL);
    assert_non_null(strstr(err, "cap_ms"));
    dlock_options_init(&o);          /* NaN passes both < 0 and >= 1; the cast to int64 is UB */
    o.algorithm = DLOCK_REDLOCK;
    o.drift_factor = NAN;
    assert_int_equal(dlock__check_options(&o, 3, err, sizeof err), DLOCK_EINVAL);
    assert_non_null(strstr(err, "drift_factor"));
    o.drift_factor = 0.5;
    o.ttl_ms = DLOCK_MAX_DURATION_MS;
    assert_int_equal(dlock__check_options(&o, 3, err, sizeof err), DLOCK_OK);
    assert_true(dlock__drift_us(&o) > 0);
}

static void on_extended(void *ud, int rc)
{
    (void)ud, (void)rc;
    fail_msg("a refused extend must not call back");
}

/* Counts the commands the client was about to send, and cancels each. */
static int count_and_cancel(void *ud, const char *command)
{
    (void)command;
    ++*(int *)ud;
    return 1;
}

/* Through the API: an acquire or an extend with a value out of range returns DLOCK_EINVAL with
 * the reason in the client's error before anything is sent. The "server" is a loopback socket
 * that accepts connections and never answers; the hook would see (and cancel) any command. */
static void out_of_range_calls_are_refused_before_sending(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    const char *urls[] = {url};
    dlock_client *c = dlock_client_new(urls, 1, err, sizeof err);
    if (!c)
        fail_msg("dlock_client_new: %s", err);
    int sent = 0;
    dlock_client_set_hook(c, count_and_cancel, &sent);

    dlock_options o;
    dlock *l = (dlock *)1;
    int64_t *fields[] = {&o.ttl_ms, &o.wait_timeout_ms, &o.command_timeout_ms,
                         &o.backoff.cap_ms};
    const char *names[] = {"ttl_ms", "wait_timeout_ms", "command_timeout_ms", "cap_ms"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        dlock_options_init(&o);
        o.command_timeout_ms = 200;
        *fields[i] = INT64_MAX;
        assert_int_equal(dlock_acquire(c, "k", &o, &l), DLOCK_EINVAL);
        assert_null(l);
        assert_non_null(strstr(dlock_client_errstr(c), names[i]));
        l = (dlock *)1;
    }
    assert_int_equal(sent, 0);

    dlock_options_init(&o);
    o.command_timeout_ms = 200;
    static const unsigned char token[16];
    l = dlock__lock_new(c, "k", &o, 1, token);  /* as if acquired: extend checks before it sends */
    assert_non_null(l);
    assert_int_equal(dlock_extend(l, INT64_MAX), DLOCK_EINVAL);
    assert_non_null(strstr(dlock_client_errstr(c), "ttl_ms"));
    assert_int_equal(dlock_extend(l, -1), DLOCK_EINVAL);
    assert_string_equal(l->ttl_arg, "30000");
    assert_int_equal(o.ttl_ms, 30000);

    dlock_loop *lp = dlock_loop_new(err, sizeof err);
    assert_non_null(lp);
    assert_int_equal(dlock_client_attach(c, lp), DLOCK_OK);
    dlock__client_set_err(c, "");
    assert_int_equal(dlock_extend_async(l, DLOCK_MAX_DURATION_MS + 1, on_extended, NULL),
                     DLOCK_EINVAL);
    assert_non_null(strstr(dlock_client_errstr(c), "ttl_ms"));
    assert_string_equal(l->ttl_arg, "30000");
    assert_true(dlock_loop_run(lp, 20) >= 0);
    assert_int_equal(sent, 0);

    dlock__lock_free(l);
    dlock_client_free(c);
    dlock_loop_free(lp);
    close(fd);
}

static void options_defaults_match_the_spec(void **state)
{
    dlock_options o;
    dlock_options_init(&o);
    assert_int_equal(o.algorithm, DLOCK_TOKEN);
    assert_int_equal(o.ttl_ms, 30000);
    assert_int_equal(o.wait_timeout_ms, -1);
    assert_int_equal(o.wait, DLOCK_WAIT_POLL);
    assert_int_equal(o.backoff.policy, DLOCK_BACKOFF_EXPONENTIAL);
    assert_int_equal(o.backoff.base_ms, 1);
    assert_int_equal(o.backoff.cap_ms, 100);
    assert_false(o.renew);
    assert_false(o.fencing);
    assert_true(o.drift_factor > 0.0099 && o.drift_factor < 0.0101);
    assert_int_equal(o.command_timeout_ms, 1000);
}

/* Tokens come from a per-thread pool of getrandom bytes: distinct one after another, and a
 * forked child must not hand out the parent's next tokens. */
static int random_token(char out[33])
{
    unsigned char raw[16];
    if (dlock__random_bytes(raw, sizeof raw) < 0)
        return -1;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static void tokens_are_distinct_across_fork(void **state)
{
    char a[33], b[33], parent_next[33], child_next[33] = "";
    int fd[2];
    assert_int_equal(random_token(a), 0);
    assert_int_equal(random_token(b), 0);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char t[33];
        _exit(random_token(t) == 0 && write(fd[1], t, 33) == 33 ? 0 : 1);
    }
    close(fd[1]);
    assert_int_equal(read(fd[0], child_next, 33), 33);
    close(fd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(random_token(parent_next), 0);
    assert_string_not_equal(parent_next, child_next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_are_distinct_across_fork),
        cmocka_unit_test(token_acquire_sends_set_nx_px),
        cmocka_unit_test(token_acquire_without_ttl_sets_no_expiry),
        cmocka_unit_test(token_acquire_held_is_busy),
        cmocka_unit_test(token_acquire_error_or_no_reply_is_eio),
        cmocka_unit_test(tokens_are_the_drivers_bytes_in_hex),
        cmocka_unit_test(fencing_acquire_returns_the_incremented_token),
        cmocka_unit_test(fencing_acquire_held_is_busy),
        cmocka_unit_test(token_release_compares_and_deletes),
        cmocka_unit_test(token_extend_compares_and_pexpires),
        cmocka_unit_test(legacy_setnx_success),
        cmocka_unit_test(legacy_without_ttl_leases_365_days),
        cmocka_unit_test(legacy_live_lock_unwatches_and_is_busy),
        cmocka_unit_test(legacy_expired_lock_is_taken_over),
        cmocka_unit_test(legacy_expiry_equal_to_now_counts_as_expired),
        cmocka_unit_test(legacy_takeover_race_lost_is_busy),
        cmocka_unit_test(legacy_non_numeric_or_missing_value_is_busy),
        cmocka_unit_test(legacy_skewed_clock_takes_over_a_live_lock),
        cmocka_unit_test(legacy_release_is_an_unconditional_del),
        cmocka_unit_test(legacy_has_no_extend),
        cmocka_unit_test(legacy_watch_error_is_eio),
        cmocka_unit_test(option_combinations_are_checked),
        cmocka_unit_test(option_ranges_are_checked),
        cmocka_unit_test(out_of_range_calls_are_refused_before_sending),
        cmocka_unit_test(options_defaults_match_the_spec),
    };
    return cmocka_run_group_tests_name("steps", tests, NULL, NULL);
}
