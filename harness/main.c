/* main.c -- lockbench's command line: parse the flags, dispatch to run | validate | plot | gate.
 * Exit codes: 0 success, 1 an expectation failed or the gate found a regression, 2 bad input or
 * usage, 3 environment (a Redis server could not be started or reached, stdout could not be
 * written). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "dlock.h"
#include "calibrate.h"
#include "explore.h"
#include "gate.h"
#include "plot.h"
#include "run.h"

static const char usage_text[] =
    "usage: lockbench run SCENARIO.json... [--out DIR [--force]] [--redis URL]... [--repeat N]\n"
    "                     [--seed N] [--driver auto|threads|loop|sim] [--resource URL]\n"
    "                     [--calibration FILE] [--set PATH=VALUE]... [--no-plot] [--quiet]\n"
    "       lockbench explore SCENARIO.json --seeds N [--from S] [--jobs J] [--out DIR [--force]]\n"
    "                         [--all] [--confirm K] [--set PATH=VALUE]... [--calibration FILE]\n"
    "       lockbench calibrate [--redis URL] [--out FILE]\n"
    "       lockbench validate SCENARIO.json...\n"
    "       lockbench plot RESULT_DIR [--format png|svg] [--plot-preview]\n"
    "       lockbench gate BASELINE CURRENT [--threshold METRIC=PCT]... [--normalize]\n"
    "                      [--paired] [--alpha A] [--markdown FILE] [--json FILE]\n"
    "                      [--benchmark-json FILE] [--benchmark-json-bigger FILE]\n"
    "       lockbench --help | --version\n"
    "\n"
    "run       replays each scenario against managed redis-server processes (or --redis URLs),\n"
    "          writes results/<name>/<timestamp>/ (or --out DIR, which must be empty unless\n"
    "          --force) and checks the scenario's expectations\n"
    "validate  loads and checks scenarios without running them\n"
    "explore   searches a scenario's seeds in the simulator for one that fails its expectations,\n"
    "          then replays, resolves and shrinks the first failure\n"
    "calibrate measures the simulator's model on this machine against a real redis-server\n"
    "plot      redraws the charts of a results folder with gnuplot\n"
    "gate      compares two results (folders or summary.json files) for regressions\n"
    "\n"
    "exit codes: 0 ok, 1 expectation failed or regression, 2 bad input, 3 environment\n";

static int usage(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "lockbench: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    fputs(usage_text, stderr);
    return LB_EXIT_USAGE;
}

static bool parse_count(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

typedef struct cli {
    lb_run_options o;
    const char *redis[LB_SCENARIO_MAX_SERVERS];
    lb_override sets[258];
    char seed_arg[32];
    const char *driver;
    lb_sim calibration;
} cli;

/* The flags of run and validate. Returns -1 on success, else the exit code. */
static int parse_run_flags(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},   {"redis", required_argument, NULL, 'r'},
        {"repeat", required_argument, NULL, 'n'}, {"seed", required_argument, NULL, 's'},
        {"resource", required_argument, NULL, 'R'}, {"set", required_argument, NULL, 'S'},
        {"no-plot", no_argument, NULL, 'P'},     {"quiet", no_argument, NULL, 'q'},
        {"force", no_argument, NULL, 'F'},       {"driver", required_argument, NULL, 'D'},
        {"calibration", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    long v;
    int ch;
    bool seeded = false;
    c->o = (lb_run_options){.repeat = 1, .plot_format = "png", .redis = c->redis, .sets = c->sets};
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': c->o.out = optarg; break;
        case 'R': c->o.resource = optarg; break;
        case 'P': c->o.no_plot = true; break;
        case 'F': c->o.force = true; break;
        case 'q': c->o.quiet = true; break;
        case 'D': c->driver = optarg; break;
        case 'C': {
            char err[600];
            if (lb_calibration_load(optarg, &c->calibration, err, sizeof err) < 0) {
                fprintf(stderr, "lockbench: --calibration %s\n", err);
                return LB_EXIT_USAGE;
            }
            c->o.calibration = &c->calibration;
            break;
        }
        case 'r':
            if (c->o.nredis == LB_SCENARIO_MAX_SERVERS)
                return usage("at most 9 --redis URLs", NULL);
            c->redis[c->o.nredis++] = optarg;
            break;
        case 'n':
            if (!parse_count(optarg, 1, 1000, &v))
                return usage("--repeat: expected a number from 1 to 1000, got '%s'", optarg);
            c->o.repeat = (int)v;
            break;
        case 's':
            if (!parse_count(optarg, 0, 0x7fffffffL, &v))
                return usage("--seed: expected a non-negative number, got '%s'", optarg);
            snprintf(c->seed_arg, sizeof c->seed_arg, "%ld", v);
            seeded = true;
            break;
        case 'S':
            if (c->o.nsets == 255 || !lb_override_from_arg(optarg, &c->sets[c->o.nsets]))
                return usage("--set: expected PATH=VALUE, got '%s'", optarg);
            c->o.nsets++;
            break;
        default:
            return usage(NULL, NULL);
        }
    }
    if (seeded)  /* --seed N is --set seed=N, applied last */
        c->sets[c->o.nsets++] = (lb_override){.path = "seed", .value = c->seed_arg};
    if (c->driver)  /* --driver NAME is --set driver=NAME, applied last (validation names it) */
        c->sets[c->o.nsets++] = (lb_override){.path = "driver", .value = c->driver};
    if (optind >= argc)
        return usage("%s: no scenario file given", argv[0]);
    return -1;
}

static int cmd_run(int argc, char **argv, bool validate_only)
{
    static cli c;
    int rc = parse_run_flags(&c, argc, argv);
    if (rc >= 0)
        return rc;
    size_t n = (size_t)(argc - optind);
    if (validate_only)
        return lb_validate_scenarios(argv + optind, n, &c.o);
    return lb_run_scenarios(argv + optind, n, &c.o);
}

static int cmd_plot(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"plot-preview", no_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "png";
    bool preview = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'f' && (strcmp(optarg, "png") == 0 || strcmp(optarg, "svg") == 0))
            format = optarg;
        else if (ch == 'f')
            return usage("--format: expected png or svg, got '%s'", optarg);
        else if (ch == 'p')
            preview = true;
        else
            return usage(NULL, NULL);
    }
    if (optind != argc - 1)
        return usage("plot: expected one results folder", NULL);
    return lb_plot_command(argv[optind], format, preview);
}

/* Each client holds two or three connections and, on a long run, its log's file: a thousand
 * clients need more descriptors than the usual soft limit of 1024. The soft limit goes up to the
 * hard one (at most 65536), as redis-server does for itself. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* What a command printed may never have reached stdout (a full disk, /dev/full, a reader that
 * went away): stdio says so only on a flush, and exit's own flush would swallow it. Exit 0 over
 * a lost table or verdict would tell a script it has output it does not have. Returns rc, or
 * LB_EXIT_ENV in place of success. */
static int close_stdout(int rc)
{
    bool failed = ferror(stdout) != 0;
    errno = 0;
    if (fflush(stdout) != 0)
        failed = true;
    int e = errno;
    /* a closed descriptor with nothing to flush is no lost output: `>&-` with --quiet */
    if (fclose(stdout) != 0 && !failed && errno != EBADF) {
        failed = true;
        e = errno;
    }
    if (!failed)
        return rc;
    if (e)   /* unknown when an earlier flush failed and dropped what it held */
        fprintf(stderr, "lockbench: cannot write to standard output: %s\n", strerror(e));
    else
        fprintf(stderr, "lockbench: cannot write to standard output\n");
    return rc == LB_EXIT_OK ? LB_EXIT_ENV : rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2)
        return usage("no command given", NULL);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return LB_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("lockbench %s (libdlock %s)\n", DLOCK_VERSION, DLOCK_VERSION);
        return LB_EXIT_OK;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1, false);
    if (strcmp(cmd, "validate") == 0)
        return cmd_run(argc - 1, argv + 1, true);
    if (strcmp(cmd, "plot") == 0)
        return cmd_plot(argc - 1, argv + 1);
    if (strcmp(cmd, "gate") == 0)
        return lb_gate_main(argc - 1, argv + 1);
    if (strcmp(cmd, "explore") == 0)
        return lb_explore_main(argc - 1, argv + 1);
    if (strcmp(cmd, "calibrate") == 0)
        return lb_calibrate_main(argc - 1, argv + 1);
    return usage("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
    raise_fd_limit();
    return close_stdout(dispatch(argc, argv));
}
