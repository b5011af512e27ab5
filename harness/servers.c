/* servers.c -- managed redis-server processes.
 *
 * lockbench's embedded servers and the fixture of the integration tests. Each server runs in a
 * temporary directory of its own (config, log, AOF files) and listens on 127.0.0.1 only (or,
 * for lockbench-mpi, lb_servers_listen's address and password), on a port the kernel reported
 * free. Ownership rules that keep stray servers from outliving us:
 *
 *   - the child asks for SIGKILL when its parent thread dies (PR_SET_PDEATHSIG), so a crash or
 *     SIGKILL of lockbench takes the servers down with it;
 *   - a process-wide registry of live servers is walked at exit and on SIGINT/SIGTERM. The walk
 *     only reads atomics and fixed-size strings, and only makes async-signal-safe calls (kill,
 *     waitpid, openat, getdents64, unlinkat), so the same code serves the signal handler, the
 *     atexit handler and lb_server_stop;
 *   - the child gets its own process group, so the terminal's Ctrl-C reaches lockbench only and
 *     lockbench decides when its servers go;
 *   - nothing runs after a SIGKILL, so each directory names its owner (pid, process start time,
 *     boot id, pid namespace) in a file, and every start removes the directories whose owner is
 *     gone (sweep_stale_dirs).
 *
 * Waits (readiness, graceful stop, SIGSTOP taking effect) poll to a CLOCK_MONOTONIC deadline. */
#include "servers.h"

#include <hiredis/hiredis.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LB_MAX_SERVERS       64
#define LB_DIR_MAX           512
#define LB_START_TIMEOUT_MS  5000
#define LB_STOP_GRACE_MS     2000
#define LB_PAUSE_TIMEOUT_MS  2000
#define LB_POLL_MS           5
#define LB_PORT_ATTEMPTS     5
#define LB_RM_MAX_DEPTH      4
#define LB_LOG_TAIL_LINES    5
#define LB_DIR_PREFIX        "lockbench-redis-"
#define LB_OWNER_FILE        "lockbench-owner"
#define LB_BOOT_ID_LEN       48   /* a UUID is 36; parse_owner reads at most 47 */

struct lb_server {
    pid_t pid;                  /* 0 while killed */
    int port;
    int slot;                   /* index in the registry */
    bool paused;
    lb_persistence persistence;
    char dir[LB_DIR_MAX];
    char exe[LB_DIR_MAX];       /* resolved once, so a restart runs the same binary */
    char url[LB_SERVER_URL_MAX];
    char *sentinel_conf;        /* a sentinel (redis-server --sentinel): its own lines */
};

/* What the cleanup walk needs, readable from a signal handler without taking the mutex: the
 * pid and the directory. dir is written before `used` is set (release) and read after `used`
 * is seen (acquire). */
typedef struct {
    atomic_int pid;
    atomic_bool used;
    lb_server *owner;           /* keeps servers alive at exit reachable for leak checkers */
    char dir[LB_DIR_MAX];
} lb_slot;

/* The one piece of global mutable state: the registry of live servers. */
static struct {
    pthread_mutex_t lock;
    bool installed;
    pid_t owner_pid;            /* a forked child that calls exit() must not kill our servers */
    struct sigaction old_int;
    struct sigaction old_term;
    lb_slot slots[LB_MAX_SERVERS];
} registry = { .lock = PTHREAD_MUTEX_INITIALIZER };

typedef enum { READY_OK, READY_EXITED, READY_TIMEOUT } lb_ready;

/* ---- time ---------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lb_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

/* ---- directory removal (async-signal-safe) ------------------------------------------------- */

/* The kernel's record layout for getdents64; glibc only wraps it from 2.30 on. */
struct lb_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static bool is_dot_entry(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void rm_entry_at(int parent, const char *name, int depth);

/* Removes everything inside the open directory fd. Returns the number of entries seen, so the
 * caller can rescan: deleting while reading may make some file systems skip an entry. */
static int rm_contents(int fd, int depth)
{
    char buf[4096] __attribute__((aligned(8)));
    int seen = 0;
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            struct lb_dirent64 *d = (struct lb_dirent64 *)(buf + off);
            off += d->d_reclen;
            if (is_dot_entry(d->d_name))
                continue;
            seen++;
            if (d->d_type == DT_DIR)
                rm_entry_at(fd, d->d_name, depth + 1);
            else if (unlinkat(fd, d->d_name, 0) != 0 && errno == EISDIR)
                rm_entry_at(fd, d->d_name, depth + 1);
        }
    }
    return seen;
}

static void rm_entry_at(int parent, const char *name, int depth)
{
    if (depth > LB_RM_MAX_DEPTH)
        return;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        unlinkat(parent, name, 0);
        return;
    }
    for (int pass = 0; pass < 3 && rm_contents(fd, depth) > 0; pass++)
        lseek(fd, 0, SEEK_SET);
    close(fd);
    unlinkat(parent, name, AT_REMOVEDIR);
}

static void rm_tree(const char *path)
{
    if (path[0] != '\0')
        rm_entry_at(AT_FDCWD, path, 0);
}

/* ---- registry and cleanup ------------------------------------------------------------------ */

/* Kills and reaps every live server and removes its directory. Lock-free and
 * async-signal-safe: it runs in signal handlers and at exit, when another thread may hold the
 * mutex. The exchange makes sure one pid is killed and reaped by one caller only. */
static void cleanup_all(void)
{
    if (getpid() != registry.owner_pid)
        return;
    for (int i = 0; i < LB_MAX_SERVERS; i++) {
        lb_slot *sl = &registry.slots[i];
        if (!atomic_load_explicit(&sl->used, memory_order_acquire))
            continue;
        pid_t pid = atomic_exchange(&sl->pid, 0);
        if (pid > 0) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        rm_tree(sl->dir);
    }
}

static void on_exit_cleanup(void)
{
    cleanup_all();
}

/* Kills the servers, then hands the signal on: to the handler that was there before us, or
 * back to the default action so the process still dies of the signal it got. */
static void on_fatal_signal(int sig, siginfo_t *info, void *uctx)
{
    int saved = errno;
    cleanup_all();
    const struct sigaction *old = sig == SIGINT ? &registry.old_int : &registry.old_term;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, info, uctx);
    } else if (old->sa_handler == SIG_DFL) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        raise(sig);             /* blocked while we run; delivered when we return */
    } else if (old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    }
    errno = saved;
}

/* Installs our handler for sig unless the signal is ignored (nohup): then it stays ignored. */
static void install_signal(int sig, struct sigaction *old)
{
    struct sigaction sa = { .sa_sigaction = on_fatal_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, NULL, old) == 0 && old->sa_handler != SIG_IGN)
        sigaction(sig, &sa, NULL);
}

/* Called with the registry mutex held. */
static int install_cleanup_locked(char *err, size_t errlen)
{
    if (registry.installed)
        return 0;
    registry.owner_pid = getpid();
    if (atexit(on_exit_cleanup) != 0) {
        snprintf(err, errlen, "cannot register the exit handler for managed servers");
        return -1;
    }
    install_signal(SIGINT, &registry.old_int);
    install_signal(SIGTERM, &registry.old_term);
    registry.installed = true;
    return 0;
}

static int registry_add(lb_server *s, char *err, size_t errlen)
{
    int rc = -1;
    pthread_mutex_lock(&registry.lock);
    if (install_cleanup_locked(err, errlen) == 0) {
        for (int i = 0; i < LB_MAX_SERVERS && rc != 0; i++) {
            lb_slot *sl = &registry.slots[i];
            if (atomic_load(&sl->used))
                continue;
            memcpy(sl->dir, s->dir, sizeof sl->dir);
            sl->owner = s;
            atomic_store(&sl->pid, 0);
            atomic_store_explicit(&sl->used, true, memory_order_release);
            s->slot = i;
            rc = 0;
        }
        if (rc != 0)
            snprintf(err, errlen, "too many managed redis servers (at most %d)", LB_MAX_SERVERS);
    }
    pthread_mutex_unlock(&registry.lock);
    return rc;
}

static void registry_remove(lb_server *s)
{
    pthread_mutex_lock(&registry.lock);
    lb_slot *sl = &registry.slots[s->slot];
    atomic_store(&sl->pid, 0);
    atomic_store_explicit(&sl->used, false, memory_order_release);
    sl->owner = NULL;
    pthread_mutex_unlock(&registry.lock);
}

static void slot_set_pid(const lb_server *s, pid_t pid)
{
    atomic_store(&registry.slots[s->slot].pid, pid);
}

/* ---- process helpers ----------------------------------------------------------------------- */

/* The slot forgets the pid before the reap, so the cleanup walk never signals a pid the kernel
 * may already have handed to another process. */
static void reap(lb_server *s)
{
    slot_set_pid(s, 0);
    while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
    s->paused = false;
}

/* True once pid has exited (or was already reaped elsewhere); does not reap. */
static bool has_exited(pid_t pid)
{
    siginfo_t info;
    info.si_pid = 0;
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD;
    return info.si_pid != 0;
}

static bool wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!has_exited(pid)) {
        if (now_ms() >= deadline)
            return false;
        lb_sleep_ms(LB_POLL_MS);
    }
    return true;
}

static void kill_and_reap(lb_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    reap(s);
}

/* ---- files --------------------------------------------------------------------------------- */

static void dir_file(const lb_server *s, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", s->dir, name);
}

static const char *tmp_root(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp == NULL || tmp[0] == '\0' ? "/tmp" : tmp;
}

/* ---- owners of the directories ------------------------------------------------------------- */

/* Who made a directory. A pid alone is not enough: after the owner dies the kernel may give
 * its pid to any process, so the owner is the pid and the start time of that process (field
 * 22 of /proc/PID/stat, ticks since boot), which differs for the new one. A reboot restarts
 * both counters, so the boot id goes with them; and a pid means something only in its pid
 * namespace (a container sharing /tmp sees other pids), so that goes too. */
typedef struct {
    long pid;
    unsigned long long start;
    char boot[LB_BOOT_ID_LEN];
    unsigned long long pidns;
} lb_owner;

typedef enum { OWNER_ALIVE, OWNER_DEAD, OWNER_UNKNOWN } lb_owner_state;

/* Reads a small file whole; -1 with errno set. */
static ssize_t read_small(int dirfd, const char *path, char *buf, size_t len)
{
    int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    int saved = errno;
    close(fd);
    errno = saved;
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* 0 and the start time of pid; -1 with errno (ENOENT: no such process). The command name in
 * field 2 may hold spaces and parentheses, so fields are counted from the last ')'. */
static int proc_start_time(long pid, unsigned long long *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (read_small(AT_FDCWD, path, buf, sizeof buf) < 0)
        return -1;
    const char *p = strrchr(buf, ')');
    /* after ")": state (field 3) ... starttime (field 22) */
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d "
                            "%*d %*d %*d %*d %*d %llu", out) != 1) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int boot_id(char out[LB_BOOT_ID_LEN])
{
    if (read_small(AT_FDCWD, "/proc/sys/kernel/random/boot_id", out, LB_BOOT_ID_LEN) <= 0)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

static int pid_namespace(unsigned long long *out)
{
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) != 0)
        return -1;
    *out = (unsigned long long)st.st_ino;
    return 0;
}

static int owner_self(lb_owner *o)
{
    o->pid = (long)getpid();
    return proc_start_time(o->pid, &o->start) == 0 && boot_id(o->boot) == 0
           && pid_namespace(&o->pidns) == 0 ? 0 : -1;
}

/* The file is written under another name and renamed, so a sweep never reads half of it. No
 * /proc (no owner to record) or a failed write only means this directory is never swept: the
 * server itself does not need the file. */
static void write_owner(const lb_server *s)
{
    lb_owner o;
    char tmp[LB_DIR_MAX + 32], path[LB_DIR_MAX + 32];
    if (owner_self(&o) != 0)
        return;
    dir_file(s, LB_OWNER_FILE ".tmp", tmp, sizeof tmp);
    dir_file(s, LB_OWNER_FILE, path, sizeof path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "pid %ld\nstart %llu\nboot %s\npidns %llu\n", o.pid, o.start, o.boot, o.pidns);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

static int parse_owner(const char *text, lb_owner *o)
{
    int end = 0;
    if (sscanf(text, "pid %ld\nstart %llu\nboot %47s\npidns %llu\n%n", &o->pid, &o->start,
               o->boot, &o->pidns, &end) != 4 || end == 0 || text[end] != '\0' || o->pid <= 0)
        return -1;
    return 0;
}

/* Dead only when that is certain: the machine rebooted since, or no process has the pid, or
 * the one that has it started at another time. A namespace we cannot see into, an unreadable
 * /proc or an unreadable file leave it alone. */
static lb_owner_state owner_state(const lb_owner *o, const lb_owner *self)
{
    unsigned long long start;
    if (strcmp(o->boot, self->boot) != 0)
        return OWNER_DEAD;
    if (o->pidns != self->pidns)
        return OWNER_UNKNOWN;
    if (proc_start_time(o->pid, &start) != 0)
        return errno == ENOENT ? OWNER_DEAD : OWNER_UNKNOWN;
    return start == o->start ? OWNER_ALIVE : OWNER_DEAD;
}

/* Whether the entry `name` of tmp (open as tmpfd) is a directory a dead lockbench left: a real
 * directory (not a symlink), ours, with an owner file that names a dead process. */
static bool is_stale_dir(int tmpfd, const char *name, const lb_owner *self)
{
    char text[256];
    struct stat st;
    lb_owner o;
    int fd = openat(tmpfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool stale = fstat(fd, &st) == 0 && st.st_uid == geteuid()
                 && read_small(fd, LB_OWNER_FILE, text, sizeof text) > 0
                 && parse_owner(text, &o) == 0 && owner_state(&o, self) == OWNER_DEAD;
    close(fd);
    return stale;
}

/* Removes the lockbench-redis-* directories of lockbench processes that died without cleaning
 * up (SIGKILL, a crash, a power cut). Directories without an owner file are left alone: they
 * are not ours, or their owner is between mkdtemp and writing the file. */
static void sweep_stale_dirs(const char *tmp)
{
    lb_owner self;
    if (owner_self(&self) != 0)
        return;
    DIR *d = opendir(tmp);
    if (d == NULL)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, LB_DIR_PREFIX, strlen(LB_DIR_PREFIX)) == 0
            && is_stale_dir(dirfd(d), e->d_name, &self))
            rm_entry_at(dirfd(d), e->d_name, 0);
    closedir(d);
}

static int make_dir(lb_server *s, char *err, size_t errlen)
{
    const char *tmp = tmp_root();
    int n = snprintf(s->dir, sizeof s->dir, "%s/" LB_DIR_PREFIX "XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof s->dir) {
        snprintf(err, errlen, "TMPDIR path too long: %s", tmp);
        s->dir[0] = '\0';
        return -1;
    }
    if (mkdtemp(s->dir) == NULL) {
        snprintf(err, errlen, "mkdtemp %s: %s", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    write_owner(s);
    return 0;
}

static bool is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Resolved in the parent: after fork only async-signal-safe calls are allowed, and execvp's
 * PATH search is not one of them. */
static int find_redis(char *out, size_t outlen, char *err, size_t errlen)
{
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p != '\0';) {
        size_t len = strcspn(p, ":");
        int n = snprintf(out, outlen, "%.*s/redis-server", (int)len, len ? p : ".");
        if (n > 0 && (size_t)n < outlen && is_executable(out))
            return 0;
        p += len + (p[len] == ':');
    }
    snprintf(err, errlen, "redis-server not found in PATH (install the redis-server package)");
    return -1;
}

/* Writes a config-file string: redis reads "..." with backslash escapes. */
static void put_quoted(FILE *f, const char *key, const char *value)
{
    fprintf(f, "%s \"", key);
    for (const char *c = value; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc('\\', f);
        fputc(*c, f);
    }
    fputs("\"\n", f);
}

static void put_persistence(FILE *f, lb_persistence p)
{
    fprintf(f, "appendonly %s\n", p == LB_PERSIST_NONE ? "no" : "yes");
    fprintf(f, "appendfsync %s\n", p == LB_PERSIST_AOF_ALWAYS ? "always" : "everysec");
}

/* The descriptors a server started now may open: ours, which it inherits (at most 65536). */
static int fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 65536)
        return 65536;
    return (int)rl.rlim_cur;
}

/* lb_servers_listen's address and password */
static char listen_addr[64] = "127.0.0.1";
static char listen_pass[64];

void lb_servers_listen(const char *addr, const char *password)
{
    snprintf(listen_addr, sizeof listen_addr, "%s", addr);
    snprintf(listen_pass, sizeof listen_pass, "%s", password ? password : "");
}

static int write_conf(const lb_server *s, char *err, size_t errlen)
{
    char conf[LB_DIR_MAX + 32], log[LB_DIR_MAX + 32];
    dir_file(s, "redis.conf", conf, sizeof conf);
    dir_file(s, "redis.log", log, sizeof log);
    FILE *f = fopen(conf, "w");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", conf, strerror(errno));
        return -1;
    }
    fprintf(f, "port %d\nbind %s\nprotected-mode no\ndaemonize no\n", s->port, listen_addr);
    if (listen_pass[0])
        fprintf(f, "requirepass %s\n", listen_pass);
    put_quoted(f, "dir", s->dir);
    put_quoted(f, "logfile", log);
    fputs("save \"\"\n", f);    /* no RDB snapshots: persistence is only what the AOF says */
    put_persistence(f, s->persistence);
    fputs("enable-debug-command yes\n", f);
    /* A thousand clients connect at once at a run's start: the default backlog of 511 would
     * drop some of their SYNs and their connects time out. The kernel caps it at somaxconn.
     * As many clients as the descriptors the server gets (ours) allow, less redis's own 32. */
    fprintf(f, "tcp-backlog 4096\nmaxclients %d\n", fd_limit() - 32);
    if (s->sentinel_conf)
        fputs(s->sentinel_conf, f);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", conf, strerror(errno));
        return -1;
    }
    return 0;
}

/* The last lines of the server's log, joined with '|', for an error message. */
static void log_tail(const lb_server *s, char *out, size_t outlen)
{
    char path[LB_DIR_MAX + 32], buf[2048];
    dir_file(s, "redis.log", path, sizeof path);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof buf - 1)
        fseek(f, -(long)(sizeof buf - 1), SEEK_END);
    else
        fseek(f, 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    char *start = buf + n;
    int lines = 0;
    while (start > buf && !(start[-1] == '\n' && ++lines == LB_LOG_TAIL_LINES))
        start--;
    for (char *c = start; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = '|';
    snprintf(out, outlen, "%s", start);
}

static int pick_free_port(char *err, size_t errlen)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (port < 0)
        snprintf(err, errlen, "cannot find a free loopback port: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return port;
}

/* ---- spawning ------------------------------------------------------------------------------ */

typedef struct {
    const char *exe;
    char *const *argv;
    const char *log;
    pid_t parent;
    int max_fd;
} lb_spawn_plan;

static void close_inherited_fds(int max_fd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
        return;
#endif
    for (int fd = 3; fd < max_fd; fd++)
        close(fd);
}

/* Runs in the forked child: only async-signal-safe calls until execve. */
static void exec_child(const lb_spawn_plan *p)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != p->parent)
        _exit(127);             /* the parent died before we could ask to follow it */
    setpgid(0, 0);
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);   /* SIG_IGN and blocked masks survive exec */
    int in = open("/dev/null", O_RDONLY);
    int out = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0)
        _exit(127);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    close_inherited_fds(p->max_fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(p->exe, p->argv, environ);
    static const char msg[] = "lockbench: cannot exec redis-server\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}


/* Forks with every signal blocked, so neither our cleanup handler nor anyone else's runs in
 * the child before it resets them, and so a signal in the parent cannot find a pid that is
 * not yet in the registry. */
static int spawn(lb_server *s, char *err, size_t errlen)
{
    char conf[LB_DIR_MAX + 32], log[LB_DIR_MAX + 32];
    dir_file(s, "redis.conf", conf, sizeof conf);
    dir_file(s, "redis.log", log, sizeof log);
    char sentinel[] = "--sentinel";
    char *argv[] = { s->exe, conf, s->sentinel_conf ? sentinel : NULL, NULL };
    lb_spawn_plan plan = { s->exe, argv, log, getpid(), fd_limit() };
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        exec_child(&plan);
    int saved = errno;
    if (pid > 0) {
        s->pid = pid;
        s->paused = false;
        slot_set_pid(s, pid);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(saved));
        return -1;
    }
    return 0;
}

/* ---- readiness ----------------------------------------------------------------------------- */

static bool reply_is_status(const redisReply *r, const char *want)
{
    return r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, want) == 0;
}

/* True when INFO names our child: a PONG from another process that won a port race must not
 * count as our server being ready. */
static bool reply_names_pid(const redisReply *r, pid_t pid)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return false;
    const char *p = strstr(r->str, "process_id:");
    return p != NULL && strtol(p + strlen("process_id:"), NULL, 10) == (long)pid;
}

static bool ping_once(int port, pid_t pid, int timeout_ms)
{
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout(listen_addr, port, tv);
    bool ok = false;
    if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        redisReply *r = listen_pass[0] ? redisCommand(c, "AUTH %s", listen_pass) : NULL;
        freeReplyObject(r);
        r = redisCommand(c, "PING");
        ok = reply_is_status(r, "PONG");
        freeReplyObject(r);
        if (ok) {
            r = redisCommand(c, "INFO server");
            ok = reply_names_pid(r, pid);
            freeReplyObject(r);
        }
    }
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* hiredis 0.14 writes with write(2): a server that closes the socket under us must not raise
 * SIGPIPE in the harness. Block it and swallow one that we caused. */
static bool ping(int port, pid_t pid, int timeout_ms)
{
    sigset_t sigpipe, old, pending;
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    bool ok = ping_once(port, pid, timeout_ms);
    struct timespec zero = { 0, 0 };
    sigpending(&pending);
    if (!was_pending && sigismember(&pending, SIGPIPE))
        sigtimedwait(&sigpipe, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

static lb_ready wait_ready(lb_server *s, char *err, size_t errlen)
{
    int64_t deadline = now_ms() + LB_START_TIMEOUT_MS;
    char tail[768];
    for (;;) {
        if (has_exited(s->pid)) {
            reap(s);
            log_tail(s, tail, sizeof tail);
            snprintf(err, errlen, "redis-server on port %d exited during start-up: %s",
                     s->port, tail);
            return READY_EXITED;
        }
        int64_t left = deadline - now_ms();
        if (ping(s->port, s->pid, (int)(left < 10 ? 10 : left > 1000 ? 1000 : left)))
            return READY_OK;
        if (now_ms() >= deadline) {
            kill_and_reap(s);
            log_tail(s, tail, sizeof tail);
            snprintf(err, errlen, "redis-server on port %d did not answer PING within %d ms: %s",
                     s->port, LB_START_TIMEOUT_MS, tail);
            return READY_TIMEOUT;
        }
        lb_sleep_ms(LB_POLL_MS);
    }
}

static bool lost_port_race(const lb_server *s)
{
    char tail[2048];
    log_tail(s, tail, sizeof tail);
    return strstr(tail, "Address already in use") != NULL;
}

/* Starts on a fresh free port, retrying when another process takes the port between our
 * probe and redis's bind. */
static int start_on_free_port(lb_server *s, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < LB_PORT_ATTEMPTS; attempt++) {
        s->port = pick_free_port(err, errlen);
        if (s->port < 0 || write_conf(s, err, errlen) != 0 || spawn(s, err, errlen) != 0)
            return -1;
        lb_ready r = wait_ready(s, err, errlen);
        if (r == READY_OK)
            return 0;
        if (r != READY_EXITED || !lost_port_race(s))
            return -1;
    }
    return -1;
}

/* ---- public API ---------------------------------------------------------------------------- */

static void discard(lb_server *s)
{
    kill_and_reap(s);
    rm_tree(s->dir);
    registry_remove(s);
    free(s->sentinel_conf);
    free(s);
}

static lb_server *start(lb_persistence persistence, const char *sentinel_conf, char *err,
                        size_t errlen)
{
    lb_server *s = calloc(1, sizeof *s);
    if (s == NULL || (sentinel_conf && !(s->sentinel_conf = strdup(sentinel_conf)))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->persistence = persistence;
    sweep_stale_dirs(tmp_root());
    if (find_redis(s->exe, sizeof s->exe, err, errlen) != 0 || make_dir(s, err, errlen) != 0) {
        free(s->sentinel_conf);
        free(s);
        return NULL;
    }
    if (registry_add(s, err, errlen) != 0) {
        rm_tree(s->dir);
        free(s->sentinel_conf);
        free(s);
        return NULL;
    }
    if (start_on_free_port(s, err, errlen) != 0) {
        discard(s);
        return NULL;
    }
    if (listen_pass[0])
        snprintf(s->url, sizeof s->url, "redis://:%s@%s:%d", listen_pass, listen_addr, s->port);
    else
        snprintf(s->url, sizeof s->url, "redis://%s:%d", listen_addr, s->port);
    return s;
}

lb_server *lb_server_start(lb_persistence persistence, char *err, size_t errlen)
{
    return start(persistence, NULL, err, errlen);
}

lb_server *lb_server_start_sentinel(const char *sentinel_conf, char *err, size_t errlen)
{
    return start(LB_PERSIST_NONE, sentinel_conf, err, errlen);
}

void lb_server_stop(lb_server *s)
{
    if (s == NULL)
        return;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        if (s->paused)
            kill(s->pid, SIGCONT);   /* a stopped process cannot act on SIGTERM */
        if (!wait_exit(s->pid, LB_STOP_GRACE_MS))
            kill(s->pid, SIGKILL);
        reap(s);
    }
    rm_tree(s->dir);
    registry_remove(s);
    free(s->sentinel_conf);
    free(s);
}

const char *lb_server_url(const lb_server *s)
{
    return s->url;
}

int lb_server_port(const lb_server *s)
{
    return s->port;
}

const char *lb_server_dir(const lb_server *s)
{
    return s->dir;
}

pid_t lb_server_pid(const lb_server *s)
{
    return s->pid;
}

bool lb_server_is_running(const lb_server *s)
{
    return s->pid > 0 && !has_exited(s->pid);
}

bool lb_server_is_paused(const lb_server *s)
{
    return s->pid > 0 && s->paused;
}

int lb_server_kill(lb_server *s)
{
    if (s->pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    kill_and_reap(s);
    return 0;
}

int lb_server_restart(lb_server *s, char *err, size_t errlen)
{
    kill_and_reap(s);
    if (spawn(s, err, errlen) != 0)
        return -1;
    return wait_ready(s, err, errlen) == READY_OK ? 0 : -1;
}

/* Returns once the process is really stopped, so a caller's next command cannot still be
 * answered by a server that has not yet acted on the SIGSTOP. */
int lb_server_pause(lb_server *s)
{
    if (s->pid <= 0)
        return -1;
    if (s->paused)
        return 0;
    if (kill(s->pid, SIGSTOP) != 0)
        return -1;
    s->paused = true;
    int64_t deadline = now_ms() + LB_PAUSE_TIMEOUT_MS;
    for (;;) {
        siginfo_t info;
        info.si_pid = 0;
        if (waitid(P_PID, (id_t)s->pid, &info, WSTOPPED | WNOHANG) != 0)
            return -1;
        if (info.si_pid != 0)
            return 0;
        if (has_exited(s->pid) || now_ms() >= deadline)
            return -1;
        lb_sleep_ms(1);
    }
}

int lb_server_resume(lb_server *s)
{
    if (s->pid <= 0 || kill(s->pid, SIGCONT) != 0)
        return -1;
    s->paused = false;
    return 0;
}
