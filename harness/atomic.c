/* atomic.c -- the one way lockbench writes a file (atomic.h).
 *
 * The path is followed link by link with lstat and readlink rather than resolved with stat
 * alone, because what must not happen is a rename over anything but a regular file: a rename
 * over a symbolic link replaces the link, and one over /dev/full (as root) replaces the device.
 * Links that live in /proc are descriptors, not names (/dev/stdout ends at /proc/self/fd/1,
 * whose text is "pipe:[...]" or a path the shell has open), so the walk stops there and the
 * descriptor is written through in place. */
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define LB__MAX_LINKS 40   /* as the kernel's own limit on a path's links (ELOOP) */

/* ---- where the data goes -------------------------------------------------------------------- */

typedef enum { LB__NEW, LB__REPLACE, LB__IN_PLACE } lb__how;

static char *lb__dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* A link in /proc stands for an open file, whatever its text says. */
static bool lb__in_proc(const char *link)
{
    char *dir = lb__dir_of(link);
    struct statfs fs;
    bool proc = dir && statfs(dir, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
    free(dir);
    return proc;
}

/* The path a link points to, relative targets taken from the link's folder; malloc'd. */
static char *lb__follow(const char *link)
{
    char text[PATH_MAX], *next;
    ssize_t n = readlink(link, text, sizeof text - 1);
    if (n < 0)
        return NULL;
    text[n] = '\0';
    const char *slash = strrchr(link, '/');
    int dirlen = text[0] == '/' || !slash ? 0 : (int)(slash - link + 1);
    return asprintf(&next, "%.*s%s", dirlen, link, text) < 0 ? NULL : next;
}

/* How a file that exists is written: st is its lstat. */
static int lb__how_for(const struct stat *st, lb__how *how)
{
    if (S_ISDIR(st->st_mode)) {
        errno = EISDIR;
        return -1;
    }
    /* a link still here is one in /proc: the descriptor it stands for is written through */
    *how = S_ISREG(st->st_mode) ? LB__REPLACE : LB__IN_PLACE;
    return 0;
}

/* Follows path's links to the file that receives the data (*target, malloc'd) and says how it
 * is written; *mode is a replaced file's permission bits. 0, or -1 with errno set. */
static int lb__resolve(const char *path, char **target, lb__how *how, mode_t *mode)
{
    char *cur = strdup(path);
    struct stat st;
    for (int hops = 0; cur; hops++) {
        if (lstat(cur, &st) != 0) {
            if (errno != ENOENT)
                break;
            *how = LB__NEW;   /* a missing file, or the missing end of a link: created */
            *target = cur;
            return 0;
        }
        if (!S_ISLNK(st.st_mode) || lb__in_proc(cur)) {
            if (lb__how_for(&st, how) != 0)
                break;
            *mode = st.st_mode & 0777;
            *target = cur;
            return 0;
        }
        if (hops == LB__MAX_LINKS) {
            errno = ELOOP;
            break;
        }
        char *next = lb__follow(cur);
        free(cur);
        cur = next;
    }
    int e = errno;   /* lstat's, readlink's, ELOOP, EISDIR or ENOMEM */
    free(cur);
    errno = e;
    return -1;
}

/* ---- the temporary -------------------------------------------------------------------------- */

/* ".NAME." plus six random letters, in NAME's folder: hidden, so neither a user nor a plot
 * script takes it for a result. */
static char *lb__tmp_name(const char *path)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char r[6];
    char suffix[7];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return NULL;
    for (size_t i = 0; i < sizeof r; i++)
        suffix[i] = letters[r[i] % (sizeof letters - 1)];
    suffix[6] = '\0';
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    char *tmp;
    if (asprintf(&tmp, "%.*s.%s.%s", dirlen, path, slash ? slash + 1 : path, suffix) < 0)
        return NULL;
    return tmp;
}

/* Created with O_EXCL and mode 0666, so the umask (and a default ACL) apply as to any new
 * file; a file it will replace lends it its own bits instead. */
static int lb__create_tmp(lb_atomic *a, lb__how how, mode_t mode)
{
    for (int tries = 0; tries < 100; tries++) {
        if (!(a->tmp = lb__tmp_name(a->path)))
            return -1;
        int fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 && how == LB__REPLACE && fchmod(fd, mode) != 0) {
            int e = errno;
            close(fd);
            unlink(a->tmp);
            errno = e;
            fd = -1;
        }
        if (fd >= 0)
            return fd;
        int e = errno;
        free(a->tmp);
        a->tmp = NULL;
        errno = e;
        if (e != EEXIST)
            return -1;
    }
    return -1;
}

/* ---- the write ------------------------------------------------------------------------------ */

int lb_atomic_open(lb_atomic *a, const char *path)
{
    lb__how how;
    mode_t mode = 0;
    *a = (lb_atomic){0};
    if (lb__resolve(path, &a->path, &how, &mode) != 0)
        return -1;
    int fd = how == LB__IN_PLACE
                 ? open(a->path, O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC)
                 : lb__create_tmp(a, how, mode);
    if (fd >= 0 && !(a->f = fdopen(fd, "w")))
        close(fd);
    if (!a->f) {
        lb_atomic_abort(a);
        return -1;
    }
    errno = 0;   /* so that commit can tell a stream error's cause from an older errno */
    return 0;
}

void lb_atomic_abort(lb_atomic *a)
{
    int e = errno;
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    *a = (lb_atomic){0};
    errno = e;
}

int lb_atomic_commit(lb_atomic *a, bool ok)
{
    bool failed = !ok || ferror(a->f) || fflush(a->f) != 0 ||
                  (a->tmp && fsync(fileno(a->f)) != 0);
    if (failed) {
        if (errno == 0)
            errno = EIO;
        lb_atomic_abort(a);
        return -1;
    }
    int rc = fclose(a->f);   /* a device may report its error only here */
    a->f = NULL;
    if (rc == 0 && a->tmp)
        rc = rename(a->tmp, a->path);
    if (rc != 0) {
        lb_atomic_abort(a);
        return -1;
    }
    free(a->tmp);
    free(a->path);
    *a = (lb_atomic){0};
    return 0;
}

int lb_atomic_write(const char *path, const void *data, size_t len)
{
    lb_atomic a;
    if (lb_atomic_open(&a, path) != 0)
        return -1;
    return lb_atomic_commit(&a, fwrite(data, 1, len, a.f) == len);
}
