#!/usr/bin/env bash
# gpu_prepare.sh: run HERE (the dev machine) before a device run.  Builds the CUDA binaries
# for sm_90 (H100/H200) into build/cuda and copies the non-CUDA shared libraries they load
# (OpenBLAS, protobuf-c, snappy, turbojpeg, png, cJSON, Gloo, gfortran, gomp; not the CUDA
# libraries, NCCL's 218 MB included: gpu_check.sh finds the device's own) into
# build/cuda/rtlibs, since the device machine has no network to install them, and packs all
# of it into build/gpu_carry.tgz (~20 MB; the unpacked files are ~60 MB, too close to the
# device tool's 64 MB limit on what travels).  Then run the device with
#     command: tar -xzf build/gpu_carry.tgz && bash benchmarks/gpu_check.sh
#     carry:   ["build/gpu_carry.tgz"]
# gpu_check.sh sees build/cuda/PREBUILT and runs these binaries instead of building there.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build/cuda
# NCCL=0 builds without NCCL (the binaries then load on a machine without libnccl.so.2;
# the cuda_dist suite's NCCL test fails, saying the build has no NCCL).
make -j"$(nproc)" CUDA=1 NVCC_ARCH="${NVCC_ARCH:-sm_90}" NCCL="${NCCL:-auto}" BUILD=$BUILD lib tools \
    $BUILD/tests/run_tests $BUILD/bin/bench_train $BUILD/bin/bench_conv >/dev/null
rm -rf $BUILD/rtlibs
mkdir -p $BUILD/rtlibs
ldd $BUILD/tests/run_tests $BUILD/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcud[^/]*|libcublas[^/]*|libnv[^/]*|libnccl[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" $BUILD/rtlibs/; done
strip $BUILD/tests/run_tests $BUILD/bin/* $BUILD/rtlibs/* 2>/dev/null || true
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty), built $(date -u +%F\ %TZ)," \
     "NVCC_ARCH=${NVCC_ARCH:-sm_90}" > $BUILD/PREBUILT
tar -czf build/gpu_carry.tgz $BUILD/bin $BUILD/tests/run_tests $BUILD/rtlibs $BUILD/PREBUILT
du -sh $BUILD/bin $BUILD/tests/run_tests $BUILD/rtlibs build/gpu_carry.tgz
cat $BUILD/PREBUILT
