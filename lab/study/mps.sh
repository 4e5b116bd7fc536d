#!/usr/bin/env bash
# CUDA MPS (Multi-Process Service) for the study's concurrent arms: mps.sh start|stop|status.
# Without it, runs on one GPU share it by time-slicing: group 1 saw ten runs of the small model
# train no faster in all than two (about 4,900 img/s), while one such run uses a few per cent of
# the card's arithmetic. Under MPS the runs' kernels can execute at the same time. MPS is a
# user-space daemon: it changes none of the settings the device's METHOD.md forbids touching
# (clocks, power, compute mode, MIG, persistence), and it ends with `stop` or with the machine.
# Measured on one H200 (group 4, 2026-12-01): four arms at once trained 1,880-1,890 img/s each,
# 7,549 img/s in all, against 4,930 in all time-sliced (two or ten arms): 1.53x.
# gpu_launch.sh uses it unless MPS=0 is in its environment (the arms must start after the daemon,
# with the same pipe directory, which this script exports).
set -uo pipefail
export CUDA_MPS_PIPE_DIRECTORY=${CUDA_MPS_PIPE_DIRECTORY:-/tmp/mps-pipe}
export CUDA_MPS_LOG_DIRECTORY=${CUDA_MPS_LOG_DIRECTORY:-/tmp/mps-log}
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
case "${1:-}" in
  start)
    command -v nvidia-cuda-mps-control >/dev/null || { echo "mps: no nvidia-cuda-mps-control"; exit 1; }
    nvidia-cuda-mps-control -d || { echo "mps: the daemon did not start"; exit 1; }
    sleep 1
    echo "mps: started (pipes in $CUDA_MPS_PIPE_DIRECTORY)"
    ;;
  stop)
    echo quit | nvidia-cuda-mps-control && echo "mps: stopped"
    ;;
  status)
    echo get_server_list | nvidia-cuda-mps-control
    tail -5 "$CUDA_MPS_LOG_DIRECTORY/control.log" 2>/dev/null
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
