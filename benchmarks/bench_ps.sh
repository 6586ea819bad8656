#!/usr/bin/env bash
# bench_ps.sh: asynchronous training on parameter servers on one machine (issue 16):
# slimnet-train as 1 process x 1 thread, and as TF_CONFIG's 1 ps + 2 workers (the master
# and a worker, 1 thread each: three processes on this machine's cores).  The job's
# throughput is the master's steady global images/s (every worker's pushes count); beside
# it the ps task's pushes/s, and Gloo's raw rate for an exchange of the same bytes
# (bench_allreduce p2p: a message of the push's size and an answer of the pull's).
#   make && bash benchmarks/bench_ps.sh [model ...]      (default: lenet cifarnet)
# Every cell is the best of REPEATS runs (default 2); the data is make demo's FER tree of
# Fashion-MNIST (written to $LOG/data on first use).  Run it on an otherwise quiet machine.
set -u
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-2}
LOG=${LOG:-build/bench_ps}
BIN=build/bin
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(lenet cifarnet)
. benchmarks/demo_data.sh
demo_data bench_ps "$LOG"
[ -x "$BIN/bench_allreduce" ] || { echo "bench_ps: $BIN/bench_allreduce missing (make)" >&2; exit 2; }

echo "bench_ps: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), best of $REPEATS"
printf '| model (batch) | 1 process x 1 thread | 1 ps + 2 workers | ratio | staleness | master waiting on the ps | ps pushes/s | Gloo exchanges/s, same bytes | of Gloo |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for m in "${MODELS[@]}"; do
    one=() two=() stale=() wait=() pushes=()
    for r in $(seq "$REPEATS"); do
        train "$m.one.$r" "$m" "" "$LOG/run_one"
        one+=("$(rate "$LOG/$m.one.$r.log")")
        port=$((20000 + RANDOM % 20000))
        cl="\"cluster\": {\"master\": [\"127.0.0.1:$((port + 1))\"], \"ps\": [\"127.0.0.1:$port\"], \"worker\": [\"127.0.0.1:$((port + 2))\"]}"
        train "$m.ps.$r" "$m" "{$cl, \"task\": {\"type\": \"ps\", \"index\": 0}}" "$LOG/run_ps" &
        train "$m.worker.$r" "$m" "{$cl, \"task\": {\"type\": \"worker\", \"index\": 0}}" \
            "$LOG/run_worker" &
        train "$m.master.$r" "$m" "{$cl, \"task\": {\"type\": \"master\", \"index\": 0}}" \
            "$LOG/run_master"
        wait
        two+=("$(rate "$LOG/$m.master.$r.log")")
        stale+=("$(sed -n 's/.*staleness \([0-9.]*\)).*/\1/p' "$LOG/$m.master.$r.log" | tail -1)")
        wait+=("$(sed -n 's/.*images\/s, \([0-9]*\)% waiting on the ps.*/\1/p' \
                  "$LOG/$m.master.$r.log" | tail -n +2 | awk '{s += $1; n++} END {if (n) printf "%.0f", s / n}')")
        pushes+=("$(sed -n 's/.*pushes applied (\([0-9.]*\)\/s).*/\1/p' "$LOG/$m.ps.$r.log")")
    done
    o=$(best "${one[@]}") t=$(best "${two[@]}") p=$(best "${pushes[@]}")
    mb=$(sed -n 's/.*holding [0-9]* variables (\([0-9.e+-]*\) MB.*/\1/p' "$LOG/$m.ps.1.log")
    bytes=$(awk -v m="$mb" 'BEGIN {printf "%.0f", m * 1e6}')
    g=$("$BIN/bench_allreduce" p2p "$bytes" | sed -n 's/.* | \([0-9.]*\) exchanges\/s .*/\1/p')
    read -r _ batch _ < <(setup "$m")
    printf '| %s (%s) | %s | %s | %s | %s | %s%% | %s | %s | %s |\n' "$m" "$batch" "$o" "$t" \
        "$(awk -v a="$t" -v b="$o" 'BEGIN {printf "%.2fx", a / b}')" \
        "$(printf '%s\n' "${stale[@]}" | sort -g | head -1)" \
        "$(printf '%s\n' "${wait[@]}" | sort -g | head -1)" "$p" "$g" \
        "$(awk -v a="$p" -v b="$g" 'BEGIN {printf "%.0f%%", (b > 0 ? 100 * a / b : 0)}')"
done
