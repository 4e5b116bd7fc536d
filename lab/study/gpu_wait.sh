#!/usr/bin/env bash
# Waits $1 seconds (less if every arm has ended), printing each arm's progress every minute;
# then packs every metrics.jsonl and log into $OUT/metrics.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/../.."
end=$(( $(date +%s) + $1 ))
while :; do
  python3 lab/study/progress.py /tmp/exp
  running=$(python3 lab/study/progress.py /tmp/exp --running)
  pending=$(cat /tmp/exp/pending 2>/dev/null || echo 0)
  [ "$running" = 0 ] && [ "$pending" = 0 ] && break
  [ "$(date +%s)" -ge "$end" ] && break
  sleep $(( end - $(date +%s) < 60 ? (end - $(date +%s) > 0 ? end - $(date +%s) : 1) : 60 ))
done
tail -5 /tmp/exp/watchdog.log 2>/dev/null
# Each ended arm's consistency samples (64 images of its final EMA from noise seed 0, DDIM 50,
# as dmtrain consistency draws them): `dmtrain consistency --samples a.npz b.npz` compares any
# two arms later, whichever lease they ran in (the weights are too large to come back). Also
# the paper's protocol (Sec. 3.1: the same initial noise and the same noise at every step):
# DDPM respaced to 1000 steps, whose per-step noise is drawn from each sample's own seed, so
# every model sees the same draws ($name.consistency_ddpm.npz; a few seconds for this model).
samples() {  # arm, file stem, sampler options: 64 samples of the arm's final EMA, noise seed 0
  local name=$1 stem=$2; shift 2
  [ -f "/tmp/exp/$stem.npz" ] && return
  build/ci/apps/dmtrain sample --checkpoint "/tmp/exp/$name" --n 64 --seed 0 "$@" --batch 64 \
    --device cuda --out-npz "/tmp/exp/$stem.npz" >"/tmp/exp/$stem.log" 2>&1 &&
    echo "consistency samples: $stem"
}
while read -r name pid _; do
  python3 lab/study/progress.py /tmp/exp --alive "$pid" >/dev/null && continue
  # FINAL_EVALS=1 (group 10 on): the end-of-run FIDs of final_evals.sh, in the background.
  if [ "${FINAL_EVALS:-0}" = 1 ] && [ ! -f "/tmp/exp/$name.final_started" ]; then
    touch "/tmp/exp/$name.final_started"
    setsid lab/study/final_evals.sh "$name" >/dev/null 2>&1 </dev/null &
    echo "final evaluations started: $name"
  fi
  [ -f "/tmp/exp/$name.consistency_ddpm.npz" ] && continue
  samples "$name" "$name.consistency" --sampler ddim --steps ddim50 --eta 0
  samples "$name" "$name.consistency_ddpm" --sampler ddpm --steps 1000
done </tmp/exp/arms.txt 2>/dev/null
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
if [ -n "${OUT:-}" ]; then
  (cd /tmp/exp && tar czf "$OUT/metrics.tar.gz" --ignore-failed-read arms.txt launched_at \
     watchdog.log queue.log ./*.npz ./*.log ./*/metrics.jsonl ./*/train.log ./*.csv ./*.png 2>/dev/null) || true
fi
