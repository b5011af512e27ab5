#!/bin/sh
# make fidelity: the simulator against real runs, side by side on this machine.
#
# Usage: fidelity.sh [BUILD_DIR]        (BUILD_DIR holds lockbench and bench_hist; default build)
#
# Calibrates the model (lockbench calibrate, microbenchmarks against a redis-server of its own),
# then runs each row FIDELITY_RUNS times on the loop driver and once on the simulator (which is
# deterministic), the real runs alternating with the rows so a slow phase of a shared machine
# falls on every row alike, all against one redis-server. Prints throughput and acquire p50,
# real (median) beside sim, and their ratio. Target: sim within 25 % of real. A row whose real
# runs spread more than 1.25x (max / min throughput) is "unmeasurable", not passed; poll on one
# key is timing-chaotic (who retries first decides everything), so it is reported with no target.
#
# Rows: u1, u10, u50 (scenarios/throughput.json with N clients on N keys); c50-notify,
# c50-fifo, c50-poll (scenarios/bench/contended.json, 50 clients on one key); slow-network
# (scenarios/faults/slow-network.json, its "delayed" variant: 10 ms each way through the proxy);
# r5-u10 (throughput.json, redlock on 5 servers, 10 clients on 10 keys: the client and five
# servers share the machine's cores, sim.cores).
#
# Environment: FIDELITY_RUNS (real runs per row, default 5), FIDELITY_DURATION_MS (each run,
# default 2000). Writes results/fidelity/<YYYYmmdd-HHMMSS>/fidelity.txt and calibration.json.
set -u

build=${1:-build}
LB=$build/lockbench
BH=$build/bench_hist
RUNS=${FIDELITY_RUNS:-5}
DUR=${FIDELITY_DURATION_MS:-2000}

die() { echo "fidelity: $*" >&2; exit 2; }
case $RUNS in ''|*[!0-9]*) die "FIDELITY_RUNS must be a number";; esac
case $DUR in ''|*[!0-9]*) die "FIDELITY_DURATION_MS must be a number";; esac
[ "$RUNS" -ge 1 ] || die "FIDELITY_RUNS must be at least 1"
[ -x "$LB" ] || die "$LB not built (run make fidelity)"
[ -x "$BH" ] || die "$BH not built (run make fidelity)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-fidelity.XXXXXX") || die "cannot make a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'echo; echo "fidelity: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

stamp=$(date +%Y%m%d-%H%M%S)
outdir=results/fidelity/$stamp
mkdir -p "$outdir" || die "cannot make $outdir"
CAL=$outdir/calibration.json

echo "lockbench fidelity: the simulator against real runs"
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$LB" calibrate --out "$CAL" || { echo "fidelity: calibration failed" >&2; exit 3; }
echo "model: $(tr -d '\n ' < "$CAL" | sed 's/,"measured".*//; s/^{//')"
echo "real: median of $RUNS alternating runs on the loop driver, ${DUR} ms each; sim: one run"
echo

# row name, scenario, --set arguments, variant folder
ROWS="u1 u10 u50 c50-notify c50-fifo c50-poll slow-network r5-u10"
row_args() {
    case $1 in
        r5-u10) echo "scenarios/throughput.json --set clients.0.count=10 --set lock.keys=10 --set lock.algorithm=redlock --set redis.servers=5 --set workload.duration_ms=$DUR";;
        u*) n=${1#u}; echo "scenarios/throughput.json --set clients.0.count=$n --set lock.keys=$n --set workload.duration_ms=$DUR";;
        c50-*) echo "scenarios/bench/contended.json --set clients.0.count=50 --set lock.wait=${1#c50-} --set workload.duration_ms=$DUR";;
        slow-network) echo "scenarios/faults/slow-network.json";;
    esac
}
row_variant() { case $1 in slow-network) echo delayed;; *) echo default;; esac; }

RAW=$tmp/raw.txt
: > "$RAW"
# run ROW DRIVER ROUND
run() {
    out=$tmp/$1-$2-$3
    # shellcheck disable=SC2046
    "$LB" run $(row_args "$1") --driver "$2" --calibration "$CAL" --out "$out" --no-plot --quiet \
        >"$out.log" 2>&1
    rc=$?
    sum=$out/$(row_variant "$1")/summary.json
    if [ "$rc" -le 1 ] && [ -f "$sum" ]; then
        # shellcheck disable=SC2046
        set -- "$1" "$2" $("$BH" get "$sum" throughput_per_s acquire_ms.p50 2>/dev/null)
        [ $# -eq 4 ] && echo "$1 $2 $3 $4" >> "$RAW"
    else
        echo "fidelity: $1 on $2 failed (exit $rc): $(tail -n 1 "$out.log")" >&2
    fi
    rm -rf "$out"
}

for row in $ROWS; do run "$row" sim 1; done
round=1
while [ "$round" -le "$RUNS" ]; do
    for row in $ROWS; do
        [ -t 2 ] && printf '\r\033[K  round %d/%d  %s' "$round" "$RUNS" "$row" >&2
        run "$row" loop "$round"
    done
    round=$((round + 1))
done
[ -t 2 ] && printf '\r\033[K' >&2

TABLE=$outdir/fidelity.txt
awk -v rows="$ROWS" '
    $2 == "sim"  { st[$1] = $3; sp[$1] = $4 }
    $2 == "loop" { n[$1]++; t[$1, n[$1]] = $3; p[$1, n[$1]] = $4 }
    function median(a, k, c,    i, j, x, v) {
        for (i = 1; i <= c; i++) v[i] = a[k, i]
        for (i = 2; i <= c; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    END {
        printf "%-13s %12s %7s %12s %7s %10s %10s %7s  %s\n", "row", "real acq/s", "spread", "sim acq/s", "ratio", "real p50", "sim p50", "ratio", "verdict"
        split(rows, r, " ")
        for (k = 1; k in r; k++) {
            w = r[k]; c = n[w]
            if (c == 0 || !(w in st)) { printf "%-13s  no figures (a run failed)\n", w; continue }
            lo = hi = t[w, 1]
            for (i = 2; i <= c; i++) { if (t[w, i] < lo) lo = t[w, i]; if (t[w, i] > hi) hi = t[w, i] }
            rt = median(t, w, c); rp = median(p, w, c)
            spread = lo > 0 ? hi / lo : 0
            tr = rt > 0 ? st[w] / rt : 0; pr = rp > 0 ? sp[w] / rp : 0
            if (w == "c50-poll") v = "no target (timing-chaotic)"
            else if (spread > 1.25) v = "unmeasurable (real runs spread " sprintf("%.2f", spread) "x)"
            else if (tr >= 0.75 && tr <= 1.25 && pr >= 0.75 && pr <= 1.25) v = "within 25 %"
            else v = "OUTSIDE 25 %"
            printf "%-13s %12.0f %6.2fx %12.0f %7.2f %10.3f %10.3f %7.2f  %s\n", w, rt, spread, st[w], tr, rp, sp[w], pr, v
        }
    }' "$RAW" > "$TABLE"
cat "$TABLE"
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "written: $TABLE"
