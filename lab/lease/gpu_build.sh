#!/usr/bin/env bash
# The GPU machine's dmtrain targets, in build/ci: the prebuilt binaries when they are installed
# and fit this tree (build/ci/.prebuilt) or can be installed from .carry/prebuilt.tar.xz
# (lab/lease/use_prebuilt.sh), else a `ci` build for sm_90 here, with the tests configured only when
# a test target is asked for. Usage: lab/lease/gpu_build.sh TARGET... (e.g. dmtrain,
# dmtrain_models_tests); JOBS: parallel compile jobs (default: all cores). Exit 1 with the
# build's errors when it fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -f build/ci/.prebuilt ] && [ "$(cat build/ci/.prebuilt)" = "$(lab/lease/source_hash.sh)" ]; then
  echo "build: prebuilt binaries ($(cut -c1-12 build/ci/.prebuilt))"; exit 0
fi
lab/lease/use_prebuilt.sh && exit 0
tests=OFF
for t in "$@"; do [[ $t == *_tests ]] && tests=ON; done
cmake --preset ci -DDMTRAIN_PYTHON="$(command -v python3)" -DDMTRAIN_BUILD_TESTS=$tests \
  -DDMTRAIN_CUDA_ARCHITECTURES=90 >/tmp/gpu_build_cfg.log 2>&1 || { tail -20 /tmp/gpu_build_cfg.log; exit 1; }
cmake --build --preset ci --target "$@" -j "${JOBS:-$(nproc)}" >/tmp/gpu_build.log 2>&1 ||
  { grep -E "error" /tmp/gpu_build.log | head -20; exit 1; }
