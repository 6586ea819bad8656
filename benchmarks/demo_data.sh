# demo_data.sh: sourced by the training benchmarks (bench_load.sh, bench_dist.sh, bench_ps.sh).
#   demo_data NAME LOG   checks build/bin's tools, then writes make demo's Fashion-MNIST FER
#                        tree and its converted dataset to LOG/data on first use.
#   setup, rate, best, train: the distributed benchmarks' runs (below; they read $BIN and
#                        $LOG).
demo_data() {
    local name=$1 log=$2 bin=build/bin t
    local fmnist=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
    mkdir -p "$log"
    for t in slimnet-demo slimnet-convert slimnet-train; do
        [ -x "$bin/$t" ] || { echo "$name: $bin/$t missing (make)" >&2; exit 2; }
    done
    [ -f "$log/data/info.json" ] && return 0
    rm -rf "$log/pics" "$log/data"
    "$bin/slimnet-demo" --data_dir="$fmnist" --fer_tree="$log/pics" --samples="$log/samples" \
        > "$log/demo.log" 2>&1 &&
    "$bin/slimnet-convert" --dataset_name=fer --pic_path="$log/pics" --dataset_dir="$log/data" \
        > "$log/convert.log" 2>&1 || { echo "$name: making the data failed" >&2; exit 1; }
}

# model[:batch] -> model, batch, steps, progress interval, extra flags (a larger batch
# takes proportionally fewer steps)
setup() {
    local m=${1%%:*} b=${1#*:} row
    case "$m" in
        lenet) row="32 900 100 --use_grayscale" ;;
        cifarnet) row="32 300 50" ;;
        resnet_v1_50) row="8 14 3" ;;
        *) row="8 20 4" ;;
    esac
    read -r batch steps every extra <<< "$row"
    if [ "$b" != "$1" ]; then
        steps=$((steps * batch / b)) every=$((every * batch / b)) batch=$b
    fi
    echo "$m $batch $steps $every $extra"
}

# steady images/s of a log: the mean of the progress lines after the first
rate() { sed -n 's/.*, \([0-9.]*\) images\/s.*/\1/p' "$1" | tail -n +2 |
         awk '{s += $1; n++} END {if (n) printf "%.3f", s / n; else print "0"}'; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }

train() {   # name model tf_config(or "") train_dir -> runs slimnet-train
    local name=$1 model=$2 tf=$3 dir=$4
    read -r model batch steps every extra < <(setup "$model")
    rm -rf "$dir"
    env ${tf:+TF_CONFIG="$tf"} "$BIN/slimnet-train" --dataset_name=fer --dataset_dir="$LOG/data" \
        --train_dir="$dir" --model_name="$model" --batch_size="$batch" --threads=1 \
        --num_preprocessing_threads=1 --optimizer=sgd --max_number_of_steps="$steps" \
        --log_every_n_steps="$every" --save_interval_secs=0 --save_summaries_secs=0 \
        $extra > "$LOG/$name.log" 2>&1
}
