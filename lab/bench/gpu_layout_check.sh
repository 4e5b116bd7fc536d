#!/usr/bin/env bash
# The house move on the GPU machine: this tree against a base commit's tree, built side by side
# (.carry/base_src.tar.gz: `git archive BASE` without lab/results, docs/images, tests' fixtures),
# then `dmtrain bench` of both in one call, alternating A B A B so that drift shows, and the
# tests that need a GPU. Phases, each one call:
#   lab/bench/gpu_layout_check.sh build   both builds at once (setsid, so that they outlive a
#                                         call cut at its limit; logs in /tmp/layout_*.log)
#   lab/bench/gpu_layout_check.sh run     benches both, runs the GPU tests; files in $OUT
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BASE=/tmp/layout_base
case "${1:-}" in
build)
  rm -f /tmp/layout_*.log
  rm -rf "$BASE" && mkdir -p "$BASE" && tar -xzf .carry/base_src.tar.gz -C "$BASE"
  # The base's g++ 13 -Warray-bounds false positive in resample.cpp's autograd Function (fixed
  # in this tree the same way): without it the base does not build here.
  sed -i 's|models/group_norm_act.cpp models/channel_bias.cpp PROPERTIES|models/group_norm_act.cpp models/channel_bias.cpp models/resample.cpp PROPERTIES|' \
    "$BASE/src/CMakeLists.txt"
  cfg() { cmake --preset ci -DDMTRAIN_PYTHON="$(command -v python3)" -DDMTRAIN_BUILD_TESTS="$1" \
            -DDMTRAIN_CUDA_ARCHITECTURES=90; }
  (setsid nohup bash -c "cd $ROOT && $(declare -f cfg); cfg ON >/tmp/layout_new_cfg.log 2>&1 &&
      cmake --build --preset ci -j 10 --target dmtrain dmtrain_train_tests dmtrain_dist_tests \
        dmtrain_checkpoint_tests dmtrain_models_tests >/tmp/layout_new.log 2>&1; echo RC=\$? >>/tmp/layout_new.log" &)
  (setsid nohup bash -c "cd $BASE && $(declare -f cfg); cfg OFF >/tmp/layout_base_cfg.log 2>&1 &&
      cmake --build --preset ci -j 6 --target dmtrain >/tmp/layout_base.log 2>&1;
      echo RC=\$? >>/tmp/layout_base.log" &)
  for f in /tmp/layout_new.log /tmp/layout_base.log; do
    while ! grep -q '^RC=' "$f" 2>/dev/null; do sleep 5; done
    echo "$f: $(grep '^RC=' "$f")"; grep -E "error|warning" "$f" | head -20
  done
  ;;
run)
  OUT=${OUT:-/tmp/layout_out}; mkdir -p "$OUT"
  export OMP_NUM_THREADS=2 NCCL_NVLS_ENABLE=0
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  for round in 1 2; do
    for side in base new; do
      exe=$ROOT/build/ci/apps/dmtrain; [ $side = base ] && exe=$BASE/build/ci/apps/dmtrain
      for c in cifar10_clts_mdlrc imagenet128_clts_mdlrc; do
        steps=100 batch=128; [ $c = imagenet128_clts_mdlrc ] && steps=30 batch=32
        echo "== round $round $side $c"
        "$exe" bench --config "$ROOT/configs/$c.yaml" --batch $batch --steps $steps --warmup 20 2>&1 |
          grep -E "throughput|memory|bf16 peak|device|error" | tee -a "$OUT/bench.txt"
      done
    done
  done
  for t in train dist checkpoint models; do
    build/ci/tests/dmtrain_${t}_tests \
      --gtest_filter='*Cuda*:*Gpu*:*GPU*:*Nccl*:*NCCL*:DistGraphStep.*:TinyRuns.*:FlatUpdateKernel.*:CudaGraph*:ExactResume*:*DataParallel*:*Fused*:*Nhwc*:FastConvBias.*:AvgPool2x.*:Reference.*' \
      >"$OUT/gpu_tests_$t.log" 2>&1
    grep -E "^\[  (FAILED|PASSED) |^\[       OK|Failure|Which is|warn" "$OUT/gpu_tests_$t.log" | head -60
  done
  ;;
*) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
