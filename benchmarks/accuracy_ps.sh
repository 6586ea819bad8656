#!/usr/bin/env bash
# accuracy_ps.sh: what asynchronous training costs in accuracy (issue 16), beside TensorFlow.
# make demo's recipe (lenet, momentum 0.9, learning rate 0.01 decayed polynomially, batch 32,
# 10,000 global steps, --use_grayscale) on make demo's FER tree of Fashion-MNIST, trained
#   slimnet local   one slimnet-train process
#   slimnet async   the vendor's TF_CONFIG shape: master + 2 ps + worker, the same command
#   tf local        benchmarks/tf_ps_accuracy.py --ps 0 --workers 1 (TensorFlow, one session)
#   tf async        benchmarks/tf_ps_accuracy.py --ps 2 --workers 2 (TensorFlow's own
#                   between-graph replication on tf.distribute.Server tasks)
# once per seed, each then evaluated on the 21,000 test images; one thread per process.
#   make && bash benchmarks/accuracy_ps.sh                 (all four rows, SEEDS="1 2")
#   ROWS="tf_local tf_async" SEEDS=3 bash benchmarks/accuracy_ps.sh
# Each run appends a line "row seed accuracy seconds" to $LOG/results.txt (kept across
# calls); the table printed last is the mean and spread of every row over all its lines.
# A run takes 15-35 minutes of a quiet 2-core machine; accuracy does not depend on load.
set -u
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-1 2}
ROWS=${ROWS:-slimnet_local slimnet_async tf_local tf_async}
STEPS=${STEPS:-10000}
LOG=${LOG:-build/accuracy_ps}
BIN=build/bin
PY=${PY:-tests/reference/.venv/bin/python}
. benchmarks/demo_data.sh
demo_data accuracy_ps "$LOG"
FLAGS=(--dataset_name=fer --dataset_dir="$LOG/data" --model_name=lenet --optimizer=momentum
       --learning_rate=0.01 --learning_rate_decay_type=polynomial --num_epochs_per_decay=6.6
       --weight_decay=0 --batch_size=32 --max_number_of_steps="$STEPS" --use_grayscale
       --threads=1 --num_preprocessing_threads=1 --log_every_n_steps=1000
       --save_interval_secs=0 --save_summaries_secs=0)

slimnet_eval() {   # train_dir -> accuracy
    "$BIN/slimnet-eval" --dataset_name=fer --dataset_dir="$LOG/data" --checkpoint_path="$1" \
        --model_name=lenet --use_grayscale --threads=1 2>&1 |
        sed -n 's/^eval\/Accuracy\[\([0-9.]*\)\]$/\1/p'
}

run() {   # row seed -> appends "row seed accuracy seconds" to results.txt
    local row=$1 seed=$2 dir="$LOG/$1.$2" t0 acc port cl tf
    rm -rf "$dir" && mkdir -p "$dir"
    t0=$(date +%s)
    case "$row" in
    slimnet_local)
        "$BIN/slimnet-train" "${FLAGS[@]}" --seed="$seed" --train_dir="$dir/train" \
            > "$dir/train.log" 2>&1 || { echo "accuracy_ps: $row failed: $dir/train.log" >&2; return 1; }
        acc=$(slimnet_eval "$dir/train") ;;
    slimnet_async)
        port=$((20000 + RANDOM % 20000))
        cl="\"cluster\": {\"master\": [\"127.0.0.1:$port\"], \"ps\": [\"127.0.0.1:$((port + 1))\", \"127.0.0.1:$((port + 2))\"], \"worker\": [\"127.0.0.1:$((port + 3))\"]}"
        for tf in "ps 0" "ps 1" "worker 0" "master 0"; do
            set -- $tf
            TF_CONFIG="{$cl, \"task\": {\"type\": \"$1\", \"index\": $2}}" \
                "$BIN/slimnet-train" "${FLAGS[@]}" --seed="$seed" --train_dir="$dir/train" \
                > "$dir/$1$2.log" 2>&1 &
        done
        wait
        acc=$(slimnet_eval "$dir/train") ;;
    tf_local | tf_async)
        local shape="--ps 0 --workers 1"
        [ "$row" = tf_async ] && shape="--ps 2 --workers 2"
        "$PY" benchmarks/tf_ps_accuracy.py --data_dir="$LOG/data" --out="$dir/train" $shape \
            --steps="$STEPS" --seed="$seed" > "$dir/train.log" 2>&1 ||
            { echo "accuracy_ps: $row failed: $dir/train.log" >&2; return 1; }
        acc=$(sed -n 's/.*: accuracy \([0-9.]*\) .*/\1/p' "$dir/train.log") ;;
    *) echo "accuracy_ps: unknown row $row" >&2; return 2 ;;
    esac
    [ -n "$acc" ] || { echo "accuracy_ps: $row seed $seed: no accuracy ($dir)" >&2; return 1; }
    echo "$row $seed $acc $(( $(date +%s) - t0 ))" | tee -a "$LOG/results.txt"
}

case " $ROWS " in *" tf_"*) [ -x "$PY" ] || { echo "accuracy_ps: $PY missing (bash tests/reference/setup.sh)" >&2; exit 2; } ;; esac
for seed in $SEEDS; do
    for row in $ROWS; do run "$row" "$seed"; done
done
echo "accuracy_ps: $(nproc) CPUs, $STEPS global steps, lenet on make demo's data"
printf '| run | seeds | accuracy, mean | min | max | minutes each |\n|---|---|---|---|---|---|\n'
for row in slimnet_local slimnet_async tf_local tf_async; do
    awk -v r="$row" '$1 == r {n++; s += $3; t += $4; if (n == 1 || $3 < lo) lo = $3;
                                if (n == 1 || $3 > hi) hi = $3; seeds = seeds (n > 1 ? "," : "") $2}
        END {if (n) printf "| %s | %s | %.2f%% | %.2f%% | %.2f%% | %.0f |\n", r, seeds,
                              100 * s / n, 100 * lo, 100 * hi, t / n / 60}' "$LOG/results.txt"
done
