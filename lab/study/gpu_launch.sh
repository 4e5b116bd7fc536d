#!/usr/bin/env bash
# Call 2 on the GPU machine: FID network and reference statistics, then start every arm of the
# group file $1 (lab/study/README.md), at most $4 at once (default: all); $2: seconds the arms
# may train in all; $3: seconds this call then waits (gpu_wait.sh). Under CUDA MPS unless MPS=0.
set -euo pipefail
cd "$(dirname "$0")/../.."
GROUP="$1" BUDGET="$2" WAIT="$3" JOBS="${4:-1000}"
D=$PWD/build/ci/apps/dmtrain
# After `gpu_prepare.sh --stage` (call 1 only kept the files): the binaries and data now.
{ [ -x "$D" ] && [ -f /tmp/c10.dmdata ]; } || lab/study/gpu_prepare.sh
cat /tmp/study/inception.part00 .carry/inception.part01 >/tmp/study/inception.pt
echo "a16e4d89c0ecbc17a915dd76ea9e41211aa82562  /tmp/study/inception.pt" | sha1sum -c -
[ -f /tmp/c10_ref.npz ] || $D fid --inception /tmp/study/inception.pt --ref /tmp/c10.dmdata \
  --cache-ref /tmp/c10_ref.npz --device cuda --batch 500 2>&1 | tail -3
mkdir -p /tmp/exp
export OMP_NUM_THREADS=2
source lab/study/launch_settings.sh  # COMMON
if [ "${MPS:-1}" = 1 ]; then  # the arms' kernels run concurrently (lab/study/mps.sh); MPS=0: time-sliced
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  # Without the daemon the arms still run, time-sliced as before, rather than not at all.
  lab/study/mps.sh start || { echo "mps: not started; arms time-slice"; unset CUDA_MPS_PIPE_DIRECTORY; }
fi
: >/tmp/exp/arms.txt
echo 1 >/tmp/exp/pending
setsid python3 lab/study/queue.py /tmp/exp "lab/study/$GROUP" "$JOBS" "$D" "${COMMON[@]}" \
  >/tmp/exp/queue.log 2>&1 </dev/null &
sleep 5 && cat /tmp/exp/queue.log
date +%s >/tmp/exp/launched_at
setsid python3 lab/study/watchdog.py /tmp/exp "$BUDGET" >/tmp/exp/watchdog.log 2>&1 </dev/null &
exec lab/study/gpu_wait.sh "$WAIT"
