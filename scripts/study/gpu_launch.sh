#!/usr/bin/env bash
# Call 2 on the GPU machine: FID network and reference statistics, then start every arm of the
# group file $1 (scripts/study/README.md); $2: seconds the arms may train in all; $3: seconds
# this call then waits (gpu_wait.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
GROUP="$1" BUDGET="$2" WAIT="$3"
D=$PWD/build/ci/apps/dmtrain
cat /tmp/study/inception.part00 .carry/inception.part01 >/tmp/study/inception.pt
echo "a16e4d89c0ecbc17a915dd76ea9e41211aa82562  /tmp/study/inception.pt" | sha1sum -c -
[ -f /tmp/c10_ref.npz ] || $D fid --inception /tmp/study/inception.pt --ref /tmp/c10.dmdata \
  --cache-ref /tmp/c10_ref.npz --device cuda --batch 500 2>&1 | tail -3
mkdir -p /tmp/exp
export OMP_NUM_THREADS=2
COMMON=(--set data.path=/tmp/c10.dmdata --set data.format=cache --set data.cache=
        --set data.num_workers=1 --set eval.inception=/tmp/study/inception.pt
        --set eval.reference=/tmp/c10_ref.npz)
: >/tmp/exp/arms.txt
while read -r name config sets; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  # shellcheck disable=SC2086
  setsid $D --config "$config" "${COMMON[@]}" $sets --run-dir "/tmp/exp/$name" --resume auto \
    >"/tmp/exp/$name.log" 2>&1 </dev/null &
  echo "$name $! $config $sets" >>/tmp/exp/arms.txt
  echo "started $name (pid $!): $config $sets"
done <"scripts/study/$GROUP"
date +%s >/tmp/exp/launched_at
setsid python3 scripts/study/watchdog.py /tmp/exp "$BUDGET" >/tmp/exp/watchdog.log 2>&1 </dev/null &
exec scripts/study/gpu_wait.sh "$WAIT"
