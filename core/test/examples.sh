#!/bin/sh
# The examples of core/examples/ against a redis-server of the test's own (scripts/redis-temp.sh):
# seed_five_clients ends with the counter at 5, seed_timeout's waiter times out and leaves it at
# 1, poll_driver's two clients take the lock in turn and leave no key behind (over TCP and over
# the unix socket), and each example without a URL prints its usage and exits 2. Prints TAP.
# Builds nothing: the examples are those of the build dir given as $1, or else of the one
# run-tests.sh runs (where $LOCKBENCH is). Run from the repository root.
set -u
build=${1:-$(dirname "${LOCKBENCH:-build/lockbench}")}
ex=$build/core/examples

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() {  # check DESCRIPTION CONDITION...: ok, or not ok with the last example's output
    desc=$1; shift
    if "$@"; then
        ok "$desc"
    else
        not_ok "$desc"
        sed 's/^/# /' "$tmp/out"
    fi
}

. scripts/redis-temp.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-examples.XXXXXX") || exit 1
trap 'redis_temp_stop; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

for e in seed_five_clients seed_timeout poll_driver; do
    if [ ! -x "$ex/$e" ]; then
        not_ok "$ex/$e is built (run make first)"
        echo "1..$n"
        exit 1
    fi
done
if ! redis_temp_start 2>"$tmp/out"; then
    not_ok "redis-server starts"
    sed 's/^/# /' "$tmp/out"
    echo "1..$n"
    exit 1
fi
cli() { redis-cli -p "$REDIS_TEMP_PORT" "$@" | tr -d '\r'; }
run() { timeout 60 "$@" >"$tmp/out" 2>&1; }  # an example that hangs fails, within a minute

five_clients() {
    run "$ex/seed_five_clients" "$REDIS_TEMP_URL" token &&
        [ "$(cli GET atomic-counter)" = 5 ]
}
check "seed_five_clients: five clients in turn take the counter to 5" five_clients

times_out() {
    run "$ex/seed_timeout" "$REDIS_TEMP_URL" legacy &&
        grep -q "Received TimeoutException: 'Exceeded timeout of 00:00:02'" "$tmp/out" &&
        [ "$(cli GET atomic-counter)" = 1 ]
}
check "seed_timeout: the waiter times out after 2 s, the counter stays at 1" times_out

# A took the lock first, B took it only once A's 300 ms hold was over, having waited meanwhile;
# both released it; and no key of the example's is left.
took_in_turn() {
    run "$ex/poll_driver" "$1" || return 1
    took=$(grep -oE '[AB]: took the lock' "$tmp/out" | cut -c1 | tr -d '\n')
    [ "$took" = AB ] &&
        [ "$(grep -c 'released the lock: ok$' "$tmp/out")" = 2 ] &&
        grep -q ' B: next try in ' "$tmp/out" &&
        awk '/ B: took the lock/ { exit !($1 >= 300) }' "$tmp/out" &&
        [ -z "$(cli --scan --pattern 'poll-driver:*')" ]
}
check "poll_driver over TCP: A, then B once A released; no key left" took_in_turn "$REDIS_TEMP_URL"
check "poll_driver over the unix socket: the same" took_in_turn "unix://$REDIS_TEMP_SOCK"

usage() {
    for e in seed_five_clients seed_timeout poll_driver; do
        "$ex/$e" >"$tmp/out" 2>&1
        [ $? -eq 2 ] && grep -q '^usage: ' "$tmp/out" || return 1
    done
}
check "without a URL each example prints its usage and exits 2" usage

echo "1..$n"
[ "$failed" -eq 0 ]
