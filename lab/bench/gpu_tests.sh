#!/usr/bin/env bash
# The tests that need a GPU (they skip on the CPU-only CI machine), built and run on the GPU
# machine (lab/lease/gpu_build.sh: the prebuilt binaries, or a build after lab/study/gpu_prepare.sh
# or gpu_speed_and_stall.sh phase1); $1: build jobs (default 16). Prints each test's verdict.
set -uo pipefail
cd "$(dirname "$0")/../.."
# The prebuilt test binaries (lab/lease/make_prebuilt.sh) when they fit this tree, else a build.
JOBS=${1:-16} lab/lease/gpu_build.sh dmtrain_train_tests dmtrain_checkpoint_tests dmtrain_dist_tests dmtrain_optim_tests \
  dmtrain_models_tests || exit 1
export OMP_NUM_THREADS=2 NCCL_NVLS_ENABLE=0
for t in train checkpoint dist optim models; do
  build/ci/tests/dmtrain_${t}_tests \
    --gtest_filter='*Cuda*:*Gpu*:*GPU*:*Fused*:*Nhwc*:*Nccl*:*NCCL*:DistGraphStep.*:TinyRuns.Captured*:FlatUpdateKernel.*' \
    2>&1 | awk '/^\[  (FAILED|SKIPPED|PASSED|     OK) |error:/ {print; next}
                /Failure/ {print; n = 200; next}   # then the lines of its message and log that say why
                n > 0 && /fall|refus|must|got|Which is|Expected|Actual|warn|error/ {print "    " substr($0, 1, 300)}
                n > 0 {n--}' | head -80
done
# The newest kernels under compute-sanitizer (memcheck: out-of-bounds and misaligned accesses;
# racecheck: shared-memory races), on the small shapes of their tests.
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$CS" ]; then
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer --tool $tool: GroupNormAct.Nhwc*"
    "$CS" --tool "$tool" --error-exitcode 9 build/ci/tests/dmtrain_models_tests \
      --gtest_filter='GroupNormAct.Nhwc*' 2>&1 | grep -E "ERROR SUMMARY|^\[  (FAILED|PASSED)" | head -5
  done
fi
