#!/usr/bin/env bash
# Issues 17 and 18 on one GPU machine, in two back-to-back calls (docs/benchmarks.md):
#   phase 1: build, the GPU tests (gpu_tests.sh), the checkpoint stall of the CIFAR10 and ImageNet128 recipes
#            (asynchronous, and synchronous as the baseline, same call);
#   phase 2: the step's speed against the PyTorch peers (.carry/anchors: improved-diffusion,
#            guided-diffusion and ../shared/tools/anchor_bench.py, carried), each lever on/off;
#   curves:  [LEVERS="--set k=v ..."] $0 curves: the first 2,000 iterations of the defaults (or
#            of the levers given) against the fp32 curve of the same seed, judged against fp32
#            with another seed (curve_check.py); REF_RUNS=DIR reuses the fp32 runs of an
#            earlier call ($OUT/{a,c}.metrics.jsonl) and runs only the levers' curve;
#   levers:  (after phase 1's build) the CIFAR10 peer first, then each newer lever against the
#            defaults in the same call, and an eager trace of the step ($OUT/trace.json.gz) for
#            lab/bench/trace_attribution.py (about 7 minutes);
#   levers128: the same for ImageNet128 against GD fp16 (a call of its own, about 5 minutes);
#   profile128: GD fp16, then ImageNet128's defaults alternated with train.fast_avg_pool=false,
#            and the defaults' profile (about 4 minutes).
set -uo pipefail
cd "$(dirname "$0")/../.."
D=$PWD/build/ci/apps/dmtrain
A=$PWD/.carry/anchors
case "${1:-}" in
phase1)
  JOBS=16 lab/lease/gpu_build.sh dmtrain || exit 1  # the prebuilt binaries (lab/lease/make_prebuilt.sh) or a build
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  lab/bench/gpu_tests.sh 16
  export OMP_NUM_THREADS=4
  mkdir -p /tmp/st
  common=(--set data.format=synthetic --set eval.fid_every=0 --set sample.every=0
          --set sample.count=4 --set sample.steps=ddim5 --set sample.raw=false
          --set log.tensorboard=false --set log.every=10 --set log.level=info)
  run() {  # name, checkpoint.every, then the config and its --set
    local name=$1 every=$2; shift 2
    "$D" "$@" "${common[@]}" --set checkpoint.every="$every" --run-dir "/tmp/st/$name" \
      >"/tmp/st/$name.log" 2>&1; echo "$name: rc $?"
    grep -E "stalled|page-locked|graph|error" "/tmp/st/$name.log" | cut -c1-220 | head -8
    python3 lab/bench/checkpoint_stall.py "/tmp/st/$name/metrics.jsonl" "$every" 3
  }
  C=(--config configs/cifar10_clts_mdlrc.yaml --set train.iterations=400)
  run c10_async 100 "${C[@]}"
  run c10_sync 100 "${C[@]}" --set checkpoint.async=false
  I=(--config configs/imagenet128_clts_mdlrc.yaml --set train.batch_size=32)
  run in128_async 40 "${I[@]}" --set train.iterations=130
  run in128_sync 40 "${I[@]}" --set train.iterations=50 --set checkpoint.async=false
  du -sh /tmp/st/in128_async/checkpoints/* 2>/dev/null | head -3
  ;;
phase2)
  export OMP_NUM_THREADS=4
  peer() { ID_DIR=$A/id GD_DIR=$A/gd STEPS=${STEPS:-30} python3 "$A/anchor_bench.py" "$@" 2>&1 | tail -1; }
  bench() { "$D" bench "$@" 2>&1 | grep -E "throughput|memory|bf16 peak|CUDA graph|error"; }
  C=configs/cifar10_clts_mdlrc.yaml
  echo "== peer: ID + bf16 + channels_last + fused AdamW + torch.compile(reduce-overhead), B=128"
  peer id compile-ro
  for i in 1 2; do
    echo "== dmtrain $C (defaults), run $i"; bench --config $C --steps 100
    echo "== dmtrain $C, train.graph_optimizer=false, run $i"
    bench --config $C --steps 100 --set train.graph_optimizer=false
  done
  echo "== dmtrain $C, train.channels_last=true"; bench --config $C --steps 100 --set train.channels_last=true
  echo "== dmtrain $C, batch 256"; bench --config $C --steps 60 --batch 256
  I=configs/imagenet128_clts_mdlrc.yaml
  echo "== peer: GD ImageNet128, fp16 as published, B=32"; STEPS=20 peer gd ref
  echo "== dmtrain $I, batch 32"; bench --config $I --steps 30 --batch 32
  echo "== dmtrain $I, batch 32, train.graph_optimizer=false"
  bench --config $I --steps 30 --batch 32 --set train.graph_optimizer=false
  echo "== profile: dmtrain $C"
  "$D" bench --config $C --steps 30 --profile 2>&1 | tail -40
  ;;
levers)
  export OMP_NUM_THREADS=4
  C=configs/cifar10_clts_mdlrc.yaml
  bench() { "$D" bench --config $C "$@" 2>&1 | grep -E "throughput|memory|bf16 peak|error"; }
  echo "== peer: ID + bf16 + channels_last + fused AdamW + torch.compile(reduce-overhead), B=128"
  ID_DIR=$A/id GD_DIR=$A/gd STEPS=30 timeout 280 python3 "$A/anchor_bench.py" id compile-ro 2>&1 | tail -1
  NCHW=(--set train.channels_last=false)
  for i in 1 2; do
    echo "== dmtrain $C (defaults: channels_last + nhwc_group_norm_rows, fast_conv_bias, attention_token_major), run $i"
    bench --steps 100
    echo "== NCHW (train.channels_last=false: the defaults before session 8), run $i"; bench --steps 100 "${NCHW[@]}"
  done
  echo "== channels_last with the per-group NHWC GroupNorm kernels (train.nhwc_group_norm_rows=false)"
  bench --steps 100 --set train.nhwc_group_norm_rows=false
  echo "== train.graph_grad_gather=true (gradients gathered, not accumulated: same values)"
  bench --steps 100 --set train.graph_grad_gather=true
  echo "== train.prefetch_inputs=true (next batch and draws before the sync: same values)"
  bench --steps 100 --set train.prefetch_inputs=true
  NEW=(--set train.graph_grad_gather=true --set train.prefetch_inputs=true)
  echo "== the two, and their profile's busy line (the host gap left)"
  bench --steps 100 "${NEW[@]}"
  "$D" bench --config $C --steps 30 --profile "${NEW[@]}" 2>&1 | grep -E "device (time|busy)"
  echo "== profile: the defaults"
  "$D" bench --config $C --steps 30 --profile 2>&1 | tail -34
  echo "== eager trace (3 steps) for the op attribution"
  "$D" bench --config $C --steps 3 --warmup 3 --profile --trace /tmp/trace.json \
    --set train.cuda_graphs=false 2>&1 | grep -E "throughput|error"
  [ -n "${OUT:-}" ] && gzip -c /tmp/trace.json >"$OUT/trace.json.gz" && ls -la "$OUT"
  python3 lab/bench/trace_attribution.py /tmp/trace.json --kernel direct_copy --top 12 | cut -c1-200
  ;;
levers128)
  # (a call of its own: the CIFAR10 part above takes most of a call's 10 minutes)
  export OMP_NUM_THREADS=4
  I=configs/imagenet128_clts_mdlrc.yaml  # channels-last by its config
  ibench() { "$D" bench --config $I --batch 32 --steps 30 "$@" 2>&1 | grep -E "throughput|memory|bf16 peak|error"; }
  echo "== peer: GD ImageNet128, fp16 as published, B=32"
  ID_DIR=$A/id GD_DIR=$A/gd STEPS=20 timeout 200 python3 "$A/anchor_bench.py" gd ref 2>&1 | tail -1
  echo "== dmtrain $I (defaults)"; ibench
  echo "== $I, both levers off"
  ibench --set train.fast_conv_bias=false --set train.attention_token_major=false
  echo "== $I, train.nhwc_group_norm_rows"; ibench --set train.nhwc_group_norm_rows=true
  echo "== $I, NCHW (train.channels_last=false)"; ibench --set train.channels_last=false
  # the three levers measured on CIFAR10 in session 8 (+1.7% there), not yet on ImageNet128
  echo "== $I, graph_grad_gather + prefetch_inputs + group_norm_cached_backward"
  ibench --set train.graph_grad_gather=true --set train.prefetch_inputs=true \
    --set train.group_norm_cached_backward=true
  ;;
profile128)
  # (session 13) GD fp16 as published, then the ImageNet128 defaults (rows + the three session-8
  # levers in its config since session 12's call, fast_avg_pool on) against the same with
  # train.fast_avg_pool=false, twice alternated (run-to-run noise ~1%), then where the defaults'
  # GPU time goes (about 4 minutes).
  export OMP_NUM_THREADS=4
  I=configs/imagenet128_clts_mdlrc.yaml
  ibench() { "$D" bench --config $I --batch 32 --steps 30 "$@" 2>&1 | grep -E "throughput|memory|bf16 peak|error"; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "== peer: GD ImageNet128, fp16 as published, B=32"
  ID_DIR=$A/id GD_DIR=$A/gd STEPS=20 timeout 200 python3 "$A/anchor_bench.py" gd ref 2>&1 | tail -1
  for i in 1 2; do
    echo "== dmtrain $I (defaults), run $i"; ibench
    echo "== $I, train.fast_avg_pool=false (ATen's avg_pool2d backward), run $i"
    ibench --set train.fast_avg_pool=false
  done
  echo "== profile: $I (defaults)"
  "$D" bench --config $I --batch 32 --steps 10 --profile 2>&1 | tail -40
  ;;
curves)
  # Training unchanged (issue 17): 2,000 iterations of the paper's config on real CIFAR-10 (the
  # study's /tmp/c10.dmdata, lab/study/gpu_prepare.sh): the fp32 NCHW curve of seed 0 (REF), the
  # defaults or the levers in $LEVERS (seed 0), and REF with seed 1 as the noise control; the
  # three run at once (deterministic each; about 5 minutes on an H200).
  export OMP_NUM_THREADS=4
  C=configs/cifar10_clts_mdlrc.yaml
  REF=${REF:---set train.precision=fp32 --set train.channels_last=false}
  common=(--config $C --set train.iterations=2000 --set data.path=/tmp/c10.dmdata
          --set data.format=cache --set data.cache= --set eval.fid_every=0 --set sample.every=0
          --set checkpoint.every=0 --set log.every=20 --set log.tensorboard=false)
  # The two fp32 references take ~540 s of GPU between them and do not change with the levers:
  # REF_RUNS=DIR with a.metrics.jsonl and c.metrics.jsonl from an earlier call of this mode on
  # the same machine and build (the runs are deterministic there) runs only b (~70 s).
  arms=("b:--set train.seed=0 ${LEVERS:-}")
  if [ -n "${REF_RUNS:-}" ]; then
    for r in a c; do mkdir -p /tmp/curves/$r && cp "$REF_RUNS/$r.metrics.jsonl" /tmp/curves/$r/metrics.jsonl; done
    echo "fp32 references a, c from $REF_RUNS"
  else
    arms=("a:--set train.seed=0 $REF" "${arms[0]}" "c:--set train.seed=1 $REF")
  fi
  # shellcheck disable=SC2086
  for arm in "${arms[@]}"; do
    name=${arm%%:*}
    ($D "${common[@]}" ${arm#*:} --run-dir /tmp/curves/$name >/tmp/curves_$name.log 2>&1
     echo "run $name (${arm#*:}): rc $?, $(grep -c '"loss"' /tmp/curves/$name/metrics.jsonl) records") &
  done
  wait
  # what comes back, a and c to be kept for REF_RUNS next time
  [ -n "${OUT:-}" ] && for r in a b c; do cp /tmp/curves/$r/metrics.jsonl "$OUT/$r.metrics.jsonl" 2>/dev/null; done
  python3 lab/bench/curve_check.py /tmp/curves/{a,b,c}/metrics.jsonl --window 200
  ;;
*) echo "usage: $0 phase1|phase2|levers|levers128|profile128|curves" >&2; exit 2 ;;
esac
