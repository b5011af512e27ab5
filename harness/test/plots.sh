#!/bin/sh
# Runs every gnuplot script in plot/ on the results fixture in plot/test/fixture/ and on an empty
# results folder, and checks what comes out: a PNG (magic bytes) for each chart, SVG for one,
# text for the dumb terminal, and nothing on gnuplot's stderr. Prints TAP; exits 1 on a failure.
# Run from the repository root: sh harness/test/plots.sh

PLOT=plot
FIXTURE=plot/test/fixture
VARIANTS="exponential full-jitter"
PER_VARIANT="latency fairness timeline holders"
PER_SCENARIO="compare-latency compare-bars compare-work"

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

if ! command -v gnuplot >/dev/null 2>&1; then
    not_ok "gnuplot is installed (apt-get install gnuplot-nox)"
    echo "1..$n"
    exit 1
fi
if [ ! -d "$PLOT" ] || [ ! -d "$FIXTURE" ]; then
    not_ok "run from the repository root ($PLOT/ and $FIXTURE/ not found)"
    echo "1..$n"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-plots.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# run SCRIPT STDOUT_FILE VARS: runs plot/SCRIPT.gp with VARS, keeps its stderr in $tmp/err.
run() {
    gnuplot -e "$3" "$PLOT/$1.gp" >"$2" 2>"$tmp/err"
}

is_png() {
    [ -s "$1" ] && [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = "89504e470d0a1a0a" ]
}

# check_png NAME SCRIPT VARS
check_png() {
    out="$tmp/$1.png"
    if ! run "$2" /dev/null "$3; out='$out'; fmt='png'"; then
        not_ok "$1: gnuplot failed: $(head -c 300 "$tmp/err")"
    elif ! is_png "$out"; then
        not_ok "$1: $out is not a non-empty PNG"
    elif [ -s "$tmp/err" ]; then
        not_ok "$1: gnuplot warned: $(head -c 300 "$tmp/err")"
    else
        ok "$1: PNG"
    fi
}

title="title='plots-test scenario'; subtitle='algorithm=token wait=poll ttl_ms=600'"

for v in $VARIANTS; do
    for s in $PER_VARIANT; do
        check_png "$s-$v" "$s" "dir='$FIXTURE/$v'; $title"
    done
done
for s in $PER_SCENARIO; do
    check_png "$s" "$s" "dir='$FIXTURE'; variants='$VARIANTS'; $title"
done
# compare-latency takes the variants from comparison.csv when not given them.
check_png "compare-latency-default-variants" compare-latency "dir='$FIXTURE'; $title"

# SVG
out="$tmp/timeline.svg"
if run timeline /dev/null "dir='$FIXTURE/full-jitter'; out='$out'; fmt='svg'; $title" &&
   [ -s "$out" ] && grep -q '<svg' "$out" && [ ! -s "$tmp/err" ]; then
    ok "timeline: SVG"
else
    not_ok "timeline: SVG ($(head -c 300 "$tmp/err"))"
fi

# Text preview on stdout
for s in $PER_VARIANT $PER_SCENARIO; do
    case $s in
        compare-*) vars="dir='$FIXTURE'; variants='$VARIANTS'" ;;
        *) vars="dir='$FIXTURE/exponential'" ;;
    esac
    out="$tmp/$s.txt"
    if run "$s" "$out" "$vars; out='-'; fmt='dumb'; $title" && [ -s "$out" ] &&
       [ "$(wc -l <"$out")" -ge 25 ] && [ ! -s "$tmp/err" ]; then
        ok "$s: dumb preview on stdout"
    else
        not_ok "$s: dumb preview on stdout ($(head -c 300 "$tmp/err"))"
    fi
done

# An empty results folder: header-only CSVs and a histogram without samples still give a chart.
e="$tmp/empty"
mkdir -p "$e/v"
echo 'variant,throughput_per_s,p50_ms,p99_ms,commands_per_acquisition,elapsed_ms,total_commands' >"$e/comparison.csv"
echo 'client,group,key,call_ms,end_ms,wait_ms,result,attempts,commands,fence,left_ms,released_ms,end,overlap,intended_ms' >"$e/v/acquisitions.csv"
echo 't_ms,acquisitions,timeouts,errors,holders,active_faults' >"$e/v/timeline.csv"
echo 'at_ms,start_ms,end_ms,action,target,detail,status' >"$e/v/events.csv"
printf '%12s %14s %10s %14s\n\n' Value Percentile TotalCount '1/(1-Percentile)' >"$e/v/latency.hgrm"
printf '#[Mean    = %12.3f, StdDeviation   = %12.3f]\n' 0 0 >>"$e/v/latency.hgrm"
printf '#[Max     = %12.3f, Total count    = %12d]\n' 0 0 >>"$e/v/latency.hgrm"
for s in $PER_VARIANT; do
    check_png "$s-empty" "$s" "dir='$e/v'; $title"
done
for s in $PER_SCENARIO; do
    check_png "$s-empty" "$s" "dir='$e'; variants='v'; $title"
done

# A bad format is refused.
if run latency /dev/null "dir='$FIXTURE/exponential'; out='$tmp/x'; fmt='gif'"; then
    not_ok "fmt='gif' is refused"
else
    ok "fmt='gif' is refused"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
