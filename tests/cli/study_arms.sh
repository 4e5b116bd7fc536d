#!/usr/bin/env bash
# Every arm of every scripts/study/group*.arms resolves: its config loads and its --set keys and
# values are accepted (dmtrain --dry-run with the settings gpu_launch.sh adds), and no two arms
# of a file share a name (they would share a run dir). A typo here otherwise shows only on the
# GPU machine, after the build, as an arm that dies at once.
# Usage: study_arms.sh DMTRAIN_BINARY PROJECT_SOURCE_DIR
set -uo pipefail
bin=$1
cd "$2" || exit 1
COMMON=(--set data.path=/nonexistent/c10.dmdata --set data.format=cache --set data.cache=
        --set data.num_workers=1 --set eval.inception=/nonexistent/inception.pt
        --set eval.reference=/nonexistent/c10_ref.npz)
failed=0 arms=0
for group in scripts/study/group*.arms; do
  names=$(grep -Ev '^\s*(#|$)' "$group" | awk '{print $1}')
  dup=$(sort <<<"$names" | uniq -d)
  [ -z "$dup" ] || { echo "FAIL $group: arms named twice: $dup"; failed=1; }
  while read -r name config rest; do
    case "$name" in ''|'#'*) continue ;; esac
    arms=$((arms + 1))
    # shellcheck disable=SC2086
    if ! out=$("$bin" --config "$config" $rest "${COMMON[@]}" --dry-run 2>&1); then
      echo "FAIL $group: $name: $(grep -m1 -i error <<<"$out" || head -1 <<<"$out")"; failed=1
    fi
  done <"$group"
done
[ "$arms" -gt 0 ] || { echo "FAIL no arms found"; exit 1; }
[ "$failed" = 0 ] && echo "study arms: $arms resolve"
exit "$failed"
