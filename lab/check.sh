#!/usr/bin/env bash
# The lab's own checks (the product's CTest does not run them):
#   lab/tests/*_test.py   the lab's Python tools and lease scripts on small hand-worked inputs
#   lab/tests/study_arms.sh  every arm of lab/study/group*.arms resolves through DMTRAIN --dry-run
# Usage: lab/check.sh DMTRAIN_BINARY (e.g. build/ci/apps/dmtrain). Exit 0 when all pass.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DMTRAIN_BINARY" >&2; exit 2; }
case $1 in */*) dmtrain=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") || exit 2 ;;
           *) dmtrain=$(command -v "$1") || { echo "$0: $1: not found" >&2; exit 2; } ;; esac
[ -x "$dmtrain" ] || { echo "$0: $1: not an executable" >&2; exit 2; }
cd "$(dirname "$0")/.." || exit 2
# One intra-op thread per dmtrain (as the product's CTest runs it): LibTorch's OpenMP pool
# spinning on busy cores turns milliseconds into seconds.
export OMP_NUM_THREADS=1
failed=0
echo "== lab/tests/*_test.py"
timeout 120 python3 -m unittest discover -s lab/tests -p '*_test.py' || failed=1
echo "== lab/tests/study_arms.sh"
timeout 300 bash lab/tests/study_arms.sh "$dmtrain" || failed=1
[ $failed = 0 ] && echo "lab checks: ok" || echo "lab checks: FAILED"
exit $failed
