#!/bin/sh
# make install into a staging folder, then build a program outside the tree with
# `pkg-config --cflags --libs dlock` and take and release a lock on a redis-server of our own,
# reached over a unix socket. The install before it used another PREFIX, whose paths must not
# end up in the dlock.pc it installs. Prints TAP.
set -u
echo "1..4"
tmp=$(mktemp -d) || exit 1
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

stage="$tmp/stage" first="$tmp/first"
# The plain build, whatever build this suite runs for (make exports a command-line SANITIZER
# to recipes, so it is unset too): the staged library is linked by a
# program compiled without sanitizers.
install_to() {  # install_to DESTDIR PREFIX
    env -u MAKEFLAGS -u MFLAGS -u SANITIZER make -s install DESTDIR="$1" PREFIX="$2" \
        >>"$tmp/install.log" 2>&1
}
if install_to "$first" /usr/local && install_to "$stage" /usr &&
   [ -f "$stage/usr/include/dlock.h" ] && [ -f "$stage/usr/lib/pkgconfig/dlock.pc" ] &&
   [ -x "$stage/usr/bin/lockbench" ] && [ -e "$stage/usr/lib/libdlock.so.0" ]; then
    echo "ok 1 - make install stages the library, header, dlock.pc and lockbench"
else
    echo "not ok 1 - make install stages the library, header, dlock.pc and lockbench"
    sed 's/^/# /' "$tmp/install.log"
fi

# pc_says FILE PREFIX: its three paths are PREFIX's
pc_says() {
    [ -f "$1" ] && grep -qx "prefix=$2" "$1" && grep -qx "libdir=$2/lib" "$1" &&
        grep -qx "includedir=$2/include" "$1"
}
if pc_says "$first/usr/local/lib/pkgconfig/dlock.pc" /usr/local &&
   pc_says "$stage/usr/lib/pkgconfig/dlock.pc" /usr; then
    echo "ok 2 - each install's dlock.pc has its own PREFIX (/usr/local, then /usr)"
else
    echo "not ok 2 - each install's dlock.pc has its own PREFIX (/usr/local, then /usr)"
    for pc in "$first/usr/local/lib/pkgconfig/dlock.pc" "$stage/usr/lib/pkgconfig/dlock.pc"; do
        echo "# $pc:"
        sed 's/^/#   /' "$pc" 2>/dev/null
    done
fi

cat >"$tmp/app.c" <<'C'
#include <dlock.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    const char *url = argv[1];
    char err[256];
    dlock_client *c = dlock_client_new(&url, 1, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    dlock_options o;
    dlock_options_init(&o);
    o.wait_timeout_ms = 1000;
    dlock *l;
    int rc = dlock_acquire(c, "outside:lock", &o, &l);
    if (rc == DLOCK_OK)
        rc = dlock_release(l);
    printf("%s %s\n", DLOCK_VERSION, dlock_strerror(rc));
    dlock_client_free(c);
    return rc == DLOCK_OK ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
if cc -o "$tmp/app" "$tmp/app.c" $(pkg-config --cflags --libs dlock) 2>"$tmp/cc.log"; then
    echo "ok 3 - a program outside the tree builds with pkg-config dlock"
else
    echo "not ok 3 - a program outside the tree builds with pkg-config dlock"
    sed 's/^/# /' "$tmp/cc.log"
fi

sock="$tmp/redis.sock"
redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --dir "$tmp" \
    --daemonize no >"$tmp/redis.log" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 500 ]; do  # up to 5 s for the socket to appear
    sleep 0.01
    i=$((i + 1))
done
if LD_LIBRARY_PATH="$stage/usr/lib" "$tmp/app" "unix://$sock" >"$tmp/app.log" 2>&1 &&
   grep -q ' ok$' "$tmp/app.log"; then
    echo "ok 4 - it takes and releases a lock over unix:// ($(cat "$tmp/app.log"))"
else
    echo "not ok 4 - it takes and releases a lock over unix://"
    sed 's/^/# /' "$tmp/app.log" "$tmp/redis.log"
fi
