/* main.c -- lockbench-mpi: lockbench's run command with its clients spread over the ranks of an
 * MPI job (mpirun, srun). The command line is lockbench's, plus --bind ADDR.
 *
 *   mpirun -np K lockbench-mpi run SCENARIO.json... [--redis URL]... [--bind ADDR] [flags]
 *
 * Before anything runs, every rank checks that it has the same binary, arguments and files as
 * rank 0 (checksums); a difference is a clear error on rank 0 and every rank exits with it: 2 for
 * arguments or files, 3 for the binary. Then lockbench's pipeline runs on every rank with the
 * ranks' collectives set (ranks.h): rank 0 starts the managed servers -- on ADDR, default
 * 127.0.0.1, with a password drawn here and never printed -- and writes the results; every rank
 * runs its share of the clients. Every rank exits with the worst code of all. A rank that dies
 * takes the job down (MPI's default error handling); rank 0's summary.json then still says
 * "complete": false, as it did from before the first client started.
 *
 *   mpirun -np K lockbench-mpi explore SCENARIO.json --seeds N [explore flags]
 *
 * explore splits the seeds over the ranks (rank r searches seeds S+r, S+r+K, ..., each on its
 * --jobs workers); rank 0 gathers the verdicts and alone replays, shrinks and writes the first
 * failure (explore.c). Other commands (validate, plot, gate, --help, ...) run once, on rank 0. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "mpi_ranks.h"
#include "servers.h"

#define MAX_FILES 16
#define EXIT_USAGE 2
#define EXIT_ENV 3

/* FNV-1a, 64 bits: enough to tell two copies apart, not a defence against anyone. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t hash_file(const char *path)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char buf[65536];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;)
        h = fnv(h, buf, n);
    fclose(f);
    return h;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* What must match across ranks: [0] the binary, [1] the arguments, [2...] each argument that
 * names a file (the scenarios, a calibration), in order. */
typedef struct sums {
    uint64_t h[2 + MAX_FILES];
    const char *file[MAX_FILES];
} sums;

static void checksums(int argc, char **argv, sums *s)
{
    memset(s, 0, sizeof *s);
    s->h[0] = hash_file("/proc/self/exe");
    s->h[1] = 0xcbf29ce484222325ULL;
    size_t nf = 0;
    for (int i = 1; i < argc; i++) {
        s->h[1] = fnv(s->h[1], argv[i], strlen(argv[i]) + 1);
        if (nf < MAX_FILES && is_file(argv[i])) {
            s->file[nf] = argv[i];
            s->h[2 + nf++] = hash_file(argv[i]);
        }
    }
}

/* 0 when every rank matches rank 0; else the exit code, with rank 0 saying what differs. */
static int check_same(int rank, int nranks, const char *const *hosts, int argc, char **argv)
{
    sums mine;
    checksums(argc, argv, &mine);
    enum { N = 2 + MAX_FILES };
    uint64_t *all = calloc((size_t)nranks * N, sizeof *all);
    int code = all ? 0 : EXIT_ENV;
    MPI_Allreduce(MPI_IN_PLACE, &code, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (code)
        return code;
    MPI_Allgather(mine.h, N, MPI_UINT64_T, all, N, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < nranks && code == 0; r++) {
        const uint64_t *h = all + (size_t)r * N;
        const char *what = NULL;
        if (h[0] != all[0]) {
            what = "lockbench-mpi binary";
            code = EXIT_ENV;
        } else if (h[1] != all[1]) {
            what = "command line";
            code = EXIT_USAGE;
        }
        for (int k = 0; k < MAX_FILES && !code; k++) {
            if (h[2 + k] != all[2 + k]) {
                what = mine.file[k];
                code = EXIT_USAGE;
            }
        }
        if (code && rank == 0)
            fprintf(stderr, "lockbench-mpi: rank %d (on %s) has a different %s%s than rank 0 "
                            "(on %s): every rank must run the same build on the same files\n",
                    r, hosts[r], what, code == EXIT_USAGE && h[1] == all[1] ? " (its contents)" : "",
                    hosts[0]);
    }
    free(all);
    return code;
}

/* --bind ADDR (or --bind=ADDR) taken out of argv. Returns the new argc, or -1 when malformed. */
static int take_bind(int argc, char **argv, const char **bind)
{
    int out = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--bind") == 0) {
            if (i + 1 >= argc)
                return -1;
            *bind = argv[++i];
        } else if (strncmp(argv[i], "--bind=", 7) == 0) {
            *bind = argv[i] + 7;
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    return out;
}

static bool given_redis(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--redis") == 0 || strncmp(argv[i], "--redis=", 8) == 0)
            return true;
    return false;
}

/* The managed servers' password: 128 random bits in hex, in memory only (rank 0 hands the URLs
 * to the other ranks over MPI). */
static int listen_with_password(const char *bind)
{
    unsigned char raw[16];
    char hex[2 * sizeof raw + 1];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        fprintf(stderr, "lockbench-mpi: cannot draw the servers' password: getrandom failed\n");
        return EXIT_ENV;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    lb_servers_listen(bind, hex);
    return 0;
}

static bool wildcard(const char *addr)
{
    return strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0 || strcmp(addr, "*") == 0 ||
           addr[0] == '\0';
}

static int run(int rank, int nranks, const char *const *hosts, int argc, char **argv,
               const char *bind)
{
    static lb_ranks d;
    int rc = check_same(rank, nranks, hosts, argc, argv);
    if (rc)
        return rc;
    bool servers = strcmp(argv[1], "run") == 0;   /* explore's search needs none */
    if (servers && rank == 0 && !given_redis(argc, argv))
        rc = listen_with_password(bind);
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rc)
        return rc;
    lb_mpi_ranks_init(&d, rank, nranks, hosts);
    lb_ranks_set(&d);
    return lb_cli_main(argc, argv);
}

int main(int argc, char **argv)
{
    int provided, rank, nranks, len;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    char me[MPI_MAX_PROCESSOR_NAME] = "";
    char *names = calloc((size_t)nranks, MPI_MAX_PROCESSOR_NAME);
    const char **hosts = calloc((size_t)nranks, sizeof *hosts);
    if (!names || !hosts)
        MPI_Abort(MPI_COMM_WORLD, EXIT_ENV);
    MPI_Get_processor_name(me, &len);
    MPI_Allgather(me, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                  MPI_COMM_WORLD);
    for (int r = 0; r < nranks; r++)
        hosts[r] = names + (size_t)r * MPI_MAX_PROCESSOR_NAME;

    const char *bind = "127.0.0.1";
    int rc = 0;
    argc = take_bind(argc, argv, &bind);
    if (argc < 0 || wildcard(bind)) {
        if (rank == 0)
            fprintf(stderr, "lockbench-mpi: --bind: expected the address the other ranks reach "
                            "rank 0's servers on (not a wildcard)\n");
        rc = EXIT_USAGE;
    } else if (argc > 1 && (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "explore") == 0)) {
        rc = run(rank, nranks, hosts, argc, argv, bind);
    } else if (rank == 0) {  /* validate, plot, gate, --help...: once */
        rc = lb_cli_main(argc, argv);
        if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
            fputs("\nlockbench-mpi: mpirun -np K lockbench-mpi run SCENARIO... [--bind ADDR]: the "
                  "clients dealt over the K ranks;\nrank 0 starts the servers on ADDR (default "
                  "127.0.0.1) and writes the results\nmpirun -np K lockbench-mpi explore SCENARIO --seeds N ...: "
                  "the seeds split over the K ranks\n", stderr);
    }
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    free(hosts);
    free(names);
    return rc;
}
