#!/bin/sh
# Runs every test program of a build (cmocka binaries in BUILD/core/test and BUILD/harness/test,
# shell tests in core/test/*.sh and harness/test/*.sh), each as TAP, and ends with "N passed, N failed".
# A program that dies or exits non-zero without reporting a failure counts as one failure.
# The long pole (TEST_BESIDE, default test_e2e: half the suite's time, mostly waiting on the runs
# it starts) runs beside the others instead of after them; its report comes last.
# TEST_BESIDE= runs everything in turn.
# Usage: run-tests.sh BUILD_DIR [NAME-FILTER]
set -u
build=${1:-build}
filter=${2:-}
beside=${TEST_BESIDE-test_e2e}
export CMOCKA_MESSAGE_OUTPUT=TAP
export LOCKBENCH="$build/lockbench"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
limit=${TEST_TIME_LIMIT:-600}

passed=0 failed=0 failures=""
work=$(mktemp -d) || exit 1
log=$work/log
trap 'rm -rf "$work"' EXIT

run_one() {  # run_one NAME COMMAND...
    name=$1; shift
    start=$(date +%s)
    timeout -k 5 "$limit" "$@" >"$log" 2>&1
    rc=$?
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        [ "$rc" -eq 124 ] && echo "# $name: killed after ${limit}s" >>"$log"
        echo "# $name: exited with status $rc" >>"$log"
    fi
    passed=$((passed + p)) failed=$((failed + f))
    printf '%-40s %3d passed, %d failed  (%ss)\n' "$name" "$p" "$f" "$(( $(date +%s) - start ))"
    if [ "$f" -gt 0 ]; then
        failures="$failures $name"
        sed 's/^/    /' "$log"
    fi
}

# The long pole in a subshell of its own (its log, its counts in a file), started first.
bg=
for t in "$build"/core/test/test_* "$build"/harness/test/test_*; do
    case " $beside " in *" $(basename "$t") "*) ;; *) continue ;; esac
    [ -x "$t" ] || continue
    case "$t" in *"$filter"*) ;; *) continue ;; esac
    (
        log=$work/beside.log passed=0 failed=0 failures=""
        run_one "$(basename "$t")" "$t" >"$work/beside.out"
        echo "$passed $failed$failures" >"$work/beside.count"
    ) &
    bg="$bg $!"
done

for t in "$build"/core/test/test_* "$build"/harness/test/test_*; do
    case "$t" in *.o|*.d) continue ;; esac
    [ -x "$t" ] || continue
    case "$t" in *"$filter"*) ;; *) continue ;; esac
    case " $beside " in *" $(basename "$t") "*) continue ;; esac
    run_one "$(basename "$t")" "$t"
done
for t in core/test/*.sh harness/test/*.sh; do
    [ -f "$t" ] || continue
    case "$t" in *"$filter"*) ;; *) continue ;; esac
    run_one "$(basename "$t")" sh "$t"
done

if [ -n "$bg" ]; then
    # shellcheck disable=SC2086
    wait $bg
    cat "$work/beside.out"
    if read -r p f rest <"$work/beside.count"; then
        passed=$((passed + p)) failed=$((failed + f))
        [ -n "$rest" ] && failures="$failures $rest"
    else
        failed=$((failed + 1)) failures="$failures beside:$beside"
        echo "# $beside: reported nothing"
    fi
fi

[ -n "$failures" ] && echo "failed:$failures"
[ -n "${TEST_TALLY:-}" ] && echo "$passed $failed" >>"$TEST_TALLY"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
