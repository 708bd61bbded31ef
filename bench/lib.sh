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

# measure_relay VARIANT SIZE ROUND: one throughput window against URL[VARIANT]
# (watching PID[VARIANT]); size, variant, round, CPU per relayed message (µs)
# and echoes per second go to RESULTS. The relay scripts set BIN, TMP,
# CONNS, INFLIGHT, WARMUP, WINDOW and LOADGEN_TIMEOUT.
measure_relay() {
    local variant=$1 size=$2 round=$3 out cpu rate
    if out=$(timeout "$LOADGEN_TIMEOUT" "$BIN/loadgen" --url "${URL[$variant]}" \
        --watch "${PID[$variant]}" --clk-tck "$(getconf CLK_TCK)" throughput \
        --conns "$CONNS" --inflight "$INFLIGHT" --size "$size" \
        --warmup "$WARMUP" --duration "$WINDOW" 2>>"$TMP/loadgen.err"); then
        cpu=$(awk '$1 == "cpu_us_per_msg" { print $2 }' <<<"$out")
        rate=$(awk '$1 == "msgs_per_s" { print $2 }' <<<"$out")
        printf '%s\t%s\t%s\t%s\t%s\n' "$size" "$variant" "$round" "$cpu" "$rate" >>"$RESULTS"
    else
        log "$variant at $size B (round $round) failed: $(tail -n 1 "$TMP/loadgen.err")"
    fi
}
