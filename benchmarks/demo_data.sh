# demo_data.sh: sourced by the training benchmarks (bench_load.sh, bench_dist.sh).
#   demo_data NAME LOG   checks build/bin's tools, then writes make demo's Fashion-MNIST FER
#                        tree and its converted dataset to LOG/data on first use.
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
