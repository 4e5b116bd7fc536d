#!/usr/bin/env bash
# Every arm of every lab/study/group*.arms resolves: queue.py --check runs each arm's
# command as the queue would start it (with gpu_launch.sh's settings, launch_settings.sh) under
# --dry-run, so its config loads and its --set keys and values are accepted, and no two arms of
# a file share a name (they would share a run dir). A typo here otherwise shows only on the GPU
# machine, after the build, as an arm that dies at once.
# Usage: lab/tests/study_arms.sh DMTRAIN_BINARY (run by lab/check.sh)
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DMTRAIN_BINARY" >&2; exit 2; }
case $1 in */*) dmtrain=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") || exit 1 ;;
           *) dmtrain=$(command -v "$1") || { echo "$0: $1: not found" >&2; exit 2; } ;; esac
cd "$(dirname "$0")/../.." || exit 1
source lab/study/launch_settings.sh
exec python3 lab/study/queue.py --check "$dmtrain" lab/study/group*.arms -- "${COMMON[@]}"
