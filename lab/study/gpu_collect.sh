#!/usr/bin/env bash
# Last call of a group run with FINAL_EVALS=1 (group 10 on): waits at most $1 s for every arm to
# end and for each ended arm's final_evals.sh to finish, then packs everything into
# $OUT/metrics.tar.gz (gpu_wait.sh) with /tmp/exp/final_fids.csv.
set -uo pipefail
cd "$(dirname "$0")/../.."
end=$(( $(date +%s) + $1 ))
export FINAL_EVALS=1
lab/study/gpu_wait.sh "$1" >/dev/null  # until the arms end; starts their final evaluations
while [ "$(date +%s)" -lt "$end" ]; do
  FINAL_EVALS=1 lab/study/gpu_wait.sh 0 >/dev/null  # starts those of arms that ended since
  pending=0
  for f in /tmp/exp/*.final_started; do
    [ -e "$f" ] || continue
    [ -f "${f%.final_started}.final_done" ] || pending=$((pending + 1))
  done
  [ "$pending" = 0 ] && break
  sleep 10
done
cat /tmp/exp/final_fids.csv 2>/dev/null
exec lab/study/gpu_wait.sh 0
