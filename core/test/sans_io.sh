#!/bin/sh
# The machines are sans-I/O: the object files of the operation machine (op.c), the algorithms'
# step functions and the back-off call nothing that reads a clock, sleeps, draws randomness or
# does I/O -- checked on what they link against (nm -u), so no indirect way in is missed among
# the functions they call by name. Only the drivers (driver.c, async.c, client.c, loop.c,
# renew.c, entropy.c) may. Prints TAP. Uses the build dir given as $1, or the one run-tests.sh
# runs (where $LOCKBENCH is).
set -u
build=${1:-$(dirname "${LOCKBENCH:-build/lockbench}")}
pure="op token legacy redlock wait_notify wait_fifo backoff steps"
# what a machine may call: memory, strings, formatting, math, and the pure core
allowed='^(_GLOBAL_OFFSET_TABLE_|__errno_location|ldexp|__(asan|ubsan|tsan|sanitizer|msan|lsan)_.*|malloc|calloc|realloc|free|mem(cpy|set|move|cmp)|str(len|cmp|ncmp|dup|chr|str|spn|toull|toll|tol|toul)|atoll?|atoi|v?snprintf|__.*chk.*|__assert_fail|log|exp|pow|sqrt|floor|ceil|fmin|fmax|dlock__.*|dlock_options_init)$'
# of the core's own functions, these touch the world
forbidden='^(dlock__mono_us|dlock__wall_ms|dlock__random_bytes|dlock__exchange.*|dlock__client_.*|dlock__answers_.*|dlock__connect|dlock__sigpipe_.*|dlock__renew_.*|dlock__loop_.*)$'

n=0
failed=0
for f in $pure; do
    obj=$build/core/$f.o
    n=$((n + 1))
    if [ ! -f "$obj" ]; then
        failed=$((failed + 1))
        echo "not ok $n - $obj is built (run make first)"
        continue
    fi
    bad=$(nm -u "$obj" | awk '{print $NF}' | sed 's/@.*//' |
          grep -Ev "$allowed" ; nm -u "$obj" | awk '{print $NF}' | grep -E "$forbidden")
    if [ -z "$bad" ]; then
        echo "ok $n - core/$f.c calls no clock, sleep, randomness or I/O"
    else
        failed=$((failed + 1))
        echo "not ok $n - core/$f.c calls what a machine must not: $(echo $bad)"
    fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
