#!/bin/sh
# Runs every fault scenario in scenarios/faults/ and checks that all its expectations hold
# (lockbench exits 0). Prints TAP; exits 1 on a failure.
# Run from the repository root: sh harness/test/faults.sh
# LOCKBENCH names the lockbench binary (default build/lockbench).

LOCKBENCH=${LOCKBENCH:-build/lockbench}
DIR=scenarios/faults

# Under a sanitizer, test_e2e's every_scenario_agrees_on_both_drivers already runs each of these
# scenarios on both drivers: running them a third time would only cost CI's bounded time.
case $LOCKBENCH in
    */san-*) echo "ok 1 - # SKIP $LOCKBENCH: test_e2e runs these scenarios on both drivers"
             echo "1..1"
             exit 0 ;;
esac

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

if [ ! -x "$LOCKBENCH" ]; then
    not_ok "lockbench binary $LOCKBENCH is executable (run make first)"
    echo "1..$n"
    exit 1
fi
set -- "$DIR"/*.json
if [ ! -f "$1" ]; then
    not_ok "fault scenarios found in $DIR (run from the repository root)"
    echo "1..$n"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-faults.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

for f in "$@"; do
    name=$(basename "$f" .json)
    out="$tmp/$name"
    start=$(date +%s)
    "$LOCKBENCH" run "$f" --out "$out" --no-plot --quiet >"$tmp/$name.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        ok "$name (${secs}s)"
    else
        not_ok "$name"
        echo "# lockbench run $f exited with status $rc"
        sed 's/^/# /' "$tmp/$name.log"
    fi
    rm -rf "$out"
done

echo "1..$n"
[ "$failed" -eq 0 ]
