#!/usr/bin/env bash
# On the GPU machine: puts the binaries of .carry/prebuilt.tar.xz (lab/lease/make_prebuilt.sh) where
# a `cmake --preset ci` build would (build/ci/apps/dmtrain, build/ci/tests/dmtrain_*_tests), each
# as a small script that execs the real binary with the libraries it needs (the carried ones,
# this machine's torch, CUDA's runtime), so that callers and their PIDs see dmtrain itself.
# Exit 0: usable (build/ci/.prebuilt written); 1: not (said why; nothing left in build/ci that a
# build would not overwrite), and the caller builds. Checks: the sources hash as the tree here
# does, the binary starts, and the tests' compiled-in source directory is this tree (a symlink
# is made where it does not exist).
set -uo pipefail
cd "$(dirname "$0")/../.."
P=${PREBUILT_DIR:-/tmp/prebuilt}  # where the binaries are unpacked
no() { echo "prebuilt: not used: $*"; rm -rf build/ci/.prebuilt; exit 1; }
[ -f .carry/prebuilt.tar.xz ] || no "no .carry/prebuilt.tar.xz"
rm -rf $P && mkdir -p $P && tar xJf .carry/prebuilt.tar.xz -C $P || no "cannot unpack"
[ "$(cat $P/source.sha1)" = "$(lab/lease/source_hash.sh)" ] || no "built from other sources"
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null) ||
  no "no torch in python3"
cuda_lib=$(dirname "$(ls /usr/local/cuda/lib64/libcudart.so.13 /usr/local/cuda/lib/libcudart.so.13 \
  /usr/local/cuda/targets/*/lib/libcudart.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$P/lib:$torch_lib:$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
$P/bin/dmtrain --version >/tmp/prebuilt.version 2>&1 || no "dmtrain does not start: $(head -3 /tmp/prebuilt.version)"
src=$(cat $P/source_dir)
if [ "$(cd "$src" 2>/dev/null && pwd -P)" != "$(pwd -P)" ]; then
  [ -e "$src" ] && no "the tests' source dir $src is another tree"
  mkdir -p "$(dirname "$src")" && ln -s "$(pwd -P)" "$src" || no "cannot link $src to this tree"
fi
mkdir -p build/ci/apps build/ci/tests
for b in $P/bin/*; do
  name=$(basename "$b")
  [ "$name" = dmtrain ] && dest=build/ci/apps/dmtrain || dest=build/ci/tests/$name
  rm -f "$dest"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$LD_LIBRARY_PATH" "$b" >"$dest"
  chmod +x "$dest"
done
cp $P/source.sha1 build/ci/.prebuilt
echo "prebuilt: using $(head -1 /tmp/prebuilt.version) (sources $(cut -c1-12 $P/source.sha1))"
