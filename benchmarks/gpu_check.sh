#!/usr/bin/env bash
# gpu_check.sh: the one script run on a lent GPU machine (H100/H200): finds CUDA, cuDNN,
# cuBLAS, OpenBLAS and Check, builds slimnet with CUDA=1, runs every Check suite (the CUDA
# parity suite included) and any GPU benchmark, and prints a summary table last.
#
# That machine has nvcc but no network and maybe no OpenBLAS or Check: run
# benchmarks/gpu_devdeps.sh here first, and carry `.devdeps` with the run.  cuDNN and cuBLAS
# are taken from $CUDA_HOME, /usr, or the Python wheels (site-packages/nvidia/{cudnn,cublas}),
# header and library from the same place.  Nothing is installed: the paths go into CPATH,
# LIBRARY_PATH, LD_LIBRARY_PATH, NVCC_PREPEND_FLAGS and pkg-config's variables.
#
# Logs go to $OUT (the device tool's folder; build/gpu_out when unset): nvidia-smi.txt,
# env.txt, build.log, tests.log, bench.log, summary.txt.  Exit status 0 only when the build
# and all tests pass.  Budget: well under 8 minutes (each step has its own timeout).
#
# Usage: bash benchmarks/gpu_check.sh     (SN_FORCE_DEVDEPS=1: use .devdeps even where the
#        system has the packages, to try that path on the dev machine)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/build/gpu_out}
BUILD=${BUILD:-build/cuda}
JOBS=$(nproc 2>/dev/null || echo 8)
START=$(date +%s)
mkdir -p "$OUT" "$BUILD"
: >"$OUT/env.txt"

ROWS=()
row() { ROWS+=("$(printf '%-14s %-5s %5ss  %s' "$1" "$2" "$3" "$4")"); }
now() { date +%s; }
note() { echo "$*" | tee -a "$OUT/env.txt"; }

# ---- device -----------------------------------------------------------------------------
t=$(now)
if nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"; then
    GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
          --format=csv,noheader 2>/dev/null | head -1)
    row device ok $(($(now) - t)) "$GPU"
else
    GPU=""
    row device FAIL $(($(now) - t)) "nvidia-smi failed: no GPU visible"
fi
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
NVCC_ARCH=${NVCC_ARCH:-sm_${CAP:-90}}

# ---- toolchain and libraries ----------------------------------------------------------------
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
if [ -z "$NVCC" ]; then
    row toolchain FAIL 0 "no nvcc"
    printf '%s\n' "${ROWS[@]}" | tee "$OUT/summary.txt"
    exit 1
fi
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
export PATH="$CUDA_HOME/bin:$PATH"
LINKS=$ROOT/$BUILD/links          # unversioned lib*.so names for -l, where only .so.N exist
mkdir -p "$LINKS"
INC_DIRS=()
LIB_DIRS=()

# Python site-packages that may hold NVIDIA's wheels.
PY_SITES=$( (python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null;
             ls -d /opt/torch/.venv/lib/python3*/site-packages \
                   /usr/local/lib/python3*/dist-packages 2>/dev/null) | sort -u)

# find_pkg NAME HEADER LIBNAME DIRPAIRS...: first "include:lib" pair holding both the header
# and lib<LIBNAME>.so*; adds it to the search paths.
find_pkg() {
    local name=$1 header=$2 lib=$3 pair inc dir
    shift 3
    for pair in "$@"; do
        inc=${pair%%:*}
        dir=${pair#*:}
        [ -f "$inc/$header" ] || continue
        compgen -G "$dir/lib$lib.so*" >/dev/null || continue
        note "$name: headers $inc, libraries $dir"
        INC_DIRS+=("$inc")
        LIB_DIRS+=("$dir")
        local f
        for f in "$dir"/lib*.so.*; do   # lib<x>.so.N -> lib<x>.so where the link is missing
            [ -e "$f" ] || continue
            local base=${f##*/}
            base=${base%%.so.*}.so
            [ -e "$dir/$base" ] || [ -e "$LINKS/$base" ] || ln -sf "$f" "$LINKS/$base"
        done
        return 0
    done
    note "$name: NOT FOUND"
    return 1
}

wheel_pairs() {   # include:lib pairs of site-packages/nvidia/<pkg>
    local s
    for s in $PY_SITES; do echo "$s/nvidia/$1/include:$s/nvidia/$1/lib"; done
}

t=$(now)
DEPS_OK=1
# shellcheck disable=SC2046  # word splitting of the pair lists is intended
find_pkg cuDNN cudnn.h cudnn "$CUDA_HOME/include:$CUDA_HOME/lib64" \
    /usr/include:/usr/lib/x86_64-linux-gnu \
    /usr/include/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu $(wheel_pairs cudnn) || DEPS_OK=0
# shellcheck disable=SC2046
find_pkg cuBLAS cublas_v2.h cublas "$CUDA_HOME/include:$CUDA_HOME/lib64" \
    "$CUDA_HOME/targets/x86_64-linux/include:$CUDA_HOME/targets/x86_64-linux/lib" \
    /usr/include:/usr/lib/x86_64-linux-gnu $(wheel_pairs cublas) || DEPS_OK=0
# NCCL (the process group's GPU all-reduce; the Makefile builds it in when nccl.h is found)
# shellcheck disable=SC2046
find_pkg NCCL nccl.h nccl "$CUDA_HOME/include:$CUDA_HOME/lib64" \
    /usr/include:/usr/lib/x86_64-linux-gnu $(wheel_pairs nccl) || DEPS_OK=0

# OpenBLAS, Check and zlib: the system's when a probe compiles and links, else .devdeps.
probe() {
    printf '#include <cblas.h>\n#include <check.h>\n#include <zlib.h>\nint main(void){return 0;}\n' |
        gcc -x c - -o /dev/null -lopenblas -lcheck -lsubunit -lz -lm -lpthread -lrt >/dev/null 2>&1
}
PREBUILT=""
if [ -f "$BUILD/PREBUILT" ] && [ -x "$BUILD/tests/run_tests" ]; then
    PREBUILT=$(cat "$BUILD/PREBUILT")
    LIB_DIRS+=("$ROOT/$BUILD/rtlibs")
    note "prebuilt binaries ($PREBUILT); their libraries from $BUILD/rtlibs"
elif [ -z "${SN_FORCE_DEVDEPS:-}" ] && probe; then
    note "OpenBLAS, Check, zlib: from the system"
else
    DEVROOT=$ROOT/.devdeps/root
    if [ ! -d "$DEVROOT" ] && compgen -G "$ROOT/.devdeps/debs/*.deb" >/dev/null; then
        DEVROOT=/tmp/slimnet-devroot
        mkdir -p "$DEVROOT"
        for f in "$ROOT"/.devdeps/debs/*.deb; do dpkg -x "$f" "$DEVROOT"; done
    fi
    if [ -d "$DEVROOT" ]; then
        A=$DEVROOT/usr/lib/x86_64-linux-gnu
        export CPATH="$DEVROOT/usr/include:$DEVROOT/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
        LIB_DIRS+=("$A" "$A/openblas-pthread")
        export PKG_CONFIG_LIBDIR=$A/pkgconfig PKG_CONFIG_SYSROOT_DIR=$DEVROOT
        note "OpenBLAS, Check, zlib: from $DEVROOT"
    else
        note "OpenBLAS, Check, zlib: missing, and no .devdeps (run benchmarks/gpu_devdeps.sh" \
             "on the dev machine and carry .devdeps)"
        DEPS_OK=0
    fi
fi

# shellcheck disable=SC2207  # one directory per line, no spaces
INC_DIRS=($(printf '%s\n' "${INC_DIRS[@]}" | awk '!seen[$0]++'))
# shellcheck disable=SC2207
LIB_DIRS=($(printf '%s\n' "${LIB_DIRS[@]}" | awk '!seen[$0]++'))
for d in "${INC_DIRS[@]}"; do
    export CPATH="$d${CPATH:+:$CPATH}"
    export NVCC_PREPEND_FLAGS="-I$d${NVCC_PREPEND_FLAGS:+ $NVCC_PREPEND_FLAGS}"
done
for d in "$LINKS" "${LIB_DIRS[@]}"; do
    export LIBRARY_PATH="$d${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
{
    echo "GPU: ${GPU:-none}"
    echo "CUDA_HOME=$CUDA_HOME NVCC_ARCH=$NVCC_ARCH jobs=$JOBS"
    "$NVCC" --version | tail -2
    gcc --version | head -1
    grep -h -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' \
        "${INC_DIRS[0]:-/nonexistent}/cudnn_version.h" 2>/dev/null
    echo "CPATH=${CPATH:-}"
    echo "LIBRARY_PATH=${LIBRARY_PATH:-}"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    echo "NVCC_PREPEND_FLAGS=${NVCC_PREPEND_FLAGS:-}"
} 2>&1 | tee -a "$OUT/env.txt"
row libraries "$([ $DEPS_OK = 1 ] && echo ok || echo FAIL)" $(($(now) - t)) \
    "$(grep -c 'headers' "$OUT/env.txt") CUDA libs located; see env.txt"

# ---- build ----------------------------------------------------------------------------------
# GPU benchmarks: benchmark programs whose source mentions CUDA.
BENCHES=()
for src in benchmarks/*.c; do
    [ -e "$src" ] || continue
    grep -qiE 'cuda' "$src" && BENCHES+=("$BUILD/bin/$(basename "$src" .c)")
done
# SN_DEPS_CHECKED=1 skips the Makefile's apt-get step (no network here).  CUDA 13's kernel
# launch stubs need libstdc++ (__cxa_guard_*); until the Makefile links it, add it here.
MAKEARGS=(CUDA=1 "NVCC_ARCH=$NVCC_ARCH" "BUILD=$BUILD" "CUDA_HOME=$CUDA_HOME" SN_DEPS_CHECKED=1)
if ! grep -q -- '-lstdc++' Makefile; then
    MAKEARGS+=("LDFLAGS=-fopenmp -Wl,--no-as-needed -lstdc++ -Wl,--as-needed")
fi
t=$(now)
if [ -n "$PREBUILT" ]; then
    echo "prebuilt by benchmarks/gpu_prepare.sh: $PREBUILT" | tee "$OUT/build.log"
    BUILD_RC=0
else
    timeout 300 make -j"$JOBS" "${MAKEARGS[@]}" lib tools "$BUILD/tests/run_tests" \
        "${BENCHES[@]}" 2>&1 | tee "$OUT/build.log"
    BUILD_RC=$?
fi
WARN=$(grep -c -i 'warning' "$OUT/build.log")
if [ $BUILD_RC = 0 ]; then
    row build ok $(($(now) - t)) "make CUDA=1 NVCC_ARCH=$NVCC_ARCH; $WARN warning lines"
else
    row build FAIL $(($(now) - t)) "rc=$BUILD_RC; see build.log: $(grep -m1 -E 'error|Error' \
        "$OUT/build.log" | cut -c1-100)"
fi

# ---- tests ----------------------------------------------------------------------------------
TEST_RC=1
if [ $BUILD_RC = 0 ]; then
    # The suites that use the GPU (SN_GPU_SUITES=all: every suite; the CPU ones are CI's).
    t=$(now)
    SUITES=${SN_GPU_SUITES:-"cuda cuda_net cuda_optim cuda_dist"}
    : >"$OUT/tests.log"
    TEST_RC=0
    if [ "$SUITES" = all ]; then
        CK_DEFAULT_TIMEOUT=600 timeout 240 "$BUILD/tests/run_tests" 2>&1 | tee -a "$OUT/tests.log"
        TEST_RC=${PIPESTATUS[0]}
    else
        for suite in $SUITES; do
            CK_RUN_SUITE=$suite CK_DEFAULT_TIMEOUT=600 timeout 300 "$BUILD/tests/run_tests" 2>&1 |
                tee -a "$OUT/tests.log"
            rc=${PIPESTATUS[0]}
            [ "$rc" = 0 ] || TEST_RC=$rc
        done
    fi
    TOTAL="$SUITES: $(grep -E '^[0-9]+%: Checks' "$OUT/tests.log" | tr '\n' ' ' || echo "no Check summary (rc=$TEST_RC)")"
    row tests "$([ $TEST_RC = 0 ] && echo ok || echo FAIL)" $(($(now) - t)) "${TOTAL:0:110}"
    CUDA_FAILS=$(grep -c -E ':[FE]:[^:]*:test_cuda_' "$OUT/tests.log")
    CUDA_SKIPS=$(grep -c -E '^\[cuda\].*skipped' "$OUT/tests.log")
    row "cuda suite" "$([ "$CUDA_FAILS" = 0 ] && [ "$CUDA_SKIPS" = 0 ] && echo ok || echo FAIL)" \
        0 "$CUDA_FAILS failed, $CUDA_SKIPS skipped"
    # cuda_dist: one NCCL rank vs no group, two ranks sharing the GPU through Gloo vs one of
    # the double batch (both must run); two NCCL ranks only where there are two GPUs.
    DIST_FAILS=$(grep -c -E ':[FE]:cuda_dist:' "$OUT/tests.log")
    DIST_SKIPS=$(grep -c -E '^\[cuda_dist\] skipped: .*needs 1$' "$OUT/tests.log")
    DIST_RUN=$(grep -c -E '^\[cuda_dist\] lenet, (one NCCL rank|2 processes)' "$OUT/tests.log")
    DIST_TWO=$(grep -q -E '^\[cuda_dist\] skipped: .*needs 2$' "$OUT/tests.log" &&
               echo "2-GPU NCCL test skipped (one GPU)" || echo "2-GPU NCCL test ran")
    row "cuda_dist" "$([ "$DIST_FAILS" = 0 ] && [ "$DIST_SKIPS" = 0 ] && [ "$DIST_RUN" -ge 2 ] &&
        echo PASS || echo FAIL)" 0 "NCCL 1 rank, Gloo 2 ranks on 1 GPU: $DIST_FAILS failed, $DIST_SKIPS skipped, $DIST_RUN ran; $DIST_TWO"
    while IFS= read -r l; do row "" "" "" "${l:0:110}"; done \
        < <(grep -E ':[FE]:[^:]*:test_' "$OUT/tests.log" | head -12)
else
    row tests skip 0 "build failed"
fi

# ---- the tools on the GPU: the tools suite with --device=cuda ------------------------------
t=$(now)
if SN_TOOLS_DEVICE=cuda CK_RUN_SUITE=tools timeout 300 "$BUILD/tests/run_tests" \
        >"$OUT/tools_cuda.log" 2>&1; then
    row tools-cuda ok $(($(now) - t)) "$(grep -E '^[0-9]+%' "$OUT/tools_cuda.log" | tail -1)"
else
    row tools-cuda FAIL $(($(now) - t)) "$(grep -E '^[0-9]+%|:F:' "$OUT/tools_cuda.log" | head -2 | tr '\n' ' ' | cut -c1-90)"
fi

# ---- benchmarks -----------------------------------------------------------------------------
# Training throughput of the issue's four models, slimnet then its PyTorch peer (same GPU, same
# session, batch 128, synthetic data): slimnet model, torchvision model, image size.
MODELS=${SN_BENCH_MODELS:-"resnet_v1_50:resnet50:224 vgg_16:vgg16:224 inception_v3:inception_v3:299 mobilenet_v1:mobilenet_v1:224"}
run_bench() {   # name timeout command...
    local name=$1 limit=$2 t rc
    shift 2
    if [ $(($(now) - START)) -gt 480 ]; then row "$name" skip 0 "out of time"; return; fi
    t=$(now)
    echo "== $name: $*" >>"$OUT/bench.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/bench.log"
    rc=$?
    row "$name" "$([ $rc = 0 ] && echo ok || echo FAIL)" $(($(now) - t)) \
        "rc=$rc: $(tail -1 "$OUT/bench.log" | cut -c1-90)"
}
: >"$OUT/bench.log"
HAVE_TORCH=0
# SN_NO_TORCH=1: slimnet only (a short re-check; the ratios need the peer in the same run)
[ -z "${SN_NO_TORCH:-}" ] && [ -f benchmarks/bench_torch.py ] &&
    python3 -c 'import torch, torchvision' 2>/dev/null && HAVE_TORCH=1
BT=$BUILD/bin/bench_train
# Each model in float32 (TF32) and in bf16 (mixed precision), slimnet then PyTorch (AMP).
# (--fuse 0 and --feed step A/B runs: run 5 and run 6 in RESULTS.md.)
for m in $MODELS; do
    IFS=: read -r sn tv size <<<"$m"
    prof="--profile 1"     # one more step, every node synchronized: where the time goes
    for prec in fp32 bf16; do
        if [ $BUILD_RC = 0 ] && [ -x "$BT" ]; then
            # shellcheck disable=SC2086  # $prof is zero or two words
            run_bench "sn-$sn-$prec" 120 "$BT" --device cuda --model "$sn" --batch 128 \
                --size "$size" --steps 10 --warmup 3 --precision "$prec" $prof
        fi
        if [ $HAVE_TORCH = 1 ]; then
            run_bench "torch-$tv-$([ $prec = fp32 ] && echo tf32 || echo bf16)" 90 python3 \
                benchmarks/bench_torch.py --model "$tv" --batch 128 --size "$size" \
                --precision "$([ $prec = fp32 ] && echo tf32 || echo bf16)" --steps 10 --warmup 5
        fi
    done
done

# A table of the ratios: images/s of each slimnet run over its PyTorch peer's.
# section NAME: the lines bench.log holds for run NAME.
section() { awk -v h="== $1:" 'index($0, h) == 1 {f = 1; next} /^== / {f = 0} f' "$OUT/bench.log"; }
ips() { section "$1" | grep -oE '[0-9.]+ images/s' | tail -1 | cut -d' ' -f1; }
peak() { section "$1" | grep -oE '[0-9.]+% of the GPU' | tail -1 | cut -d'%' -f1; }
for m in $MODELS; do
    IFS=: read -r sn tv size <<<"$m"
    for prec in fp32 bf16; do
        tp=$([ $prec = fp32 ] && echo tf32 || echo bf16)
        a=$(ips "sn-$sn-$prec")
        b=$(ips "torch-$tv-$tp")
        r=$([ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2fx", a/b}')
        pk=$(peak "sn-$sn-$prec")
        row "ratio" "-" 0 "$sn $prec: slimnet ${a:-?} vs PyTorch $tp ${b:-?} images/s = ${r:-?}; slimnet at ${pk:-?}% of peak"
    done
done

# ---- summary (last) -------------------------------------------------------------------------
{
    echo
    echo "== gpu_check summary: ${GPU:-no GPU}, $(($(now) - START)) s in all"
    printf '%-14s %-5s %6s  %s\n' step status time detail
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT/summary.txt"
[ $BUILD_RC = 0 ] && [ $TEST_RC = 0 ]
