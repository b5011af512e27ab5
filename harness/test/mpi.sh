#!/bin/sh
# lockbench-mpi on two ranks of this machine (mpirun --oversubscribe): the same scenario run by
# one lockbench process and by two ranks gives the same files and the same summary keys plus the
# MPI ones; the counter is exact across the ranks; the clients are split; the clock offset bound
# is reported. Then the bad inputs: ranks with different scenario files stop at the checksum
# (exit 2), and a rank killed part-way takes the job down leaving a summary that says
# "complete": false. explore on two ranks finds the first failing seed one process finds.
# Prints TAP; skips when mpirun is missing or the build is a sanitizer's.
# Run from the repository root: sh harness/test/mpi.sh
# LOCKBENCH names the lockbench binary (default build/lockbench); lockbench-mpi sits beside it.

LOCKBENCH=${LOCKBENCH:-build/lockbench}
MPI=$(dirname "$LOCKBENCH")/lockbench-mpi
case $MPI in /*) MPI_ABS=$MPI;; *) MPI_ABS=$(pwd)/$MPI;; esac  # for ranks started elsewhere
FIX=harness/test/fixtures/mpi

case $LOCKBENCH in
    */san-*) echo "ok 1 - # SKIP $LOCKBENCH: MPI is not run under a sanitizer"
             echo "1..1"
             exit 0 ;;
esac
if ! command -v mpirun >/dev/null 2>&1; then
    echo "ok 1 - # SKIP mpirun not found (make deps installs Open MPI)"
    echo "1..1"
    exit 0
fi

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() {  # check DESCRIPTION COMMAND...
    d=$1; shift
    if "$@"; then ok "$d"; else not_ok "$d"; fi
}

for b in "$LOCKBENCH" "$MPI"; do
    if [ ! -x "$b" ]; then
        not_ok "$b is executable (run make and make mpi first)"
        echo "1..$n"
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
trap 'exit 129' HUP

# Root may run mpirun only when it says so; two ranks on a machine of any size.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
mpi() { timeout -k 5 60 mpirun --oversubscribe -np "$@"; }

# ---- one process against two ranks ------------------------------------------------------------

start=$(date +%s)
"$LOCKBENCH" run "$FIX/counter.json" --out "$tmp/one" --no-plot --quiet >"$tmp/one.log" 2>&1
check "one process: the scenario's expectations hold" [ $? -eq 0 ]
t1=$(date +%s)
mpi 2 "$MPI" run "$FIX/counter.json" --out "$tmp/two" --no-plot --quiet >"$tmp/two.log" 2>&1
rc=$?
t2=$(date +%s)
check "two ranks: exit 0, every expectation holds ($((t2 - t1))s; one process $((t1 - start))s)" \
    [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/two.log"

(cd "$tmp/one" && find . -type f | sort) >"$tmp/files.one"
(cd "$tmp/two" && find . -type f | sort) >"$tmp/files.two"
check "two ranks write the same files as one process" cmp -s "$tmp/files.one" "$tmp/files.two"

python3 - "$tmp/one" "$tmp/two" >"$tmp/cmp.log" 2>&1 <<'EOF'
import json, sys
one = json.load(open(sys.argv[1] + "/summary.json"))
two = json.load(open(sys.argv[2] + "/summary.json"))
def paths(o, p=""):
    out = set()
    if isinstance(o, dict):
        for k, v in o.items():
            out |= {p + k} | paths(v, p + k + ".")
    return out
mpi_keys = {"ranks", "hosts", "clock_offset_bound_us", "clients_per_rank"}
fails = []
if set(two) - set(one) != mpi_keys or set(one) - set(two):
    fails.append("top-level keys: %s against %s" % (sorted(two), sorted(one)))
va, vb = one["variants"][0], two["variants"][0]
if paths(va) != paths(vb):
    fails.append("variant keys differ: %s" % sorted(paths(va) ^ paths(vb)))
vsum = json.load(open(sys.argv[2] + "/default/summary.json"))
if paths(vsum) != paths(va):
    fails.append("default/summary.json keys differ")
c = vb["counter"]
if not (c["actual"] == c["acked"] == c["attempted"] == 200 and c["lost_updates"] == 0):
    fails.append("counter not exact: %s" % c)
clients = [p["client"] for p in vb["fairness"]["per_client"]]
if clients != list(range(5)) or any(p["acquisitions"] != 40 for p in vb["fairness"]["per_client"]):
    fails.append("per-client figures: %s" % vb["fairness"]["per_client"])
if two["ranks"] != 2 or len(two["hosts"]) != 2:
    fails.append("ranks %s, hosts %s" % (two["ranks"], two["hosts"]))
if two["clients_per_rank"] != [3, 2]:
    fails.append("clients_per_rank %s, not [3, 2]" % two["clients_per_rank"])
b = two["clock_offset_bound_us"]
if not isinstance(b, int) or not 0 <= b < 100000:
    fails.append("clock_offset_bound_us %r" % b)
if not two["complete"] or not two["passed"]:
    fails.append("complete %s passed %s" % (two["complete"], two["passed"]))
print("clock_offset_bound_us", b)
for f in fails:
    print("FAIL", f)
sys.exit(1 if fails else 0)
EOF
check "two ranks: same summary keys plus ranks, hosts, clock_offset_bound_us, clients_per_rank; counter exact; clients split 3 + 2; offset bound reported" [ $? -eq 0 ]
sed 's/^/# /' "$tmp/cmp.log"

check "the pause on client 1 was applied by rank 1" \
    grep -q '^20,.*,pause,clients=1,duration_ms=100,applied$' "$tmp/two/default/events.csv"
check "the servers' password is in no output" sh -c "! grep -rqi 'redis://:' '$tmp/two' '$tmp/two.log'"

# ---- an overlap across ranks ----------------------------------------------------------------

# gc-pause: client 0 (rank 0) freezes holding past its lease, client 1 (rank 1) takes the lock:
# neither rank's oracle sees the other's client, rank 0 finds the overlap by the corrected
# clocks, and fencing rejects the stale write -- every expectation as in one process.
mpi 2 "$MPI" run scenarios/faults/gc-pause.json --out "$tmp/gc" --no-plot --quiet \
    >"$tmp/gc.log" 2>&1
rc=$?
check "gc-pause on two ranks: the cross-rank overlap counted, every expectation holds" \
    [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/gc.log"

# The same with the store's count of clients inside (workload.inside_check): the store sees the
# overlap without any clock, and says so in store_overlaps, equal to overlaps in every variant.
mpi 2 "$MPI" run scenarios/faults/gc-pause.json --out "$tmp/gcin" --no-plot --quiet \
    --set workload.inside_check=true >"$tmp/gcin.log" 2>&1
rc=$?
check "gc-pause on two ranks with inside_check: exit 0 (got $rc)" [ "$rc" -eq 0 ]
python3 - "$tmp/gcin/summary.json" >"$tmp/gcin.cmp" 2>&1 <<'PY'
import json, sys
vs = json.load(open(sys.argv[1]))["variants"]
for v in vs:
    print("# %s: overlaps %s, store_overlaps %s" % (v["name"], v["overlaps"], v["store_overlaps"]))
sys.exit(0 if vs and all(v["store_overlaps"] == v["overlaps"] == 1 for v in vs) else 1)
PY
check "... store_overlaps equals overlaps (1) in every variant" [ $? -eq 0 ]
cat "$tmp/gcin.cmp"

# ---- explore: the seeds split over the ranks ---------------------------------------------------

# pause-no-fencing's first failing seed is 7 in one process; on two ranks (rank 0 takes the even
# seeds, rank 1 the odd ones) rank 0 gathers both searches and finds the same seed, with every
# seed below it judged.
explore_check() {  # explore_check DIR SEED MIN_RUN: the first failure, seeds_run, complete
    python3 - "$@" <<'PY'
import json, sys
d, seed, least = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
j = json.load(open(d + "/explore.json"))
first = (j.get("first_failure") or {}).get("seed")
ok = j["complete"] is True and j["seeds_run"] >= least and (seed < 0 and first is None or first == seed)
print("# %s: first failure %s, seeds_run %s, complete %s, ranks %s" %
      (d, first, j["seeds_run"], j["complete"], j.get("ranks")))
sys.exit(0 if ok else 1)
PY
}
"$LOCKBENCH" explore scenarios/explore/pause-no-fencing.json --seeds 40 --out "$tmp/ex1" \
    --quiet >"$tmp/ex1.log" 2>&1
check "explore in one process: seed 7 fails first" explore_check "$tmp/ex1" 7 8
mpi 2 "$MPI" explore scenarios/explore/pause-no-fencing.json --seeds 40 --out "$tmp/ex2" \
    --jobs 1 --quiet >"$tmp/ex2.log" 2>&1
rc=$?
check "explore on two ranks: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "... the same first failing seed, 7; seeds_run >= 8; complete" explore_check "$tmp/ex2" 7 8
check "... the failure written, shrunk, replayed by rank 0" \
    sh -c "[ -f '$tmp/ex2/failure-7.json' ] && [ -f '$tmp/ex2/minimized.json' ] && [ -d '$tmp/ex2/seed-7' ]"
mpi 2 "$MPI" explore scenarios/explore/redlock-kill-aof-always.json --seeds 10 --out "$tmp/ex3" \
    --quiet >"$tmp/ex3.log" 2>&1
rc=$?
check "explore on two ranks, no seed failing: exit 0 (got $rc)" [ "$rc" -eq 0 ]
check "... seeds_run 10, complete" python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(not (j["seeds_run"] == 10 and j["complete"] is True and j["failures"] == 0))' "$tmp/ex3/explore.json"

# ---- bad input: different scenario files behind the same name ------------------------------

mkdir -p "$tmp/r0" "$tmp/r1"
cp "$FIX/counter.json" "$tmp/r0/s.json"
sed 's/"seed": 7/"seed": 8/' "$FIX/counter.json" >"$tmp/r1/s.json"
mpi 2 sh -c 'cd "$0/r$OMPI_COMM_WORLD_RANK" && exec "$1" run s.json --out ../bad --no-plot --quiet' \
    "$tmp" "$MPI_ABS" >"$tmp/bad.log" 2>&1
rc=$?
check "different scenario files on the ranks: exit 2 (got $rc)" [ "$rc" -eq 2 ]
check "... saying which file differs" grep -q 'rank 1 (on .*) has a different s.json' "$tmp/bad.log"
check "... before anything is written" [ ! -e "$tmp/bad" ]

# ---- a rank that dies ------------------------------------------------------------------------

mpirun --oversubscribe -np 2 "$MPI" run "$FIX/long.json" --out "$tmp/dead" --no-plot --quiet \
    >"$tmp/dead.log" 2>&1 &
job=$!
# rank 1's process: a child of mpirun whose environment names rank 1
victim=""
for i in $(seq 1 100); do
    for p in $(ps -o pid= --ppid "$job" 2>/dev/null); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
            victim=$p
        fi
    done
    [ -n "$victim" ] && [ -f "$tmp/dead/summary.json" ] && break
    sleep 0.1
done
if [ -n "$victim" ]; then
    kill -9 "$victim"
    ok "rank 1 killed part-way"
else
    not_ok "rank 1's process found"
fi
waited=0
while kill -0 "$job" 2>/dev/null && [ "$waited" -lt 300 ]; do
    sleep 0.1
    waited=$((waited + 1))
done
if kill -0 "$job" 2>/dev/null; then
    not_ok "the job ended within 30 s of a rank's death"
    kill "$job"
else
    wait "$job"
    rc=$?
    check "the job ended with a failure (status $rc)" [ "$rc" -ne 0 ]
fi
check "the results say \"complete\": false" \
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(s["complete"] is not False)' \
    "$tmp/dead/summary.json"
check "... and hold no variant that looks finished" [ ! -e "$tmp/dead/default/summary.json" ]

# ---- two hosts' addresses: a rank in each of two network namespaces joined by a veth pair ---------
# Where the machine allows it (root, iproute2): mpirun and rank 0 in one namespace, rank 1 in the
# other; the ranks' PMIx and MPI traffic and the clients' Redis traffic cross the veth pair.
ns0=lbmpi$$a ns1=lbmpi$$b
if ip netns add "$ns0" 2>/dev/null; then
    trap 'ip netns del "$ns0" 2>/dev/null; ip netns del "$ns1" 2>/dev/null; rm -rf "$tmp"' EXIT
    ip netns add "$ns1" &&
        ip link add "v$$a" type veth peer name "v$$b" &&
        ip link set "v$$a" netns "$ns0" && ip link set "v$$b" netns "$ns1" &&
        ip -n "$ns0" addr add 10.213.7.1/30 dev "v$$a" && ip -n "$ns1" addr add 10.213.7.2/30 dev "v$$b" &&
        ip -n "$ns0" link set "v$$a" up && ip -n "$ns1" link set "v$$b" up &&
        ip -n "$ns0" link set lo up && ip -n "$ns1" link set lo up
    check "two namespaces joined by a veth pair" [ $? -eq 0 ]
    across() {  # across BIND OUT: the counter scenario, rank 0 in ns0, rank 1 in ns1
        timeout -k 5 60 ip netns exec "$ns0" env PMIX_MCA_ptl_tcp_remote_connections=1 \
            PMIX_MCA_ptl_tcp_if_include="v$$a" mpirun --oversubscribe --mca btl self,vader \
            --mca oob_tcp_if_include "v$$a" \
            -np 1 "$MPI" run "$FIX/counter.json" --bind "$1" --out "$2" --no-plot --quiet : \
            -np 1 ip netns exec "$ns1" "$MPI" run "$FIX/counter.json" --bind "$1" --out "$2" \
            --no-plot --quiet
    }
    across 10.213.7.1 "$tmp/netns" >"$tmp/netns.log" 2>&1
    rc=$?
    check "across the veth pair: the counter is exact (exit $rc)" [ "$rc" -eq 0 ]
    [ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/netns.log"
    check "... two ranks, the clients split 3 + 2" python3 -c 'import json,sys
s = json.load(open(sys.argv[1]))
sys.exit(not (s["ranks"] == 2 and s["clients_per_rank"] == [3, 2] and s["complete"] is True))' \
        "$tmp/netns/summary.json"
    # --bind on an address rank 1 cannot reach (rank 0's loopback): a clear error, exit 3, soon
    start=$(date +%s)
    across 127.0.0.1 "$tmp/unreach" >"$tmp/unreach.log" 2>&1
    rc=$? secs=$(( $(date +%s) - start ))
    check "--bind on an address another rank cannot reach: exit 3 (got $rc)" [ "$rc" -eq 3 ]
    check "... within the command timeout (${secs}s)" [ "$secs" -le 20 ]
    check "... saying which server did not answer" grep -q "did not answer" "$tmp/unreach.log"
    check "... and the results say \"complete\": false" python3 -c 'import json,sys
sys.exit(json.load(open(sys.argv[1]))["complete"] is not False)' "$tmp/unreach/summary.json"
    ip netns del "$ns0"
    ip netns del "$ns1"
else
    ok "# SKIP network namespaces: this machine does not allow them (ip netns add failed)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
