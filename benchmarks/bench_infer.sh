#!/usr/bin/env bash
# bench_infer.sh: CPU inference images/s of the zoo's reference networks, slimnet next to its
# peers in the same run (issue 5):
#   slimnet     build/bin/bench_train --infer 1 (one forward pass in inference mode: batch norm
#               on the moving statistics, no dropout; median of the timed passes)
#   TensorFlow  benchmarks/tf_train_cpu.py --infer 1 (TF 2.12.1 CPU wheel with oneDNN, the same
#               tf_slim / research-slim network, a session run of its logits)
#   darknet     `darknet speed` (Debian package darknet, OpenBLAS) on its own resnet50 and
#               vgg-16 cfg with the input set to 224x224 like the TF-slim networks; darknet's
#               speed command runs batch 1 only.
# Every side gets THREADS threads (default 2).  Run it on a quiet machine:
#   make bench && bash benchmarks/bench_infer.sh [models...]
# Prints one markdown row per (model, batch) and writes the raw logs to $LOG (default
# build/bench_infer).
set -u
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
LOG=${LOG:-build/bench_infer}
PY=${PY:-tests/reference/.venv/bin/python}
BENCH=build/bin/bench_train
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(resnet_v1_50 inception_v3 vgg_16 mobilenet_v1)
mkdir -p "$LOG"
[ -x "$BENCH" ] || { echo "bench_infer: $BENCH missing (make bench)" >&2; exit 2; }

# Passes timed per batch size: enough for a stable median, few for the slow ones.
steps() {   # model batch
    case "$1:$2" in
        vgg_16:32) echo 3 ;;
        *:32) echo 5 ;;
        *) echo 20 ;;
    esac
}

rate() { sed -n 's/.* = \([0-9.]*\) images\/s.*/\1/p' "$1" | tail -1; }

darknet_rate() {   # cfg -> images/s at 224x224, batch 1
    local cfg=/usr/share/darknet/cfg/$1.cfg out="$LOG/darknet_$1"
    command -v darknet > /dev/null && [ -f "$cfg" ] || { echo "-"; return; }
    sed -e 's/^height=.*/height=224/' -e 's/^width=.*/width=224/' "$cfg" > "$out.cfg"
    OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS darknet speed "$out.cfg" 20 \
        > "$out.log" 2>&1
    awk '/Speed: .* Hz/ {print $2}' "$out.log" | tail -1
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == "-" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }

echo "| network | batch | slimnet img/s | TensorFlow img/s | slimnet/TF | darknet img/s | slimnet/darknet |"
echo "|---|---|---|---|---|---|---|"
for m in "${MODELS[@]}"; do
    dn="-"
    case "$m" in
        resnet_v1_50) dn=$(darknet_rate resnet50) ;;
        vgg_16) dn=$(darknet_rate vgg-16) ;;
    esac
    for b in 1 32; do
        s=$(steps "$m" "$b")
        "$BENCH" --model "$m" --batch "$b" --infer 1 --threads "$THREADS" --steps "$s" \
            --warmup 1 > "$LOG/slimnet_${m}_$b.log" 2>&1
        "$PY" benchmarks/tf_train_cpu.py --model "$m" --batch "$b" --infer 1 \
            --threads "$THREADS" --steps "$s" --warmup 1 > "$LOG/tf_${m}_$b.log" 2>&1
        sn=$(rate "$LOG/slimnet_${m}_$b.log")
        tf=$(rate "$LOG/tf_${m}_$b.log")
        d="-"
        [ "$b" = 1 ] && d=$dn
        echo "| $m | $b | ${sn:--} | ${tf:--} | $(ratio "$sn" "$tf") | $d | $(ratio "$sn" "$d") |"
    done
done
