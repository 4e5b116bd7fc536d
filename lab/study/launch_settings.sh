# The settings gpu_launch.sh gives every study arm after its config and before the arm's own
# --set (queue.py): the prepared data, the FID network and reference statistics. Sourced by
# gpu_launch.sh and by lab/tests/study_arms.sh, which dry-runs every arm with them.
COMMON=(--set data.path=/tmp/c10.dmdata --set data.format=cache --set data.cache=
        --set data.num_workers=1 --set eval.inception=/tmp/study/inception.pt
        --set eval.reference=/tmp/c10_ref.npz)
