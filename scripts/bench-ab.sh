#!/bin/sh
# Before and after: one revision's lockbench against another's (default: the work tree), on the
# same machine in one job, alternating run by run (old, new, old, new ...) so that slow phases
# of a shared machine fall on both alike. Each figure is the median of its rounds.
#
#   scripts/bench-ab.sh OLD_REV [NEW_REV]       BENCH_RUNS rounds (default 5)
#
# Configurations: u50 (scenarios/throughput.json: 50 clients on 50 keys, hold 0) and c50-MODE
# (scenarios/bench/contended.json: 50 clients on one key, wait MODE), each BENCH_DURATION_MS
# long (default 2000), on servers each lockbench run starts for itself. Prints lock cycles/s and
# acquire p99 per side, and new/old.
set -eu
old_rev=$1
new_rev=${2:-}
runs=${BENCH_RUNS:-5}
dur=${BENCH_DURATION_MS:-2000}
top=$(git rev-parse --show-toplevel)
work=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-ab.XXXXXX")
cleanup() {
    git -C "$top" worktree remove --force "$work/old" >/dev/null 2>&1 || true
    [ -n "$new_rev" ] && git -C "$top" worktree remove --force "$work/new" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_rev() {  # build_rev REV DIR
    git -C "$top" worktree add --detach "$2" "$1" >/dev/null 2>&1 ||
        { echo "bench-ab: cannot check out $1" >&2; exit 2; }
    make -C "$2" -s all >/dev/null || { echo "bench-ab: $1 does not build" >&2; exit 2; }
}
build_rev "$old_rev" "$work/old"
if [ -n "$new_rev" ]; then
    build_rev "$new_rev" "$work/new"
    new=$work/new
else
    make -C "$top" -s all >/dev/null
    new=$top
fi

configs="u50 c50-poll c50-notify c50-fifo"
run_one() {  # run_one SIDE_DIR CONFIG OUT
    case $2 in
        u50) set -- "$1" "$3" "$top/scenarios/throughput.json" --set clients.0.count=50 \
                 --set lock.keys=50 ;;
        c50-*) set -- "$1" "$3" "$top/scenarios/bench/contended.json" --set clients.0.count=50 \
                   --set "lock.wait=\"${2#c50-}\"" ;;
    esac
    side=$1 out=$2
    shift 2
    (cd "$side" && ./build/lockbench run "$@" --set workload.duration_ms="$dur" \
        --set workload.iterations=null --set variants='[]' --out "$out" --no-plot --quiet) ||
        { echo "bench-ab: a run failed in $side ($out)" >&2; exit 3; }
}
figure() {  # figure SUMMARY PATH
    sed -n 's/.*"'"$2"'": *\([0-9.e+-]*\).*/\1/p' "$1" | head -n 1
}

i=1
while [ "$i" -le "$runs" ]; do
    for c in $configs; do
        for side in old new; do
            dir=$work/old
            [ "$side" = new ] && dir=$new
            run_one "$dir" "$c" "$work/out/$side/$c/r$i"
        done
    done
    echo "round $i of $runs done" >&2
    i=$((i + 1))
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
printf '%-12s %14s %14s %7s %12s %12s %7s\n' config "old cycles/s" "new cycles/s" new/old \
    "old p99 ms" "new p99 ms" new/old
for c in $configs; do
    for side in old new; do
        for r in "$work/out/$side/$c"/r*; do
            figure "$r/default/summary.json" throughput_per_s
        done | median > "$work/$side.thr"
        for r in "$work/out/$side/$c"/r*; do
            tr -d '\n ' < "$r/default/summary.json" | sed -n 's/.*"acquire_ms":{[^}]*"p99":\([0-9.e+-]*\).*/\1/p'
        done | median > "$work/$side.p99"
    done
    awk -v c="$c" -v ot="$(cat "$work/old.thr")" -v nt="$(cat "$work/new.thr")" \
        -v op="$(cat "$work/old.p99")" -v np="$(cat "$work/new.p99")" \
        'BEGIN {printf "%-12s %14.0f %14.0f %7.3f %12.3f %12.3f %7.3f\n", c, ot, nt, nt / ot, op, np, np / op}'
done
echo "($runs rounds, ${dur} ms each, alternating; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
