#!/usr/bin/env bash
# Every arm of every scripts/study/group*.arms resolves: queue.py --check runs each arm's
# command as the queue would start it (with gpu_launch.sh's settings, launch_settings.sh) under
# --dry-run, so its config loads and its --set keys and values are accepted, and no two arms of
# a file share a name (they would share a run dir). A typo here otherwise shows only on the GPU
# machine, after the build, as an arm that dies at once.
# Usage: study_arms.sh DMTRAIN_BINARY PROJECT_SOURCE_DIR
set -uo pipefail
cd "$2" || exit 1
source scripts/study/launch_settings.sh
exec python3 scripts/study/queue.py --check "$1" scripts/study/group*.arms -- "${COMMON[@]}"
