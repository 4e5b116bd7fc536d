#!/usr/bin/env bash
# After an arm of /tmp/exp has ended (gpu_wait.sh calls this once per arm, in the background):
# the end-of-run evaluations of issue 35's plan (lab/history/results.md, "Group 10"), one line each in
# /tmp/exp/final_fids.csv (arm,weights,samples,fid):
#   - post-hoc EMA (dmtrain ema) of sigma_rel 0.10 and 0.15 from the arm's snapshots, FID of
#     each on 5,000 samples with the periodic FID's sampler and noise (DDIM 25, eta 0, seed 0);
#   - FID of the run's own EMA (rate 0.999, about sigma_rel 0.05 at 20,000 iterations) on 10,000.
# The EMA length per arm is then chosen by one rule for every arm (lowest 5,000-sample FID among
# the run's EMA at 20,000, from metrics.jsonl, and the two reconstructions): plot/compare tools
# read the CSV. Writes /tmp/exp/<arm>.final_done when finished.
set -uo pipefail
cd "$(dirname "$0")/../.."
NAME="$1"
D=$PWD/build/ci/apps/dmtrain
R=/tmp/exp/$NAME
[ -f "$R.final_done" ] && exit 0
FID=(--inception /tmp/study/inception.pt --ref /tmp/c10_ref.npz --sampler ddim --steps ddim25
     --eta 0 --seed 0 --batch 1000 --device cuda)
fid() {  # label samples [model options...]: appends one CSV line
  local label=$1 n=$2; shift 2
  local v
  v=$($D fid "${FID[@]}" --checkpoint "$R" --n "$n" "$@" 2>>"$R.final.log" | awk '/^FID /{print $2}')
  echo "$NAME,$label,$n,${v:-failed}" >>/tmp/exp/final_fids.csv
}
if [ -d "$R/posthoc_ema" ]; then
  $D ema --run "$R" --sigma-rel 0.10,0.15 --out "$R/phema" >>"$R.final.log" 2>&1
  # dmtrain ema names a file by the shortest form of sigma_rel (ema_phema_0.1.pt): one FID per
  # file it wrote. (Group 10 looked for ema_phema_0.10*.pt and missed 0.1.)
  for f in "$R"/phema/ema_phema_*.pt; do
    [ -e "$f" ] || continue
    s=$(basename "$f" .pt); s=${s#ema_phema_}
    fid "phema_$s" 5000 --weights "$f"
  done
fi
fid ema0.999 10000
touch "$R.final_done"
