# redis-temp.sh -- sourced, not run: a throwaway redis-server on a free loopback port and a unix
# socket, in a temporary directory of its own, for the shell scripts that need one (demo.sh and
# core/test/examples.sh; the C tests have harness/servers.c).
#
#     . scripts/redis-temp.sh
#     trap redis_temp_stop EXIT
#     trap 'exit 130' INT TERM     # so that Ctrl-C and timeout(1) run the EXIT trap
#     redis_temp_start || exit 1   # sets REDIS_TEMP_URL, _PORT, _SOCK, _DIR, _PID
#
# The port is drawn at random below 32768, out of the kernel's ephemeral range where other
# programs' connections (and the harness's kernel-picked ports) live. A port someone holds makes
# redis-server exit with "Address already in use", and another is drawn. The server is ours once
# INFO answers with its process id: a PONG from a server someone else started does not count.

REDIS_TEMP_DIR="" REDIS_TEMP_PID="" REDIS_TEMP_PORT="" REDIS_TEMP_SOCK="" REDIS_TEMP_URL=""

# True while the server process lives (a zombie, dead but not yet reaped, does not).
_redis_temp_alive() {
    [ -n "$REDIS_TEMP_PID" ] && [ -r "/proc/$REDIS_TEMP_PID/stat" ] &&
        ! grep -q ') Z ' "/proc/$REDIS_TEMP_PID/stat" 2>/dev/null
}

# 0 once our server answers; 1 when it exited (its log says why) or did not answer within 10 s.
_redis_temp_ready() {
    deadline=$(( $(date +%s) + 10 ))
    while [ "$(date +%s)" -le "$deadline" ]; do
        _redis_temp_alive || return 1
        if [ "$(redis-cli -p "$REDIS_TEMP_PORT" PING 2>/dev/null)" = PONG ] &&
           redis-cli -p "$REDIS_TEMP_PORT" INFO server 2>/dev/null | tr -d '\r' |
               grep -qx "process_id:$REDIS_TEMP_PID"; then
            return 0
        fi
        sleep 0.02
    done
    return 1
}

redis_temp_start() {
    REDIS_TEMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lockbench-redis.XXXXXX") || return 1
    REDIS_TEMP_SOCK=$REDIS_TEMP_DIR/redis.sock
    for _attempt in 1 2 3 4 5 6 7 8; do
        REDIS_TEMP_PORT=$(( 10000 + $(od -An -N2 -tu2 /dev/urandom) % 22000 ))
        redis-server --port "$REDIS_TEMP_PORT" --bind 127.0.0.1 --unixsocket "$REDIS_TEMP_SOCK" \
            --save '' --appendonly no --dir "$REDIS_TEMP_DIR" --daemonize no \
            >"$REDIS_TEMP_DIR/redis.log" 2>&1 &
        REDIS_TEMP_PID=$!
        if _redis_temp_ready; then
            REDIS_TEMP_URL=redis://127.0.0.1:$REDIS_TEMP_PORT
            return 0
        fi
        grep -q 'Address already in use' "$REDIS_TEMP_DIR/redis.log" || break
        wait "$REDIS_TEMP_PID" 2>/dev/null || true
        REDIS_TEMP_PID=""
    done
    echo "redis-server did not start on port $REDIS_TEMP_PORT:" >&2
    tail -n 5 "$REDIS_TEMP_DIR/redis.log" >&2
    redis_temp_stop
    return 1
}

# SIGTERM, SIGKILL if it still lives after 5 s; reaps it and removes its directory. Safe to call
# twice, before a start, and under set -e (where a kill of a server already gone must not end
# the trap before the directory is removed).
redis_temp_stop() {
    if [ -n "$REDIS_TEMP_PID" ]; then
        kill "$REDIS_TEMP_PID" 2>/dev/null || true
        deadline=$(( $(date +%s) + 5 ))
        while _redis_temp_alive && [ "$(date +%s)" -le "$deadline" ]; do
            sleep 0.02
        done
        kill -9 "$REDIS_TEMP_PID" 2>/dev/null || true
        wait "$REDIS_TEMP_PID" 2>/dev/null || true
        REDIS_TEMP_PID=""
    fi
    if [ -n "$REDIS_TEMP_DIR" ]; then
        rm -rf "$REDIS_TEMP_DIR"
    fi
    REDIS_TEMP_DIR=""
    return 0
}
