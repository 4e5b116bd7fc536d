#!/usr/bin/env bash
# Packs this machine's `ci` build (scripts/test builds it) for the GPU machine, so that a lease
# need not spend its first ~140 s building dmtrain and ~150 s more building the GPU tests:
#   .carry/prebuilt.tar.xz  dmtrain and the five test binaries gpu_tests.sh runs (stripped), the
#                           shared libraries they take from Debian that Ubuntu lacks or names
#                           otherwise (yaml-cpp 0.7, spdlog 1.10, fmt 9, libjpeg 62, ...), the
#                           hash of the sources they were built from and the source directory
#                           compiled into the tests. About 7 MB (xz).
# LibTorch is not packed: the GPU machine's own torch 2.11.0+cu130 is the one these were built
# against (the same wheel here). lab/lease/use_prebuilt.sh unpacks it there, checks the hash
# against the tree it runs in and that the binary starts, and says so when it cannot be used;
# the callers then build as before. The binaries carry CUDA code for sm_80 and sm_90
# (DMTRAIN_CUDA_ARCHITECTURES of this build).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build/ci
[ -x $B/apps/dmtrain ] || { echo "$0: no $B/apps/dmtrain: run scripts/test first" >&2; exit 2; }
cmake --build --preset ci --target dmtrain dmtrain_train_tests dmtrain_checkpoint_tests dmtrain_dist_tests \
  dmtrain_optim_tests dmtrain_models_tests >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib"
cp $B/apps/dmtrain $B/tests/dmtrain_{train,checkpoint,dist,optim,models}_tests "$tmp/bin/"
strip "$tmp"/bin/*
# What the dynamic loader takes from outside LibTorch, glibc and the compiler's runtime.
ldd "$tmp"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/torch/lib/|/nvidia/|/(libc|libm|libdl|librt|libpthread|libutil|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$tmp/lib/"; done
lab/lease/source_hash.sh >"$tmp/source.sha1"
grep -m1 '^CMAKE_HOME_DIRECTORY' $B/CMakeCache.txt | cut -d= -f2 >"$tmp/source_dir"
mkdir -p .carry
tar cJf .carry/prebuilt.tar.xz -C "$tmp" .
echo "prebuilt: $(du -h .carry/prebuilt.tar.xz | cut -f1), sources $(cut -c1-12 "$tmp/source.sha1"), libs: $(ls "$tmp/lib" | tr '\n' ' ')"
