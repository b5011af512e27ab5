/* plot.c -- runs the chart scripts of plot/ over a results folder.
 *
 * gnuplot is started directly (fork/exec, no shell), once per chart, with the folder, the
 * output format and a title passed as gnuplot variables. The scripts are found next to the
 * binary (build/lockbench -> plot/), in the installed share folder, or in $LOCKBENCH_PLOT_DIR.
 * A machine without gnuplot still gets its results: the charts are skipped with a message. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic.h"
#include "plot.h"
#include "run.h"

static const char *const variant_charts[] = {"latency", "fairness", "timeline", "holders"};
static const char *const compare_charts[] = {"compare-latency", "compare-bars", "compare-work"};

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder holding the chart scripts. */
static bool script_dir(char *out, size_t len)
{
    const char *env = getenv("LOCKBENCH_PLOT_DIR");
    char exe[PATH_MAX];
    if (env && is_dir(env)) {
        snprintf(out, len, "%s", env);
        return true;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        const char *candidates[] = {"/../plot", "/../../plot", "/../share/lockbench/plot"};
        for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
            snprintf(out, len, "%s%s", exe, candidates[i]);
            if (is_dir(out))
                return true;
        }
    }
    snprintf(out, len, "plot");
    return is_dir(out);
}

static bool have_gnuplot(void)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    for (const char *p = path; p && *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/gnuplot", (int)n, p);
        if (access(buf, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/* Appends name='value' to a gnuplot command line, doubling quotes as gnuplot wants. */
static void add_var(char *cmd, size_t len, const char *name, const char *value)
{
    size_t n = strlen(cmd);
    n += (size_t)snprintf(cmd + n, len > n ? len - n : 0, "%s='", name);
    for (const char *v = value; *v && n + 3 < len; v++) {
        if (*v == '\'')
            cmd[n++] = '\'';
        cmd[n++] = *v;
    }
    snprintf(cmd + n, len > n ? len - n : 0, "'; ");
}

/* Runs one script; 0 on success. Its output goes to the terminal only for previews. Started
 * by posix_spawn: nothing of ours runs in the child before gnuplot does, whatever other
 * threads held when it was made. */
static int gnuplot(const char *scripts, const char *chart, const char *vars, bool preview)
{
    char script[PATH_MAX + 64];
    snprintf(script, sizeof script, "%s/%s.gp", scripts, chart);
    char *argv[] = {"gnuplot", "-e", (char *)vars, script, NULL};
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    int rc = preview ? 0 : posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
                                                            O_WRONLY, 0);
    fflush(stdout);  /* ours first, then gnuplot's */
    fflush(stderr);
    pid_t pid;
    if (rc == 0)
        rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

typedef struct plot_job {
    char scripts[PATH_MAX];
    const char *format;
    bool preview;
    int drawn, failed;
    char first_failure[256];
} plot_job;

/* One chart. gnuplot draws into atomic.h's temporary (the file it will be renamed from), so a
 * failed gnuplot leaves no half chart and a chart's name that is a link stays a link. */
static void chart(plot_job *j, const char *name, const char *dir, const char *title,
                  const char *variants)
{
    char vars[8192] = "", out[PATH_MAX + 64];
    lb_atomic a = {0};
    snprintf(out, sizeof out, "%s/%s.%s", dir, name, j->format);
    bool ok = j->preview || lb_atomic_open(&a, out) == 0;
    add_var(vars, sizeof vars, "dir", dir);
    add_var(vars, sizeof vars, "fmt", j->preview ? "dumb" : j->format);
    add_var(vars, sizeof vars, "title", title);
    add_var(vars, sizeof vars, "out", j->preview ? "-" : a.tmp ? a.tmp : a.path ? a.path : "");
    if (variants)
        add_var(vars, sizeof vars, "variants", variants);
    ok = ok && gnuplot(j->scripts, name, vars, j->preview) == 0;
    if (a.f)
        ok = lb_atomic_commit(&a, ok) == 0;
    if (ok) {
        j->drawn++;
        return;
    }
    if (j->failed++ == 0)
        snprintf(j->first_failure, sizeof j->first_failure, "%s/%s", dir, name);
}

static void variant_folder(plot_job *j, const char *dir, const char *title)
{
    for (size_t i = 0; i < sizeof variant_charts / sizeof *variant_charts; i++)
        chart(j, variant_charts[i], dir, title, NULL);
}

/* Every chart of a results folder. */
static int draw_all(plot_job *j, const char *dir, const char *scenario,
                    const char *const *variants, size_t n, int repeats, char *msg, size_t msglen)
{
    char vdir[PATH_MAX], title[512], names[4096] = "";
    if (!have_gnuplot()) {
        snprintf(msg, msglen, "plots skipped: gnuplot is not installed (make deps installs it)");
        return 1;
    }
    if (!script_dir(j->scripts, sizeof j->scripts)) {
        snprintf(msg, msglen, "plots skipped: the plot/ scripts were not found "
                              "(set LOCKBENCH_PLOT_DIR)");
        return 1;
    }
    for (size_t v = 0; v < n; v++) {
        snprintf(title, sizeof title, "%s / %s", scenario, variants[v]);
        for (int r = 0; r < (repeats > 1 ? repeats : 1); r++) {
            if (repeats > 1)
                snprintf(vdir, sizeof vdir, "%s/%s/repeat-%d", dir, variants[v], r + 1);
            else
                snprintf(vdir, sizeof vdir, "%s/%s", dir, variants[v]);
            if (is_dir(vdir))  /* an interrupted run has fewer repeats than it asked for */
                variant_folder(j, vdir, title);
        }
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", v ? " " : "", variants[v]);
    }
    if (n > 1 && repeats <= 1) {
        for (size_t i = 0; i < sizeof compare_charts / sizeof *compare_charts; i++)
            chart(j, compare_charts[i], dir, scenario, names);
    }
    if (j->failed) {
        snprintf(msg, msglen, "plots: %d drawn, %d failed (first: %s)", j->drawn, j->failed,
                 j->first_failure);
        return -1;
    }
    snprintf(msg, msglen, "plots: %d charts drawn in %s", j->drawn, dir);
    return 0;
}

int lb_plot_results(const char *dir, const char *scenario, const char *const *variants, size_t n,
                    int repeats, const char *format, char *msg, size_t msglen)
{
    plot_job j = {.format = format ? format : "png"};
    return draw_all(&j, dir, scenario, variants, n, repeats, msg, msglen);
}

/* The variants of a results folder, from its summary.json. */
int lb_plot_command(const char *dir, const char *format, bool preview)
{
    char path[PATH_MAX], msg[512];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "lockbench plot: %s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
        return LB_EXIT_USAGE;
    }
    json_t *vs = json_object_get(root, "variants");
    const char *scenario = json_string_value(json_object_get(root, "scenario"));
    size_t n = json_array_size(vs);
    const char **names = calloc(n + 1, sizeof *names);
    int repeats = 0, rc = LB_EXIT_USAGE;
    for (size_t i = 0; names && i < n; i++) {
        json_t *v = json_array_get(vs, i);
        names[i] = json_string_value(json_object_get(v, "name"));
        json_t *tp = json_object_get(json_object_get(v, "repeats"), "throughput_per_s");
        if (json_array_size(tp) > 1)
            repeats = (int)json_array_size(tp);
        if (!names[i])
            goto bad;
    }
    if (!scenario || n == 0)
        goto bad;
    plot_job j = {.format = format, .preview = preview};
    int drawn = draw_all(&j, dir, scenario, names, n, repeats, msg, sizeof msg);
    fprintf(stderr, "%s\n", msg);
    rc = drawn < 0 ? LB_EXIT_FAILED : drawn > 0 ? LB_EXIT_ENV : LB_EXIT_OK;
    goto out;
bad:
    fprintf(stderr, "lockbench plot: %s: variants[].name or scenario missing\n", path);
out:
    free(names);
    json_decref(root);
    return rc;
}
