#!/bin/sh
# Checks what building, testing and plotting need; on Debian/Ubuntu as root, installs what is
# missing with apt-get (saying what); otherwise prints the one command to run and fails.
set -u
missing=""
need() {  # need PACKAGE CHECK-COMMAND...
    pkg=$1; shift
    "$@" >/dev/null 2>&1 || missing="$missing $pkg"
}
need pkg-config      command -v pkg-config
need libhiredis-dev  pkg-config --exists hiredis
need libjansson-dev  pkg-config --exists jansson
need libcmocka-dev   pkg-config --exists cmocka
need liblua5.1-0-dev pkg-config --exists lua5.1
need redis-server    command -v redis-server
need redis-tools     command -v redis-benchmark
need gnuplot-nox     command -v gnuplot
need make            command -v make
need gcc             command -v cc
# Only `make mpi` (build/lockbench-mpi) uses Open MPI; plain lockbench links none of it.
need libopenmpi-dev  command -v mpicc
need openmpi-bin     command -v mpirun
# The MPI test (harness/test/mpi.sh) reads the results' JSON with python3; iproute2 gives it
# the two network namespaces its ranks sit in.
need python3         command -v python3
need iproute2        command -v ip

[ -z "$missing" ] && exit 0

cmd="apt-get install -y$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || { echo "deps: '$cmd' failed" >&2; exit 1; }
    # Debian starts the packaged redis-server as a service; tests start their own.
    exit 0
fi
echo "deps: missing:$missing" >&2
echo "deps: run: sudo $cmd" >&2
exit 1
