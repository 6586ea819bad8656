#!/usr/bin/env bash
# bench_load.sh: training throughput with another CPU-heavy process on the machine (issue 20).
#
# `make demo`'s training (lenet on the Fashion-MNIST FER tree, batch 32, the demo's flags) for
# STEPS steps, on a quiet machine and with one busy-looping process beside it ("one of the
# two cores taken" on the 2-core build machine), each with
#   tools    slimnet-train as shipped: it sets GOMP_SPINCOUNT=100 (cmd/common/tool.c), so
#            OpenMP threads that wait give their core up almost at once;
#   libgomp  libgomp's default wait (GOMP_SPINCOUNT=300000, spelled out so that the tool
#            keeps it): waiting threads spin for a long while before they sleep.
# Every cell is the best of REPEATS runs; the ratio is loaded / quiet images/s.
#   make && bash benchmarks/bench_load.sh
# Raw logs in $LOG (default build/bench_load).  Run it on an otherwise quiet machine.
set -u
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1500}
REPEATS=${REPEATS:-2}
LOG=${LOG:-build/bench_load}
BIN=build/bin
. benchmarks/demo_data.sh
demo_data bench_load "$LOG"

hog_pid=
hog_start() { sh -c 'while :; do :; done' & hog_pid=$!; sleep 0.5; }
hog_stop() { [ -n "$hog_pid" ] && kill "$hog_pid" 2> /dev/null; wait "$hog_pid" 2> /dev/null; hog_pid=; }
trap hog_stop EXIT

run() {   # name env... -> images/s of the best run
    local name=$1 best=0 r
    shift
    for i in $(seq "$REPEATS"); do
        rm -rf "$LOG/train"
        env "$@" "$BIN/slimnet-train" --dataset_name=fer --dataset_dir="$LOG/data" \
            --train_dir="$LOG/train" --model_name=lenet --optimizer=momentum \
            --learning_rate=0.01 --learning_rate_decay_type=polynomial \
            --num_epochs_per_decay=6.6 --weight_decay=0 --batch_size=32 --use_grayscale \
            --max_number_of_steps="$STEPS" --log_every_n_steps=500 --save_interval_secs=0 \
            --save_summaries_secs=0 > "$LOG/$name.$i.log" 2>&1
        r=$(sed -n 's/.*finished at .* (\([0-9.]*\) images\/s).*/\1/p' "$LOG/$name.$i.log")
        [ -n "$r" ] || { echo "bench_load: $name failed, see $LOG/$name.$i.log" >&2; exit 1; }
        best=$(echo "$r $best" | awk '{print ($1 > $2) ? $1 : $2}')
    done
    echo "$best"
}

echo "bench_load: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "lenet batch 32, $STEPS steps, best of $REPEATS"
quiet_tools=$(run quiet_tools)
quiet_gomp=$(run quiet_libgomp GOMP_SPINCOUNT=300000)
hog_start
load_tools=$(run load_tools)
load_gomp=$(run load_libgomp GOMP_SPINCOUNT=300000)
hog_stop
printf '| wait policy | quiet images/s | one core taken, images/s | loaded / quiet |\n'
printf '|---|---|---|---|\n'
printf '| tools (GOMP_SPINCOUNT=100) | %s | %s | %s |\n' "$quiet_tools" "$load_tools" \
    "$(awk -v a="$load_tools" -v b="$quiet_tools" 'BEGIN {printf "%.0f%%", 100 * a / b}')"
printf '| libgomp default (300000) | %s | %s | %s |\n' "$quiet_gomp" "$load_gomp" \
    "$(awk -v a="$load_gomp" -v b="$quiet_gomp" 'BEGIN {printf "%.0f%%", 100 * a / b}')"
