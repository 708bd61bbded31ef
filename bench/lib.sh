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
