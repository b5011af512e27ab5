#!/bin/sh
# make scale: the back-off comparison at 1 000, 10 000 and 100 000 simulated clients
# (scenarios/sim/backoff-*.json), each variant judged by its expect; writes
# results/scale/<YYYYmmdd-HHMMSS>/<scenario>/ and prints each comparison. Minutes: the 100 000
# one simulates about 12 minutes on 2 cores.
# Usage: scale.sh [BUILD_DIR]
set -u
build=${1:-build}
LB=$build/lockbench
[ -x "$LB" ] || { echo "scale: $LB not built" >&2; exit 2; }
out=results/scale/$(date +%Y%m%d-%H%M%S)
status=0
for n in 1000 10000 100000; do
    f=scenarios/sim/backoff-$n.json
    echo "== $f"
    start=$(date +%s)
    "$LB" run "$f" --out "$out/backoff-$n" --quiet || status=1
    [ -f "$out/backoff-$n/comparison.md" ] && cat "$out/backoff-$n/comparison.md"
    echo "($(( $(date +%s) - start )) s)"
done
echo "results: $out"
exit $status
