#!/usr/bin/env bash
# Runs a command on the GPU machine as soon as every arm of /tmp/exp has ended (none pending in
# queue.py, no arm's process alive), so that work which must not share the GPU with the arms
# (the `curves` check, the GPU tests, timings) follows them without a call in between:
#   setsid lab/study/after_arms.sh 'CMD; CMD' >/dev/null 2>&1 </dev/null &
# CMD runs with OUT=/tmp/after_out (a call's own $OUT is gone once it returns); its output goes
# to /tmp/after_out/after.log. A later call collects them: cp -r /tmp/after_out/. "$OUT"/.
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p /tmp/after_out
# Until gpu_launch.sh has started the queue (it writes launched_at after pending), "no arm
# pending or alive" would be true of arms not yet started.
until [ -f /tmp/exp/launched_at ]; do sleep 2; done
while :; do
  pending=$(cat /tmp/exp/pending 2>/dev/null || echo 0)
  running=$(python3 lab/study/progress.py /tmp/exp --running 2>/dev/null || echo 1)
  [ "$pending" = 0 ] && [ "$running" = 0 ] && break
  sleep 5
done
# The arms' MPS daemon off first: what follows should see the GPU as a user's run would.
[ -d /tmp/mps-pipe ] && CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe lab/study/mps.sh stop
echo "after_arms: started $(date -u +%T)" >/tmp/after_out/after.log
OUT=/tmp/after_out bash -c "$1" >>/tmp/after_out/after.log 2>&1
echo "after_arms: done $(date -u +%T)" >>/tmp/after_out/after.log
