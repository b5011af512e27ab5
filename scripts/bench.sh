#!/bin/sh
# make bench: lockbench side by side with redis-benchmark on one redis-server of its own.
#
# Usage: bench.sh [BUILD_DIR]            (BUILD_DIR holds lockbench and bench_hist; default build)
#
# Starts one redis-server on a free loopback port in a temporary directory and, on that server,
# runs every configuration once per round, BENCH_RUNS rounds (A B C … A B C …), so that slow
# phases of a shared machine fall on every configuration alike.  Each figure is the median of its
# rounds.  Prints a table and writes results/bench/<YYYYmmdd-HHMMSS>/bench.json (every figure
# and the per-run values) and table.txt.
#
#   R1  uncontended ceiling: lock cycles/s of scenarios/throughput.json (50 clients on 50 keys,
#       hold 0) / half of redis-benchmark's SET requests/s with 50 clients (a cycle is two
#       commands).                                                               target >= 0.9
#   R2  contended efficiency: cycles/s of 50 clients on one key (scenarios/bench/contended.json,
#       best of the wait modes poll, notify, fifo) / cycles/s of 1 client alone.  target >= 0.5
#   R3  ns per latency sample recorded (bench_hist hist).                        target <= 20
#       and the CPU share of lockbench and of redis-server during the R1 runs.
#   S1  simulator speed: lock cycles per CPU-second of the simulator (50 clients on 50 keys,
#       --driver sim) / lock cycles per second of the real run (u50).           target >= 5
#   S2  memory per simulated client: (peak RSS at 100 000 simulated clients - peak at 1 000)
#       / 99 000.                                                           target <= 2 KiB
#   E1  explore speed: seeds per second that `lockbench explore` judges on scenarios/bench/
#       explore.json (10 clients on one key, hold 1 ms, 1 virtual second, 2 random faults),
#       one worker per core.                                                     target >= 50
#   Scaling: throughput, p99 and peak memory per client for 1, 10, 50, 100, 1000, 10000
#       clients, uncontended (N keys) and contended (1 key, each wait mode, the best shown).
#                                 memory per client at the most clients: target <= 32 KiB
#       and bounded whatever the run length: u50 again for 4x as long (u50x4) may peak at most
#       1.25x as high.
#
# Environment: BENCH_RUNS (rounds, default 3), BENCH_DURATION_MS (each lockbench run, default
# 2000), BENCH_SET_REQUESTS (redis-benchmark -c 50 -n, default 150000), BENCH_SET1_REQUESTS
# (redis-benchmark -c 1 -n, the 1-client reference, default 30000), BENCH_CLIENTS (default
# "1 10 50 100 1000 10000"; 1 and 50 are always measured), BENCH_HIST_SAMPLES (default 10000000).
# The machine is shared with whatever else runs on it: the load average is printed and kept.
#
# bench.json: machine, settings, ratios, scaling, and under "figures" every configuration's
# metrics as {"median", "runs": [one value per round]}.  Configurations: set and set1
# (redis-benchmark SET with 50 clients and with 1), uN (N clients on N keys), cN-MODE (N clients
# on one key, wait MODE; c1-poll is "1 client alone"), hist (ns per latency sample).
set -u

build=${1:-build}
LB=$build/lockbench
BH=$build/bench_hist
RUNS=${BENCH_RUNS:-3}
DUR=${BENCH_DURATION_MS:-2000}
SET_N=${BENCH_SET_REQUESTS:-150000}
SET1_N=${BENCH_SET1_REQUESTS:-30000}
CLIENT_COUNTS=${BENCH_CLIENTS:-"1 10 50 100 1000 10000"}
HIST_N=${BENCH_HIST_SAMPLES:-10000000}
MODES="poll notify fifo"
UNCONTENDED=scenarios/throughput.json
CONTENDED=scenarios/bench/contended.json
R1_TARGET=0.9
R2_TARGET=0.5
R3_TARGET=20
S1_TARGET=5
S2_TARGET=2
E1_TARGET=50
EXPLORE=scenarios/bench/explore.json
EXPLORE_SEEDS=${BENCH_EXPLORE_SEEDS:-300}
MEM_TARGET=32

die() { echo "bench: $*" >&2; exit 2; }

case $RUNS in ''|*[!0-9]*) die "BENCH_RUNS must be a number";; esac
case $DUR in ''|*[!0-9]*) die "BENCH_DURATION_MS must be a number";; esac
case $SET_N in ''|*[!0-9]*) die "BENCH_SET_REQUESTS must be a number";; esac
case $SET1_N in ''|*[!0-9]*) die "BENCH_SET1_REQUESTS must be a number";; esac
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1"
[ "$RUNS" -ge 3 ] || echo "bench: BENCH_RUNS=$RUNS: fewer than 3 runs, the medians are weak" >&2
[ -x "$LB" ] || die "$LB not built (run make bench)"
[ -x "$BH" ] || die "$BH not built (run make bench)"
for f in "$UNCONTENDED" "$CONTENDED" "$EXPLORE"; do [ -f "$f" ] || die "$f missing"; done
for t in redis-server redis-cli redis-benchmark; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (make deps installs redis-server and redis-tools)"
done

# 1 and 50 are R1's and R2's client counts; the others are the scaling rows.
# shellcheck disable=SC2086
counts=$(printf '%s\n' 1 50 $CLIENT_COUNTS | sort -n -u | tr '\n' ' ')
for n in $counts; do
    case $n in *[!0-9]*|0) die "BENCH_CLIENTS: not a client count: $n";; esac
done

NCPU=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$CPU_MODEL" ] || CPU_MODEL=$(uname -m)
REDIS_VERSION=$(redis-server --version 2>/dev/null | head -n 1)
KERNEL=$(uname -sr)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "null null null")
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T_START=$(date +%s)

# ---- one redis-server for the whole bench ------------------------------------------------

# 10 000 clients need a descriptor each, here and in redis-server: take the hard limit, and give
# the server a maxclients that fits in it (lockbench itself says what it needs if that is short).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
case $FDS in ''|*[!0-9]*) FDS=1024;; esac
MAXCLIENTS=$((FDS - 64))

tmp=
rpid=
# shellcheck disable=SC2317
cleanup() {
    if [ -n "$rpid" ]; then
        kill "$rpid" 2>/dev/null
        i=0
        while kill -0 "$rpid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$rpid" 2>/dev/null
        wait "$rpid" 2>/dev/null
        rpid=
    fi
    [ -n "$tmp" ] && rm -rf "$tmp"
    tmp=
}
trap cleanup EXIT
trap 'echo; echo "bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-bench.XXXXXX") || die "cannot make a temporary directory"
mkdir -p "$tmp/runs"

random_port() {
    r=$(od -An -N2 -tu2 /dev/urandom 2>/dev/null | tr -d ' \n')
    [ -n "$r" ] || r=$(( $$ * 7 + $(date +%S) ))
    echo $(( 20000 + r % 40000 ))
}

# The server answering must be ours (its process_id), not one that already held the port.
start_redis() {
    tries=0
    while [ "$tries" -lt 20 ]; do
        tries=$((tries + 1))
        port=$(random_port)
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$tmp" --logfile "$tmp/redis.log" --tcp-backlog 4096 --daemonize no \
            --maxclients "$MAXCLIENTS" \
            </dev/null >/dev/null 2>&1 &
        rpid=$!
        i=0
        while [ "$i" -lt 50 ] && kill -0 "$rpid" 2>/dev/null; do
            seen=$(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null |
                   sed -n 's/^process_id:\([0-9]*\).*/\1/p')
            if [ "$seen" = "$rpid" ] && [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
                return 0
            fi
            sleep 0.1
            i=$((i + 1))
        done
        kill "$rpid" 2>/dev/null
        wait "$rpid" 2>/dev/null
        rpid=
    done
    return 1
}
start_redis || { echo "bench: could not start redis-server on a loopback port (log: see below)" >&2
                 tail -n 5 "$tmp/redis.log" >&2 2>/dev/null; exit 3; }
URL=redis://127.0.0.1:$port

# ---- recording ---------------------------------------------------------------------------

RAW=$tmp/raw.txt        # config metric round value
: > "$RAW"
FAILS=$tmp/fails.txt
: > "$FAILS"
ORDER=

record() { echo "$1 $2 $3 $4" >> "$RAW"; }
kv() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1; }
# calc EXPR with a b c … bound to $1 $2 …: prints null when any input is null or a division by 0
calc() {
    expr=$1; shift
    awk -v e="$expr" -v args="$*" 'BEGIN {
        n = split(args, v, " ")
        for (i = 1; i <= n; i++) if (v[i] == "null" || v[i] == "") { print "null"; exit }
        a = v[1] + 0; b = v[2] + 0; c = v[3] + 0; d = v[4] + 0
        if (e == "div")      { if (b == 0) print "null"; else printf "%.6g\n", a / b }
        else if (e == "half") printf "%.6g\n", a / 2
        else if (e == "add")  printf "%.6g\n", a + b
        else if (e == "share") { if (b * c == 0) print "null"; else printf "%.6g\n", a / (b * c) }
        else if (e == "kib_per_client") { if (b == 0) print "null"; else printf "%.6g\n", a / b }
    }'
}

# run_lb CONFIG ROUND SCENARIO CLIENTS KEYS WAIT [DURATION_MS]
run_lb() {
    cfg=$1 round=$2 scen=$3 n=$4 keys=$5 wait=$6 dur=${7:-$DUR}
    out=$tmp/runs/$cfg.$round
    "$BH" exec --watch "$rpid" "$out.proc" -- "$LB" run "$scen" --redis "$URL" --out "$out" \
        --no-plot --quiet --set "workload.duration_ms=$dur" --set "clients.0.count=$n" \
        --set "lock.keys=$keys" --set "lock.wait=$wait" >"$out.log" 2>&1
    rc=$?
    record "$cfg" exit "$round" "$rc"
    if [ "$rc" -ne 0 ]; then
        echo "$cfg round $round: lockbench exit $rc: $(tail -n 1 "$out.log")" >> "$FAILS"
    fi
    sum=$out/summary.json
    if [ -f "$sum" ]; then
        # shellcheck disable=SC2046
        set -- $("$BH" get "$sum" variants.0.throughput_per_s variants.0.acquire_ms.p50 \
                 variants.0.acquire_ms.p99 variants.0.acquisitions variants.0.errors \
                 variants.0.timeouts variants.0.overlaps variants.0.redis.commands_per_acquisition \
                 variants.0.elapsed_ms variants.0.fairness.jain 2>/dev/null)
    fi
    # no figures from a run that did not finish
    if [ $# -ne 10 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; }; then
        set -- null null null null null null null null null null
    fi
    record "$cfg" throughput_per_s "$round" "$1"
    case $1 in null) tps=-;; *) tps=$(printf '%.0f' "$1" 2>/dev/null || echo "$1");; esac
    LAST="$cfg $tps acq/s, $6 timeouts, $5 errors"
    record "$cfg" p50_ms "$round" "$2"
    record "$cfg" p99_ms "$round" "$3"
    record "$cfg" acquisitions "$round" "$4"
    record "$cfg" errors "$round" "$5"
    record "$cfg" timeouts "$round" "$6"
    record "$cfg" overlaps "$round" "$7"
    record "$cfg" commands_per_acquisition "$round" "$8"
    record "$cfg" run_elapsed_ms "$round" "$9"
    record "$cfg" jain "$round" "${10}"
    wall=$(kv "$out.proc" elapsed_s); wall=${wall:-null}
    user=$(kv "$out.proc" user_s); user=${user:-null}
    sys=$(kv "$out.proc" sys_s); sys=${sys:-null}
    rss=$(kv "$out.proc" maxrss_kb); rss=${rss:-null}
    rcpu=$(kv "$out.proc" watch_cpu_s); rcpu=${rcpu:-null}
    cpu=$(calc add "$user" "$sys")
    record "$cfg" wall_s "$round" "$wall"
    record "$cfg" cpu_s "$round" "$cpu"
    record "$cfg" cpu_share "$round" "$(calc share "$cpu" "$wall" "$NCPU")"
    record "$cfg" redis_cpu_s "$round" "$rcpu"
    record "$cfg" redis_cpu_share "$round" "$(calc share "$rcpu" "$wall" "$NCPU")"
    record "$cfg" maxrss_kb "$round" "$rss"
    record "$cfg" kib_per_client "$round" "$(calc kib_per_client "$rss" "$n")"
    rm -rf "$out"
}

# run_set CONFIG ROUND CLIENTS REQUESTS: redis-benchmark SET
run_set() {
    cfg=$1 round=$2
    out=$tmp/runs/$cfg.$round
    "$BH" exec --watch "$rpid" "$out.proc" -- redis-benchmark -h 127.0.0.1 -p "$port" \
        -t set -c "$3" -n "$4" --csv >"$out.csv" 2>"$out.log"
    rc=$?
    record "$cfg" exit "$round" "$rc"
    rps=$(sed -n 's/^"SET","\([0-9.]*\)".*/\1/p' "$out.csv" | head -n 1)
    if [ "$rc" -ne 0 ] || [ -z "$rps" ]; then
        echo "$cfg round $round: redis-benchmark exit $rc: $(tail -n 1 "$out.log")" >> "$FAILS"
        rps=null
    fi
    p99=$(sed -n 's/^"SET","[^"]*","[^"]*","[^"]*","[^"]*","[^"]*","\([0-9.]*\)".*/\1/p' "$out.csv" | head -n 1)
    wall=$(kv "$out.proc" elapsed_s); wall=${wall:-null}
    rcpu=$(kv "$out.proc" watch_cpu_s); rcpu=${rcpu:-null}
    record "$cfg" requests_per_s "$round" "$rps"
    record "$cfg" half_requests_per_s "$round" "$(calc half "$rps")"
    record "$cfg" p99_ms "$round" "${p99:-null}"
    record "$cfg" wall_s "$round" "$wall"
    record "$cfg" redis_cpu_share "$round" "$(calc share "$rcpu" "$wall" "$NCPU")"
}

# run_sim CONFIG ROUND CLIENTS DURATION_MS: the simulator, no server; its CPU and peak memory.
run_sim() {
    cfg=$1 round=$2 n=$3 dur=$4
    out=$tmp/runs/$cfg.$round
    "$BH" exec "$out.proc" -- "$LB" run "$UNCONTENDED" --driver sim --out "$out" --no-plot \
        --quiet --set "workload.duration_ms=$dur" --set "clients.0.count=$n" \
        --set "lock.keys=$n" >"$out.log" 2>&1
    rc=$?
    record "$cfg" exit "$round" "$rc"
    [ "$rc" -eq 0 ] || echo "$cfg round $round: lockbench exit $rc: $(tail -n 1 "$out.log")" >> "$FAILS"
    acq=null
    [ -f "$out/summary.json" ] && acq=$("$BH" get "$out/summary.json" variants.0.acquisitions 2>/dev/null)
    user=$(kv "$out.proc" user_s); sys=$(kv "$out.proc" sys_s)
    cpu=$(calc add "${user:-null}" "${sys:-null}")
    record "$cfg" acquisitions "$round" "${acq:-null}"
    record "$cfg" cpu_s "$round" "$cpu"
    record "$cfg" cycles_per_cpu_s "$round" "$(calc div "${acq:-null}" "$cpu")"
    rss=$(kv "$out.proc" maxrss_kb)
    record "$cfg" maxrss_kb "$round" "${rss:-null}"
    rm -rf "$out"
}

# run_explore ROUND: explore's seeds per second on the bench scenario (every seed passes).
run_explore() {
    out=$tmp/runs/explore.$1
    "$LB" explore "$EXPLORE" --seeds "$EXPLORE_SEEDS" --out "$out" --quiet >"$out.log" 2>&1
    rc=$?
    record explore exit "$1" "$rc"
    [ "$rc" -eq 0 ] || echo "explore round $1: lockbench explore exit $rc: $(tail -n 1 "$out.log")" >> "$FAILS"
    sps=null
    [ -f "$out/explore.json" ] && sps=$("$BH" get "$out/explore.json" seeds_per_s 2>/dev/null)
    record explore seeds_per_s "$1" "${sps:-null}"
    rm -rf "$out"
}

run_hist() {
    round=$1
    ns=$("$BH" hist "$HIST_N" 2>>"$FAILS") || ns=null
    record hist ns_per_record "$round" "${ns:-null}"
}

# ---- the rounds ----------------------------------------------------------------------------

echo "lockbench bench"
echo "machine:   $NCPU cores, $CPU_MODEL, $KERNEL"
echo "redis:     $REDIS_VERSION"
echo "load:      $LOAD_START (1/5/15 min load average at start; a shared machine makes every figure noisy)"
echo "settings:  $RUNS alternating rounds; ${DUR} ms per lockbench run; redis-benchmark SET -c 50 -n $SET_N, -c 1 -n $SET1_N;"
echo "           one redis-server on 127.0.0.1:$port for every run"

# R1's pair side by side, then R2's, then the other scaling rows.
configs="set u50 u50x4"
for n in 50 1 $counts; do
    case " $configs " in *" c$n-poll "*) continue;; esac
    [ "$n" -gt 1 ] && [ "$n" -ne 50 ] && configs="$configs u$n"
    [ "$n" -eq 1 ] && configs="$configs set1"
    for w in $MODES; do configs="$configs c$n-$w"; done
done
configs="$configs s50 s1000 s100000 explore hist"
ORDER=$configs
# shellcheck disable=SC2086
nconf=$(echo $configs | wc -w)
echo "           $nconf configurations per round: $configs"
echo

# On a terminal, one updating line: where the bench is, how long it has run, and the last
# lockbench run's acquisitions/s, timeouts and errors.
LAST=
round=1
while [ "$round" -le "$RUNS" ]; do
    k=0
    for cfg in $configs; do
        k=$((k + 1))
        if [ -t 2 ]; then
            el=$(( $(date +%s) - T_START ))
            printf '\r\033[K  round %d/%d  %2d/%d  %-14s %d:%02d elapsed  %s' "$round" "$RUNS" "$k" \
                "$nconf" "$cfg" $((el / 60)) $((el % 60)) "${LAST:+last: $LAST}" >&2
        fi
        case $cfg in
            set)  run_set set "$round" 50 "$SET_N" ;;
            set1) run_set set1 "$round" 1 "$SET1_N" ;;
            hist) run_hist "$round" ;;
            explore) run_explore "$round" ;;
            s50) run_sim s50 "$round" 50 "$DUR" ;;
            s*)  run_sim "$cfg" "$round" "${cfg#s}" "$DUR" ;;
            u50x4) run_lb u50x4 "$round" "$UNCONTENDED" 50 50 poll $((DUR * 4)) ;;
            u*)   n=${cfg#u}; run_lb "$cfg" "$round" "$UNCONTENDED" "$n" "$n" poll ;;
            c*)   n=${cfg#c}; n=${n%%-*}; w=${cfg#*-}
                  run_lb "$cfg" "$round" "$CONTENDED" "$n" 1 "$w" ;;
        esac
    done
    [ -t 2 ] || echo "  round $round/$RUNS done" >&2
    round=$((round + 1))
done
[ -t 2 ] && printf '\r\033[K' >&2

# ---- medians ------------------------------------------------------------------------------

MED=$tmp/median.txt
awk '
    { key = $1 " " $2; if (!(key in n)) { n[key] = 0; order[++nk] = key }
      if ($4 != "null") v[key, ++n[key]] = $4 + 0 }
    END {
        for (k = 1; k <= nk; k++) {
            key = order[k]; m = n[key]
            for (i = 2; i <= m; i++) {           # insertion sort, m is small
                x = v[key, i]; j = i - 1
                while (j >= 1 && v[key, j] > x) { v[key, j + 1] = v[key, j]; j-- }
                v[key, j + 1] = x
            }
            if (m == 0) med = "null"
            else if (m % 2) med = sprintf("%.6g", v[key, (m + 1) / 2])
            else med = sprintf("%.6g", (v[key, m / 2] + v[key, m / 2 + 1]) / 2)
            print key, med
        }
    }' "$RAW" > "$MED"

med() { awk -v k="$1 $2" '$1 " " $2 == k { print $3; f = 1; exit } END { if (!f) print "null" }' "$MED"; }
verdict() {   # verdict VALUE TARGET ge|le
    awk -v x="$1" -v t="$2" -v op="$3" 'BEGIN {
        if (x == "null") print "n/a"
        else if ((op == "ge" && x + 0 >= t + 0) || (op == "le" && x + 0 <= t + 0)) print "PASS"
        else print "BELOW" }'
}
jbool() { case $1 in PASS) echo true;; BELOW) echo false;; *) echo null;; esac; }
# best_mode N: the wait mode with the highest median cycles/s at N clients on one key
best_mode() {
    best='' bv=-1
    for w in $MODES; do
        t=$(med "c$1-$w" throughput_per_s)
        [ "$t" = null ] && continue
        if awk -v a="$t" -v b="$bv" 'BEGIN { exit !(a + 0 > b + 0) }'; then best=$w bv=$t; fi
    done
    echo "${best:-none}"
}
fmt() {   # fmt PRINTF-FORMAT VALUE: "-" for null
    if [ "$2" = null ] || [ -z "$2" ]; then printf '%s' -; else awk -v f="$1" -v x="$2" 'BEGIN { printf f, x }'; fi
}

set_rps=$(med set requests_per_s)
set_half=$(med set half_requests_per_s)
r1_num=$(med u50 throughput_per_s)
r1=$(calc div "$r1_num" "$set_half")
r1_v=$(verdict "$r1" "$R1_TARGET" ge)

alone=$(med c1-poll throughput_per_s)
best50=$(best_mode 50)
r2_num=$(med "c50-$best50" throughput_per_s)
r2=$(calc div "$r2_num" "$alone")
r2_v=$(verdict "$r2" "$R2_TARGET" ge)

ns=$(med hist ns_per_record)
r3_v=$(verdict "$ns" "$R3_TARGET" le)

s1=$(calc div "$(med s50 cycles_per_cpu_s)" "$(med u50 throughput_per_s)")
s1_v=$(verdict "$s1" "$S1_TARGET" ge)
s2=$(awk -v a="$(med s100000 maxrss_kb)" -v b="$(med s1000 maxrss_kb)" 'BEGIN {
    if (a == "null" || b == "null") print "null"; else printf "%.6g\n", (a - b) / 99000 }')
s2_v=$(verdict "$s2" "$S2_TARGET" le)
e1=$(med explore seeds_per_s)
e1_v=$(verdict "$e1" "$E1_TARGET" ge)
lb_share=$(med u50 cpu_share)
lb_cores=$(calc div "$(med u50 cpu_s)" "$(med u50 wall_s)")
rd_share=$(med u50 redis_cpu_share)
rd_cores=$(calc div "$(med u50 redis_cpu_s)" "$(med u50 wall_s)")
rb_rd_share=$(med set redis_cpu_share)

# Memory per client: peak RSS / clients at the largest client count (where the fixed part, about
# the 1-client RSS, is spread thinnest), the worse of uncontended and contended; and the
# marginal cost, (RSS(N) - RSS(1)) / (N - 1).
nmax=$(echo "$counts" | awk '{ print $NF }')
if [ "$nmax" -eq 1 ]; then umax=c1-poll; else umax=u$nmax; fi
cmax=c$nmax-$(best_mode "$nmax")
mem_u=$(med "$umax" kib_per_client)
mem_c=$(med "$cmax" kib_per_client)
mem_max=$(awk -v a="$mem_u" -v b="$mem_c" 'BEGIN { if (a == "null") print b; else if (b == "null" || a + 0 >= b + 0) print a; else print b }')
# Bounded whatever the run length: four times the run may not take more than a quarter more
# memory (a log kept in memory would take about four times as much).
rss_short=$(med u50 maxrss_kb)
rss_long=$(med u50x4 maxrss_kb)
rss_growth=$(calc div "$rss_long" "$rss_short")
mem_v=$(verdict "$mem_max" "$MEM_TARGET" le)
growth_v=$(verdict "$rss_growth" 1.25 le)
[ "$growth_v" = BELOW ] && mem_v=BELOW
rss1=$(med c1-poll maxrss_kb)
mem_marginal=null
if [ "$nmax" -gt 1 ]; then
    mem_marginal=$(awk -v a="$(med "$umax" maxrss_kb)" -v b="$(med "$cmax" maxrss_kb)" -v r="$rss1" -v n="$nmax" 'BEGIN {
        if (r == "null" || (a == "null" && b == "null")) { print "null"; exit }
        m = (a == "null" || (b != "null" && b + 0 > a + 0)) ? b : a
        printf "%.6g\n", (m - r) / (n - 1) }')
fi

# ---- the table ----------------------------------------------------------------------------

TABLE=$tmp/table.txt
{
    echo "lockbench bench, $STARTED_AT"
    echo "machine: $NCPU cores, $CPU_MODEL, $KERNEL; $REDIS_VERSION"
    echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    echo "each figure: median of $RUNS alternating runs, ${DUR} ms per lockbench run"
    echo
    printf '%-46s %10s  %-8s %s\n' "ratio" "value" "target" "verdict"
    printf '%-46s %10s  %-8s %s\n' "R1 uncontended ceiling" "$(fmt %.3f "$r1")" ">= $R1_TARGET" "$r1_v"
    printf '     %s lock cycles/s (50 clients, 50 keys) / %s = half of %s SET/s (redis-benchmark -c 50)\n' \
        "$(fmt %.0f "$r1_num")" "$(fmt %.0f "$set_half")" "$(fmt %.0f "$set_rps")"
    printf '%-46s %10s  %-8s %s\n' "R2 contended efficiency (best: $best50)" "$(fmt %.3f "$r2")" ">= $R2_TARGET" "$r2_v"
    printf '     %s cycles/s (50 clients, 1 key, %s) / %s cycles/s (1 client alone, poll)\n' \
        "$(fmt %.0f "$r2_num")" "$best50" "$(fmt %.0f "$alone")"
    printf '     1 client alone reaches %s of its ceiling, half of %s SET/s (redis-benchmark -c 1)\n' \
        "$(fmt %.3f "$(calc div "$alone" "$(med set1 half_requests_per_s)")")" "$(fmt %.0f "$(med set1 requests_per_s)")"
    for w in $MODES; do
        t=$(med "c50-$w" throughput_per_s)
        printf '       %-7s %9s cycles/s  ratio %s  p99 %s ms  %s commands/acquisition  Jain %s\n' "$w" \
            "$(fmt %.0f "$t")" "$(fmt %.3f "$(calc div "$t" "$alone")")" "$(fmt %.3f "$(med "c50-$w" p99_ms)")" \
            "$(fmt %.2f "$(med "c50-$w" commands_per_acquisition)")" "$(fmt %.3f "$(med "c50-$w" jain)")"
    done
    printf '%-46s %10s  %-8s %s\n' "R3 ns per latency sample recorded" "$(fmt %.2f "$ns")" "<= $R3_TARGET" "$r3_v"
    printf '%-46s %10s  %-8s %s\n' "S1 simulator cycles per CPU-s / real cycles/s" "$(fmt %.1f "$s1")" ">= $S1_TARGET" "$s1_v"
    printf '     %s cycles per CPU-second simulated (50 clients, 50 keys) / %s cycles/s real (u50)\n' \
        "$(fmt %.0f "$(med s50 cycles_per_cpu_s)")" "$(fmt %.0f "$(med u50 throughput_per_s)")"
    printf '%-46s %10s  %-8s %s\n' "S2 KiB per simulated client" "$(fmt %.2f "$s2")" "<= $S2_TARGET" "$s2_v"
    printf '     (peak %s KiB at 100 000 simulated clients - %s KiB at 1 000) / 99 000\n' \
        "$(fmt %.0f "$(med s100000 maxrss_kb)")" "$(fmt %.0f "$(med s1000 maxrss_kb)")"
    printf '%-46s %10s  %-8s %s\n' "E1 explore seeds/s" "$(fmt %.0f "$e1")" ">= $E1_TARGET" "$e1_v"
    printf '     %s seeds of %s, one worker per core (%s)\n' "$EXPLORE_SEEDS" "$EXPLORE" "$NCPU"
    printf '%-46s %9s%%  (%s of %s cores)\n' "R3 lockbench CPU share during R1" \
        "$(fmt %.1f "$(calc div "$lb_share" 0.01)")" "$(fmt %.2f "$lb_cores")" "$NCPU"
    printf '%-46s %9s%%  (%s of %s cores; %s%% under redis-benchmark)\n' "   redis-server CPU share during R1" \
        "$(fmt %.1f "$(calc div "$rd_share" 0.01)")" "$(fmt %.2f "$rd_cores")" "$NCPU" \
        "$(fmt %.1f "$(calc div "$rb_rd_share" 0.01)")"
    printf '%-46s %10s  %-8s %s\n' "peak RSS / clients at $nmax clients (KiB)" "$(fmt %.1f "$mem_max")" "<= $MEM_TARGET" "$mem_v"
    printf '     %s KiB per added client: (RSS at %s clients - %s KiB at 1) / %s\n' "$(fmt %.1f "$mem_marginal")" \
        "$nmax" "$(fmt %.0f "$rss1")" "$((nmax - 1))"
    printf '     run length: 50 clients peak at %s KiB in %s ms and %s KiB in %s ms (x%s, at most x1.25) %s\n' \
        "$(fmt %.0f "$rss_short")" "$DUR" "$(fmt %.0f "$rss_long")" "$((DUR * 4))" "$(fmt %.2f "$rss_growth")" "$growth_v"
    echo
    echo "scaling (cycles/s, acquire p99 in ms, peak RSS / clients in KiB)"
    printf '%8s | %10s %9s %8s | %-6s %10s %9s %8s | %s\n' clients "uncontended" p99 KiB/cl wait "contended" p99 KiB/cl "contended by mode (cycles/s)"
    for n in $counts; do
        if [ "$n" -eq 1 ]; then u=c1-poll; else u=u$n; fi
        b=$(best_mode "$n")
        c=c$n-$b
        modes=
        for w in $MODES; do modes="$modes $w $(fmt %.0f "$(med "c$n-$w" throughput_per_s)")"; done
        printf '%8s | %10s %9s %8s | %-6s %10s %9s %8s |%s\n' "$n" \
            "$(fmt %.0f "$(med "$u" throughput_per_s)")" "$(fmt %.3f "$(med "$u" p99_ms)")" \
            "$(fmt %.1f "$(med "$u" kib_per_client)")" "$b" \
            "$(fmt %.0f "$(med "$c" throughput_per_s)")" "$(fmt %.3f "$(med "$c" p99_ms)")" \
            "$(fmt %.1f "$(med "$c" kib_per_client)")" "$modes"
    done
    echo "  (1 client: one key, alone; uncontended N: N keys, one each; contended N: one key)"
    if [ -s "$FAILS" ]; then
        echo
        echo "runs that failed (their figures are left out of the medians):"
        sed 's/^/  /' "$FAILS"
    fi
} > "$TABLE"
cat "$TABLE"

# ---- bench.json ---------------------------------------------------------------------------

ts=$(date +%Y%m%d-%H%M%S)
dir=results/bench/$ts
i=1
while [ -e "$dir" ] && [ "$i" -lt 100 ]; do dir=results/bench/$ts-$i; i=$((i + 1)); done
mkdir -p "$dir" || die "cannot create $dir"

jstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\000-\037')"; }
jlist() { printf '['; sep=; for x in "$@"; do printf '%s%s' "$sep" "$x"; sep=', '; done; printf ']'; }
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "null null null")

# shellcheck disable=SC2086
{
    echo "{"
    echo "  \"started_at\": $(jstr "$STARTED_AT"),"
    echo "  \"finished_at\": $(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),"
    echo "  \"elapsed_s\": $(( $(date +%s) - T_START )),"
    echo "  \"machine\": {\"nproc\": $NCPU, \"cpu_model\": $(jstr "$CPU_MODEL"), \"kernel\": $(jstr "$KERNEL"),"
    echo "              \"redis_server\": $(jstr "$REDIS_VERSION"),"
    echo "              \"loadavg_start\": $(jlist $LOAD_START), \"loadavg_end\": $(jlist $load_end)},"
    echo "  \"settings\": {\"runs\": $RUNS, \"duration_ms\": $DUR, \"set_requests\": $SET_N, \"set_clients\": 50,"
    echo "               \"hist_samples\": $HIST_N, \"clients\": $(jlist $counts),"
    echo "               \"wait_modes\": [\"poll\", \"notify\", \"fifo\"],"
    echo "               \"uncontended_scenario\": $(jstr "$UNCONTENDED"), \"contended_scenario\": $(jstr "$CONTENDED"),"
    printf '               "order": ['; sep=; for c in $ORDER; do printf '%s"%s"' "$sep" "$c"; sep=', '; done; echo "]},"
    echo "  \"ratios\": {"
    echo "    \"r1\": {\"value\": $r1, \"target_min\": $R1_TARGET, \"pass\": $(jbool "$r1_v"),"
    echo "           \"lock_cycles_per_s\": $r1_num, \"set_requests_per_s\": $set_rps, \"half_set_requests_per_s\": $set_half},"
    printf '    "r2": {"value": %s, "target_min": %s, "pass": %s, "best_wait": "%s",\n' "$r2" "$R2_TARGET" "$(jbool "$r2_v")" "$best50"
    printf '           "contended_cycles_per_s": %s, "alone_cycles_per_s": %s,\n' "$r2_num" "$alone"
    printf '           "alone_set_requests_per_s": %s, "alone_of_half_set": %s, "by_wait": {' \
        "$(med set1 requests_per_s)" "$(calc div "$alone" "$(med set1 half_requests_per_s)")"
    sep=
    for w in $MODES; do
        t=$(med "c50-$w" throughput_per_s)
        printf '%s"%s": {"cycles_per_s": %s, "ratio": %s}' "$sep" "$w" "$t" "$(calc div "$t" "$alone")"
        sep=', '
    done
    echo "}},"
    echo "    \"r3\": {\"ns_per_record\": $ns, \"target_max_ns\": $R3_TARGET, \"pass\": $(jbool "$r3_v"),"
    echo "           \"harness_cpu_share\": $lb_share, \"harness_cpu_cores\": $lb_cores,"
    echo "           \"redis_cpu_share\": $rd_share, \"redis_cpu_cores\": $rd_cores,"
    echo "           \"redis_cpu_share_under_redis_benchmark\": $rb_rd_share},"
    echo "    \"s1\": {\"ratio\": $s1, \"target_min\": $S1_TARGET, \"pass\": $(jbool "$s1_v"), \"sim_cycles_per_cpu_s\": $(med s50 cycles_per_cpu_s)},"
    echo "    \"e1\": {\"seeds_per_s\": $e1, \"target_min\": $E1_TARGET, \"pass\": $(jbool "$e1_v"), \"seeds\": $EXPLORE_SEEDS, \"scenario\": \"$EXPLORE\"},"
    echo "    \"s2\": {\"kib_per_simulated_client\": $s2, \"target_max_kib\": $S2_TARGET, \"pass\": $(jbool "$s2_v"), \"rss_kib\": [$(med s1000 maxrss_kb), $(med s100000 maxrss_kb)]},"
    echo "    \"memory\": {\"clients\": $nmax, \"kib_per_client\": $mem_max, \"target_max_kib\": $MEM_TARGET, \"pass\": $(jbool "$mem_v"),"
    echo "               \"marginal_kib_per_client\": $mem_marginal, \"rss_kib_one_client\": $rss1,"
    echo "               \"run_length\": {\"clients\": 50, \"duration_ms\": [$DUR, $((DUR * 4))],"
    echo "                              \"rss_kib\": [$rss_short, $rss_long], \"growth\": $rss_growth, \"target_max_growth\": 1.25}}"
    echo "  },"
    echo "  \"scaling\": ["
    sep=
    for n in $counts; do
        if [ "$n" -eq 1 ]; then u=c1-poll; else u=u$n; fi
        b=$(best_mode "$n")
        c=c$n-$b
        printf '%s    {"clients": %s,\n' "$sep" "$n"
        printf '     "uncontended": {"config": "%s", "throughput_per_s": %s, "p99_ms": %s, "kib_per_client": %s},\n' \
            "$u" "$(med "$u" throughput_per_s)" "$(med "$u" p99_ms)" "$(med "$u" kib_per_client)"
        printf '     "contended": {"config": "%s", "wait": "%s", "throughput_per_s": %s, "p99_ms": %s, "kib_per_client": %s}}' \
            "$c" "$b" "$(med "$c" throughput_per_s)" "$(med "$c" p99_ms)" "$(med "$c" kib_per_client)"
        sep=",
"
    done
    echo
    echo "  ],"
    echo "  \"figures\": {"
    # every configuration's metrics: the median and the per-round values, in round order
    awk -v medfile="$MED" '
        BEGIN { while ((getline line < medfile) > 0) { split(line, f, " "); med[f[1] " " f[2]] = f[3] } }
        { c = $1; m = $2
          if (!(c in seen)) { seen[c] = 1; cs[++nc] = c; nm[c] = 0 }
          if (!((c, m) in mseen)) { mseen[c, m] = 1; ms[c, ++nm[c]] = m }
          vals[c, m] = (vals[c, m] == "" ? "" : vals[c, m] ", ") $4 }
        END {
            for (i = 1; i <= nc; i++) {
                c = cs[i]
                printf "    \"%s\": {\n", c
                for (j = 1; j <= nm[c]; j++) {
                    m = ms[c, j]
                    printf "      \"%s\": {\"median\": %s, \"runs\": [%s]}%s\n", m, med[c " " m], vals[c, m], (j < nm[c] ? "," : "")
                }
                printf "    }%s\n", (i < nc ? "," : "")
            }
        }' "$RAW"
    echo "  },"
    printf '  "failed_runs": ['
    sep=
    while IFS= read -r line; do printf '%s\n    %s' "$sep" "$(jstr "$line")"; sep=,; done < "$FAILS"
    echo "]"
    echo "}"
} > "$dir/bench.json.tmp"

if ! "$BH" get "$dir/bench.json.tmp" settings.runs >/dev/null 2>&1; then
    echo "bench: internal error: $dir/bench.json.tmp is not valid JSON" >&2
    exit 2
fi
mv "$dir/bench.json.tmp" "$dir/bench.json"
cp "$TABLE" "$dir/table.txt.tmp" && mv "$dir/table.txt.tmp" "$dir/table.txt"
ln -sfn "$(basename "$dir")" results/bench/latest 2>/dev/null || true
echo
echo "wrote $dir/bench.json and table.txt ($(( $(date +%s) - T_START )) s)"
[ -s "$FAILS" ] && exit 1
exit 0
