# Shell helpers shared by bench/run.sh and scripts/soak.sh (sourced).

# free_port: sets FREE to a port nothing uses, below the ephemeral range so
# that our own outgoing connections cannot take it. Bounded attempts.
declare -A TAKEN=()
free_port() {
    local i port
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 12000))
        [[ -z ${TAKEN[$port]:-} ]] || continue
        if [[ -z $(ss -Htan "sport = :$port") ]]; then
            TAKEN[$port]=1
            FREE=$port
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

# stop NAME: SIGTERM, up to 5 s, then SIGKILL; only processes we started
# (PID[NAME], the caller's associative array).
stop() {
    local pid=${PID[$1]:-}
    [[ -n $pid ]] || return 0
    unset "PID[$1]"
    kill -TERM "$pid" 2>/dev/null || return 0
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
