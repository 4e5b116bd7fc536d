#!/usr/bin/env bash
# Last call: stop what still runs (SIGINT: each arm checkpoints at its next iteration), compare
# the seed pairs with dmtrain consistency, pack the metrics.
set -uo pipefail
cd "$(dirname "$0")/../.."
D=$PWD/build/ci/apps/dmtrain
pkill -f "study/[q]ueue.py" && echo "stopped the queue"  # [q]: not this call's own shell
while read -r name pid _; do kill -INT "$pid" 2>/dev/null && echo "SIGINT $name"; done </tmp/exp/arms.txt
for _ in $(seq 60); do
  [ "$(python3 lab/study/progress.py /tmp/exp --running)" = 0 ] && break; sleep 2
done
# Pairs "a b" (run names) whose final EMA models are sampled with the same noise.
for pair in "$@"; do
  a=${pair%,*} b=${pair#*,}
  [ -d "/tmp/exp/$a" ] && [ -d "/tmp/exp/$b" ] || continue
  $D consistency --checkpoints "/tmp/exp/$a" "/tmp/exp/$b" --n 64 --seed 0 --sampler ddim \
    --steps ddim50 --device cuda --out "/tmp/exp/consistency_${a}_${b}.png" 2>&1 | tail -4 \
    | tee "/tmp/exp/consistency_${a}_${b}.log"
done
# MPS off again, so that benchmarks after the study see the GPU as a user would.
[ -d /tmp/mps-pipe ] && CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe lab/study/mps.sh stop
exec lab/study/gpu_wait.sh 0
