#!/bin/sh
# make demo: the seed's two examples on a redis-server of their own, then the scenarios the
# harness ships (when it is built). Usage: demo.sh BUILD_DIR
set -eu
build=${1:-build}
echo "== Five clients increment one counter under one lock (token algorithm)"
"$build/core/examples/seed_five_clients" token
echo
echo "== A lock that is never released; a second client waits 2 s (legacy algorithm)"
"$build/core/examples/seed_timeout" legacy
if [ -x "$build/lockbench" ] && [ -f scenarios/backoff-comparison.json ]; then
    echo
    for s in seed-five-clients seed-timeout backoff-comparison; do
        "$build/lockbench" run "scenarios/$s.json"
    done
    echo
    echo "Results are in results/<scenario>/latest/ (summary.json, CSVs, plots)."
fi
