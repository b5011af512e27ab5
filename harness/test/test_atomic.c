/* test_atomic.c -- atomic.h: a regular file is replaced through a temporary and rename, and
 * nothing else a path can name is: a link stays a link (its target written), a FIFO, a device
 * or a /proc descriptor is written in place, a folder is refused, and a write that fails
 * (ENOSPC on a copy of /dev/full) is reported. Each test works in a fresh temporary folder; the
 * devices are made there with mknod (skipped where that is not allowed), never /dev's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "atomic.h"

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/test_atomic.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *in_dir(const char *name)
{
    static char buf[8][512];
    static unsigned k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static mode_t file_type(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        fail_msg("%s: %s", path, strerror(errno));
    return st.st_mode & S_IFMT;
}

/* No ".NAME.XXXXXX" left in d. */
static void assert_no_temporaries(const char *d)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    assert_non_null(dp);
    while ((e = readdir(dp)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("temporary left: %s/%s", d, e->d_name);
    closedir(dp);
}

static mode_t current_umask(void)
{
    mode_t m = umask(022);
    umask(m);
    return m;
}

/* ---- regular files -------------------------------------------------------------------------- */

static void new_and_replaced_regular_files(void **state)
{
    const char *p = in_dir("file.txt");
    assert_int_equal(lb_atomic_write(p, "first", 5), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0666 & ~current_umask());
    ino_t first = st.st_ino;
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(lb_atomic_write(p, "second\n", 7), 0);
    assert_string_equal(slurp(p), "second\n");
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_ino != first);                 /* replaced by a rename, not rewritten */
    assert_int_equal(st.st_mode & 0777, 0600);       /* and it kept its mode */
    assert_no_temporaries(dir);
}

static void errors_leave_nothing_behind(void **state)
{
    assert_int_equal(lb_atomic_write(in_dir("no/such/dir/file"), "x", 1), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(mkdir(in_dir("folder"), 0755), 0);
    assert_int_equal(lb_atomic_write(in_dir("folder"), "x", 1), -1);
    assert_int_equal(errno, EISDIR);
    assert_int_equal(file_type(in_dir("folder")), S_IFDIR);
    assert_int_equal(lb_atomic_write(in_dir("plain"), "old", 3), 0);
    assert_int_equal(lb_atomic_write(in_dir("plain/sub"), "x", 1), -1);
    assert_int_equal(errno, ENOTDIR);
    /* a writer that fails: the old file stays as it was */
    lb_atomic a;
    assert_int_equal(lb_atomic_open(&a, in_dir("plain")), 0);
    fputs("half of it", a.f);
    errno = ENOMEM;
    assert_int_equal(lb_atomic_commit(&a, false), -1);
    assert_int_equal(errno, ENOMEM);
    assert_string_equal(slurp(in_dir("plain")), "old");
    assert_no_temporaries(dir);
}

/* ---- links ---------------------------------------------------------------------------------- */

static void a_link_stays_a_link(void **state)
{
    char target[512];
    assert_int_equal(mkdir(in_dir("sub"), 0755), 0);
    assert_int_equal(lb_atomic_write(in_dir("sub/target.txt"), "old", 3), 0);
    /* a chain: a relative link to a link in another folder */
    assert_int_equal(symlink("target.txt", in_dir("sub/inner")), 0);
    assert_int_equal(symlink("sub/inner", in_dir("outer")), 0);
    assert_int_equal(lb_atomic_write(in_dir("outer"), "new", 3), 0);
    assert_int_equal(file_type(in_dir("outer")), S_IFLNK);
    assert_int_equal(file_type(in_dir("sub/inner")), S_IFLNK);
    ssize_t n = readlink(in_dir("outer"), target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "sub/inner");
    assert_int_equal(file_type(in_dir("sub/target.txt")), S_IFREG);
    assert_string_equal(slurp(in_dir("sub/target.txt")), "new");
    assert_no_temporaries(dir);
    assert_no_temporaries(in_dir("sub"));
}

/* A link to nothing: the file it names is created, as a shell's `>` would. */
static void a_dangling_link_gets_its_target(void **state)
{
    assert_int_equal(symlink("made.txt", in_dir("link")), 0);
    assert_int_equal(lb_atomic_write(in_dir("link"), "made", 4), 0);
    assert_int_equal(file_type(in_dir("link")), S_IFLNK);
    assert_string_equal(slurp(in_dir("made.txt")), "made");
    assert_int_equal(symlink("loop2", in_dir("loop1")), 0);
    assert_int_equal(symlink("loop1", in_dir("loop2")), 0);
    assert_int_equal(lb_atomic_write(in_dir("loop1"), "x", 1), -1);
    assert_int_equal(errno, ELOOP);
    assert_no_temporaries(dir);
}

/* ---- written in place ----------------------------------------------------------------------- */

static void a_fifo_is_written_in_place(void **state)
{
    const char *p = in_dir("fifo");
    char buf[64] = "";
    assert_int_equal(mkfifo(p, 0644), 0);
    int r = open(p, O_RDONLY | O_NONBLOCK);   /* a reader first, so the writer's open returns */
    assert_true(r >= 0);
    assert_int_equal(lb_atomic_write(p, "through the pipe", 16), 0);
    assert_int_equal(read(r, buf, sizeof buf - 1), 16);
    assert_string_equal(buf, "through the pipe");
    close(r);
    assert_int_equal(file_type(p), S_IFIFO);
    assert_no_temporaries(dir);
}

/* /dev/fd/N and /proc/self/fd/N name open descriptors: the data goes down them, and a regular
 * file behind one is appended to, not replaced (the shell holds it open). */
static void proc_descriptors_are_written_through(void **state)
{
    int pipefd[2];
    char path[64], buf[64] = "";
    assert_int_equal(pipe(pipefd), 0);
    snprintf(path, sizeof path, "/dev/fd/%d", pipefd[1]);
    assert_int_equal(lb_atomic_write(path, "piped", 5), 0);
    assert_int_equal(read(pipefd[0], buf, sizeof buf - 1), 5);
    assert_string_equal(buf, "piped");
    close(pipefd[0]);
    close(pipefd[1]);

    int fd = open(in_dir("out.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "table\n", 6), 6);
    struct stat before, after;
    assert_int_equal(fstat(fd, &before), 0);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    assert_int_equal(lb_atomic_write(path, "json\n", 5), 0);
    assert_int_equal(stat(in_dir("out.txt"), &after), 0);
    assert_true(before.st_ino == after.st_ino);
    assert_string_equal(slurp(in_dir("out.txt")), "table\njson\n");
    close(fd);
    assert_no_temporaries(dir);
}

/* Copies of /dev/null and /dev/full: written in place, the device kept; ENOSPC reported. */
static void devices_are_written_in_place(void **state)
{
    const char *null = in_dir("null"), *full = in_dir("full");
    if (mknod(null, S_IFCHR | 0666, makedev(1, 3)) != 0 ||
        mknod(full, S_IFCHR | 0666, makedev(1, 7)) != 0)
        skip();   /* not allowed to make devices (not root, or a container without CAP_MKNOD) */
    assert_int_equal(lb_atomic_write(null, "gone", 4), 0);
    assert_int_equal(file_type(null), S_IFCHR);
    assert_int_equal(lb_atomic_write(full, "no room", 7), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(file_type(full), S_IFCHR);
    /* and through a link to it */
    assert_int_equal(symlink("full", in_dir("to-full")), 0);
    assert_int_equal(lb_atomic_write(in_dir("to-full"), "no room", 7), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(file_type(in_dir("to-full")), S_IFLNK);
    assert_int_equal(file_type(full), S_IFCHR);
    assert_no_temporaries(dir);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(new_and_replaced_regular_files),
        T(errors_leave_nothing_behind),
        T(a_link_stays_a_link),
        T(a_dangling_link_gets_its_target),
        T(a_fifo_is_written_in_place),
        T(proc_descriptors_are_written_through),
        T(devices_are_written_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
