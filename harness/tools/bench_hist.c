/* bench_hist -- helpers for `make bench` (scripts/bench.sh).
 *
 *   bench_hist [hist [N]]
 *       Records N latency samples (default 10,000,000) into a histogram and prints the mean
 *       cost of one lb_hist_record() in nanoseconds.
 *
 *   bench_hist get FILE PATH...
 *       Prints, one per line, the values at the dotted PATHs of the JSON file FILE (object keys
 *       and array indices: "variants.0.acquire_ms.p99").  Numbers are printed in full, strings
 *       as they are, true/false as 1/0; a missing path or a null prints "null" and makes the
 *       exit status 1 once every path is printed.  Exit 2 when FILE is not readable JSON.
 *
 *   bench_hist exec [--watch PID] OUTFILE -- COMMAND [ARG...]
 *       Runs COMMAND, waits for it and writes to OUTFILE (through atomic.h, as lockbench
 *       writes its results) lines of key=value:
 *           exit        COMMAND's exit status (128 + signal when it was killed)
 *           elapsed_s   wall-clock time from fork to exit (CLOCK_MONOTONIC)
 *           user_s      user CPU time of COMMAND (wait4 rusage, reaped children included)
 *           sys_s       system CPU time of COMMAND
 *           maxrss_kb   COMMAND's peak resident set size
 *           watch_cpu_s user + system CPU time PID used over the same interval (from
 *                       /proc/PID/stat just before the fork and just after the exit), or
 *                       "null" when PID could not be read
 *       Exits with COMMAND's status.  SIGINT and SIGTERM do not end bench_hist: one sent by
 *       another process is passed to COMMAND, one from the terminal has reached COMMAND
 *       already, and the figures are written when COMMAND ends.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "histogram.h"

static void usage(FILE *f)
{
    fputs("usage: bench_hist [hist [N]]\n"
          "       bench_hist get FILE PATH...\n"
          "       bench_hist exec [--watch PID] OUTFILE -- COMMAND [ARG...]\n",
          f);
}

/* ---- hist ------------------------------------------------------------------------------- */

static int cmd_hist(int argc, char **argv)
{
    uint64_t n = 10000000;
    if (argc > 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(argv[0], &end, 10);
        if (errno || end == argv[0] || *end || v == 0) {
            fprintf(stderr, "bench_hist: N must be a positive integer: %s\n", argv[0]);
            return 2;
        }
        n = v;
    }
    double ns = lb_hist_bench_ns_per_record(n);
    if (ns < 0) {
        fprintf(stderr, "bench_hist: out of memory for %" PRIu64 " samples\n", n);
        return 3;
    }
    printf("%.3f\n", ns);
    return 0;
}

/* ---- get -------------------------------------------------------------------------------- */

static json_t *lookup(json_t *root, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    json_t *cur = root;
    char *save = NULL;
    for (char *part = strtok_r(copy, ".", &save); part && cur; part = strtok_r(NULL, ".", &save)) {
        if (json_is_object(cur)) {
            cur = json_object_get(cur, part);
        } else if (json_is_array(cur)) {
            char *end;
            errno = 0;
            unsigned long i = strtoul(part, &end, 10);
            cur = (errno || end == part || *end) ? NULL : json_array_get(cur, i);
        } else {
            cur = NULL;
        }
    }
    free(copy);
    return cur;
}

static int print_value(const json_t *v)
{
    if (json_is_integer(v)) {
        printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    } else if (json_is_real(v)) {
        printf("%.10g\n", json_real_value(v));
    } else if (json_is_string(v)) {
        /* One line per value: a newline inside a string would shift the others. */
        for (const char *s = json_string_value(v); *s; s++)
            putchar(*s == '\n' || *s == '\r' ? ' ' : *s);
        putchar('\n');
    } else if (json_is_true(v)) {
        puts("1");
    } else if (json_is_false(v)) {
        puts("0");
    } else if (v && (json_is_object(v) || json_is_array(v))) {
        char *s = json_dumps(v, JSON_COMPACT);
        puts(s ? s : "null");
        free(s);
    } else {
        puts("null");
        return 1;
    }
    return 0;
}

static int cmd_get(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    json_error_t err;
    json_t *root = json_load_file(argv[0], 0, &err);
    if (!root) {
        fprintf(stderr, "bench_hist: %s:%d:%d: %s\n", argv[0], err.line, err.column, err.text);
        return 2;
    }
    int status = 0;
    for (int i = 1; i < argc; i++)
        status |= print_value(lookup(root, argv[i]));
    json_decref(root);
    return status;
}

/* ---- exec ------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User + system CPU seconds of pid from /proc/pid/stat, or -1. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name is in parentheses and may hold spaces: count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* Fields after the name start at 3 (state); utime is 14, stime 15. */
    unsigned long long utime = 0, stime = 0;
    int field = 2;
    for (char *save = NULL, *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}

static volatile sig_atomic_t child_pid;

/* A signal another process sent to bench_hist alone is passed on; one the terminal sent to the
 * whole foreground group (Ctrl-C) has reached the command already, and a second copy would turn
 * its clean stop into an abrupt one. */
static void forward_signal(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    if (child_pid > 0 && (si == NULL || si->si_code == SI_USER || si->si_code == SI_QUEUE))
        kill((pid_t)child_pid, sig);
}

static int cmd_exec(int argc, char **argv)
{
    pid_t watch = 0;
    int i = 0;
    if (i < argc && strcmp(argv[i], "--watch") == 0) {
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        char *end;
        long v = strtol(argv[i + 1], &end, 10);
        if (end == argv[i + 1] || *end || v <= 0) {
            fprintf(stderr, "bench_hist: --watch needs a process id: %s\n", argv[i + 1]);
            return 2;
        }
        watch = (pid_t)v;
        i += 2;
    }
    if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0) {
        usage(stderr);
        return 2;
    }
    const char *outfile = argv[i];
    char **cmd = argv + i + 2;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = forward_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    double watch0 = watch ? proc_cpu_s(watch) : -1;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench_hist: fork: %s\n", strerror(errno));
        return 3;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execvp(cmd[0], cmd);
        fprintf(stderr, "bench_hist: %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    child_pid = pid;

    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t r;
    do {
        r = wait4(pid, &status, 0, &ru);
    } while (r < 0 && errno == EINTR);
    double elapsed = now_s() - t0;
    double watch1 = watch ? proc_cpu_s(watch) : -1;
    child_pid = 0;
    if (r < 0) {
        fprintf(stderr, "bench_hist: wait4: %s\n", strerror(errno));
        return 3;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
             : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;

    lb_atomic a;
    if (lb_atomic_open(&a, outfile) != 0) {
        fprintf(stderr, "bench_hist: cannot write %s: %s\n", outfile, strerror(errno));
        return code ? code : 3;
    }
    FILE *f = a.f;
    fprintf(f, "exit=%d\n", code);
    fprintf(f, "elapsed_s=%.6f\n", elapsed);
    fprintf(f, "user_s=%.6f\n", (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6);
    fprintf(f, "sys_s=%.6f\n", (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    fprintf(f, "maxrss_kb=%ld\n", (long)ru.ru_maxrss);
    if (watch0 >= 0 && watch1 >= 0)
        fprintf(f, "watch_cpu_s=%.6f\n", watch1 - watch0);
    else
        fprintf(f, "watch_cpu_s=null\n");
    if (lb_atomic_commit(&a, true) != 0) {
        fprintf(stderr, "bench_hist: cannot write %s: %s\n", outfile, strerror(errno));
        return code ? code : 3;
    }
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cmd_hist(0, NULL);
    const char *cmd = argv[1];
    if (strcmp(cmd, "hist") == 0)
        return cmd_hist(argc - 2, argv + 2);
    if (strcmp(cmd, "get") == 0)
        return cmd_get(argc - 2, argv + 2);
    if (strcmp(cmd, "exec") == 0)
        return cmd_exec(argc - 2, argv + 2);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
