#!/usr/bin/env bash
# bench_dist.sh: synchronous data-parallel training on one machine (issue 14): slimnet-train
# as 1 process x 1 thread, as 2 processes x 1 thread (a chief and a worker through
# TF_CONFIG, each with the batch: twice the images a step), and, as the machine's own
# ceiling for two processes, two independent 1-process runs side by side (no communication).
#   make && bash benchmarks/bench_dist.sh [model[:batch] ...]
#   (default: lenet cifarnet resnet_v1_50 lenet:64; the batch is a process's)
# Throughput is the steady state: the mean images/s of the progress lines after the first.
# Every cell is the best of REPEATS runs (default 2); the data is make demo's FER tree of
# Fashion-MNIST (written to $LOG/data on first use).  Run it on an otherwise quiet machine.
set -u
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-2}
LOG=${LOG:-build/bench_dist}
BIN=build/bin
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(lenet cifarnet resnet_v1_50 lenet:64)
. benchmarks/demo_data.sh
demo_data bench_dist "$LOG"

echo "bench_dist: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), best of $REPEATS"
printf '| model (batch a process) | 1 process x 1 thread | 2 processes x 1 thread | speed-up | two independent processes (ceiling) | of the ceiling | all-reduce share |\n'
printf '|---|---|---|---|---|---|---|\n'
for m in "${MODELS[@]}"; do
    one=() two=() ind=() share=()
    for r in $(seq "$REPEATS"); do
        train "$m.one.$r" "$m" "" "$LOG/run_one"
        one+=("$(rate "$LOG/$m.one.$r.log")")
        port=$((20000 + RANDOM % 20000))
        cl="\"cluster\": {\"chief\": [\"127.0.0.1:$port\"], \"worker\": [\"127.0.0.1:$((port + 1))\"]}"
        train "$m.worker.$r" "$m" "{$cl, \"task\": {\"type\": \"worker\", \"index\": 0}}" \
            "$LOG/run_worker" &
        train "$m.two.$r" "$m" "{$cl, \"task\": {\"type\": \"chief\", \"index\": 0}}" "$LOG/run_two"
        wait
        two+=("$(rate "$LOG/$m.two.$r.log")")
        share+=("$(sed -n 's/.*images\/s, \([0-9]*\)% in all-reduce.*/\1/p' "$LOG/$m.two.$r.log" |
                   tail -n +2 | awk '{s += $1; n++} END {if (n) printf "%.0f", s / n}')")
        train "$m.ind_a.$r" "$m" "" "$LOG/run_a" &
        train "$m.ind_b.$r" "$m" "" "$LOG/run_b"
        wait
        ind+=("$(awk -v a="$(rate "$LOG/$m.ind_a.$r.log")" -v b="$(rate "$LOG/$m.ind_b.$r.log")" \
                 'BEGIN {printf "%.3f", a + b}')")
    done
    o=$(best "${one[@]}") t=$(best "${two[@]}") c=$(best "${ind[@]}")
    read -r model batch _ < <(setup "$m")
    printf '| %s (%s) | %s | %s | %s | %s | %s | %s%% |\n' "$model" "$batch" "$o" "$t" \
        "$(awk -v a="$t" -v b="$o" 'BEGIN {printf "%.2fx", a / b}')" "$c" \
        "$(awk -v a="$t" -v b="$c" 'BEGIN {printf "%.0f%%", 100 * a / b}')" \
        "$(printf '%s\n' "${share[@]}" | sort -g | head -1)"
done
