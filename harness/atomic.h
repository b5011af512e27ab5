/* atomic.h -- writing a file so that no reader ever sees half of it; every file lockbench
 * writes (results, index.html, charts, the gate's outputs, bench_hist's figures) goes through
 * here. The one exception is a managed server's redis.conf (servers.c): it lives in a folder of
 * lockbench's own that nobody else reads, is read once by the server started after it is
 * closed, and servers.c is linked alone into the core's tests.
 *
 * A regular file, or one that does not exist yet, is written under a hidden temporary name in
 * its own folder (".NAME.XXXXXX"), flushed, fsync'd and renamed over NAME: a reader sees the old
 * file or the new one, and a writer killed half-way leaves at most a stray temporary. A file it
 * replaces keeps its permission bits; a new one gets 0666 less the umask.
 *
 * Only a regular file is ever replaced. Whatever else the path names stays what it is:
 *   - a symbolic link stays a link, and what it points to is written by these same rules (a
 *     regular file replaced atomically beside itself, a missing one created);
 *   - a device, a FIFO, or a descriptor named through /proc (/dev/stdout, /dev/fd/N) is opened
 *     and written in place, as a shell's `>` would (appending, so /dev/stdout follows what the
 *     process printed there before);
 *   - a folder is an error (EISDIR).
 * Every failure is reported as -1 with errno set, including a write that only fails when the
 * data is flushed (ENOSPC on /dev/full). */
#ifndef LB_ATOMIC_H
#define LB_ATOMIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct lb_atomic {
    FILE *f;        /* the writer's stream */
    char *path;     /* the file that receives the data: the one named, or where its link ends */
    char *tmp;      /* renamed over path by lb_atomic_commit; NULL when written in place */
} lb_atomic;

/* Opens a write of path. 0, or -1 with errno set (a->f is then NULL). */
int  lb_atomic_open(lb_atomic *a, const char *path);

/* Finishes the write: ok false (the writer failed) or any error on the stream, on flush, fsync,
 * close or rename discards the temporary and returns -1 with errno set (EIO when the stream
 * failed without saying why). 0 once the data is in place. */
int  lb_atomic_commit(lb_atomic *a, bool ok);

/* Gives the write up: the temporary is removed, the target untouched. errno is kept. */
void lb_atomic_abort(lb_atomic *a);

/* The whole of data written to path. 0, or -1 with errno set. */
int  lb_atomic_write(const char *path, const void *data, size_t len);

#endif
