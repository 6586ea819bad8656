#!/usr/bin/env bash
# gpu_devdeps.sh: fetches the build and test dependencies that the GPU machine lacks.
#
# Run HERE (Debian, root, apt reachable), not on the GPU machine, which has no network.
# Downloads the Debian packages of OpenBLAS, Check and zlib with `apt-get download` and extracts
# them with `dpkg -x` into .devdeps/root (no install, no maintainer scripts), then removes
# what a build does not need (static libraries, LAPACK, documentation) so that the folder
# travels to the GPU machine within its size limit.  benchmarks/gpu_check.sh points
# CPATH/LIBRARY_PATH/LD_LIBRARY_PATH at it there.
#
# Usage: bash benchmarks/gpu_devdeps.sh      (then carry `.devdeps` with the run)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="libopenblas0-pthread libopenblas-dev libopenblas-pthread-dev check libsubunit0 \
libsubunit-dev libgfortran5 zlib1g zlib1g-dev"
DEV=.devdeps
ARCH_DIR=usr/lib/x86_64-linux-gnu

# The folder must never be committed: ignore it locally unless .gitignore already does.
if git rev-parse --git-dir >/dev/null 2>&1 && ! git check-ignore -q "$DEV/x" 2>/dev/null; then
    echo "/$DEV/" >>"$(git rev-parse --git-dir)/info/exclude"
    echo "gpu_devdeps: added /$DEV/ to .git/info/exclude"
fi

rm -rf "$DEV/debs" "$DEV/root"
mkdir -p "$DEV/debs" "$DEV/root"
# shellcheck disable=SC2086  # PKGS is a list of words
if ! (cd "$DEV/debs" && apt-get download $PKGS >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$DEV/debs" && apt-get download $PKGS)
fi
for f in "$DEV"/debs/*.deb; do dpkg -x "$f" "$DEV/root"; done
rm -rf "$DEV/debs"

# Prune: the static OpenBLAS alone is ~58 MB; LAPACK, BLAS shims and docs are not used.
# (Check ships only static libraries: libcheck.a and libcheck_pic.a stay.)
find "$DEV/root/$ARCH_DIR/openblas-pthread" -name '*.a' -delete
rm -rf "$DEV/root/usr/share" "$DEV/root/usr/bin"
rm -f "$DEV/root/$ARCH_DIR/openblas-pthread/"liblapack.so* \
      "$DEV/root/$ARCH_DIR/openblas-pthread/"libblas.so*
# dpkg -x runs no update-alternatives: make the links it would have made, so that
# -lopenblas, <cblas.h> and pkg-config's openblas.pc resolve in the usual places too.
ln -sf openblas-pthread/libopenblas.so "$DEV/root/$ARCH_DIR/libopenblas.so"
ln -sf openblas-pthread/libopenblas.so.0 "$DEV/root/$ARCH_DIR/libopenblas.so.0"
mkdir -p "$DEV/root/$ARCH_DIR/pkgconfig"
ln -sf ../openblas-pthread/pkgconfig/openblas.pc "$DEV/root/$ARCH_DIR/pkgconfig/openblas.pc"
for h in cblas.h openblas_config.h f77blas.h; do
    ln -sf "openblas-pthread/$h" "$DEV/root/usr/include/x86_64-linux-gnu/$h"
done

# Absolute links (libz.so -> /lib/...) would point at the GPU machine's own files: make
# them relative to the extracted tree, and move /lib's files beside /usr/lib's.
if [ -d "$DEV/root/lib/x86_64-linux-gnu" ]; then
    cp -a "$DEV/root/lib/x86_64-linux-gnu/." "$DEV/root/$ARCH_DIR/"
    rm -rf "$DEV/root/lib"
fi
find "$DEV/root" -type l | while read -r l; do
    t=$(readlink "$l")
    case "$t" in
        /*) ln -sf "$(basename "$t")" "$l" ;;
    esac
done

# Sanity: the files the build needs are there (-e follows the links).
for f in usr/include/check.h usr/include/zlib.h usr/include/x86_64-linux-gnu/cblas.h \
         "$ARCH_DIR/libz.so" \
         "$ARCH_DIR/libopenblas.so" "$ARCH_DIR/libsubunit.so" "$ARCH_DIR/libgfortran.so.5"; do
    [ -e "$DEV/root/$f" ] || { echo "gpu_devdeps: missing $f" >&2; exit 1; }
done
ls "$DEV/root/$ARCH_DIR/"libcheck*.a >/dev/null
du -sh "$DEV/root"
echo "gpu_devdeps: ready; carry .devdeps in the device run"
