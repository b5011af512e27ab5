#!/bin/sh
# make gate: runs scenarios/gate/ with repeats and compares each against its committed baseline
# in results/baselines/, throughput normalised by the calibration so a baseline from another
# machine still means something. Usage: gate.sh BUILD_DIR [REPEATS]
#   GATE_UPDATE=1 make gate   rewrites the baselines from this run instead.
set -u
build=${1:-build}
repeats=${2:-5}
out=$build/gate
status=0
mkdir -p "$out" results/baselines
for s in scenarios/gate/*.json; do
    name=$(sed -n 's/^ *"name": *"\([a-z0-9-]*\)".*/\1/p' "$s" | head -n 1)
    rm -rf "$out/$name"
    "$build/lockbench" run "$s" --repeat "$repeats" --out "$out/$name" --no-plot --quiet
    rc=$?
    [ $rc -gt 1 ] && { echo "gate: $s: lockbench run failed ($rc)" >&2; status=$rc; continue; }
    if [ "${GATE_UPDATE:-0}" = 1 ]; then
        cp "$out/$name/summary.json" "results/baselines/$name.json"
        echo "gate: baseline results/baselines/$name.json updated"
        continue
    fi
    echo "== $name"
    "$build/lockbench" gate "results/baselines/$name.json" "$out/$name" --normalize \
        --markdown "$out/$name/gate.md" --json "$out/$name/gate.json" || status=1
done
exit $status
