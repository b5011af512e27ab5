#!/bin/sh
# make demo: the examples on a redis-server this script starts (a free loopback port, a
# temporary directory; stopped and removed when it ends, Ctrl-C included), then the scenarios the
# harness ships (when it is built), which start servers of their own. Usage: demo.sh BUILD_DIR
set -eu
build=${1:-build}
. "$(dirname "$0")/redis-temp.sh"
trap redis_temp_stop EXIT
trap 'exit 130' INT TERM
redis_temp_start
url=$REDIS_TEMP_URL
echo "== Five clients increment one counter under one lock (token algorithm)"
"$build/core/examples/seed_five_clients" "$url" token
echo
echo "== A lock that is never released; a second client waits 2 s (legacy algorithm)"
"$build/core/examples/seed_timeout" "$url" legacy
echo
echo "== Two clients on a driver of the example's own: poll(2), hiredis, dlock_machine.h"
"$build/core/examples/poll_driver" "$url"
redis_temp_stop
if [ -x "$build/lockbench" ] && [ -f scenarios/backoff-comparison.json ]; then
    echo
    for s in seed-five-clients seed-timeout backoff-comparison; do
        "$build/lockbench" run "scenarios/$s.json"
    done
    echo
    echo "Results are in results/<scenario>/latest/ (summary.json, CSVs, plots)."
fi
