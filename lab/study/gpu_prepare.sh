#!/usr/bin/env bash
# Call 1 on the GPU machine (lab/study/README.md): keeps the carried first half of the
# Inception file and the CIFAR-10 JPEGs in /tmp/study, then dmtrain: the prebuilt binaries if
# .carry/prebuilt.tar.xz came with this call and fit this tree (lab/lease/use_prebuilt.sh), else a
# build; then `dmtrain data prepare`. With --stage it only keeps the files (a call of a second,
# whose carry has no room for the binaries; gpu_launch.sh then runs the rest with them).
# (lab/lease/gpu_build.sh: the prebuilt binaries or the build.)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p /tmp/study
for f in inception.part00 cifar10-jpeg.tar.gz; do
  [ -f ".carry/$f" ] && mv ".carry/$f" /tmp/study/
done
if [ "${1:-}" = --stage ]; then ls -la /tmp/study; echo "prepare: staged"; exit 0; fi
JOBS=16 lab/lease/gpu_build.sh dmtrain
D=build/ci/apps/dmtrain
if [ ! -f /tmp/c10.dmdata ]; then
  mkdir -p /tmp/data
  tar xzf /tmp/study/cifar10-jpeg.tar.gz -C /tmp/data
  $D data prepare --input /tmp/data/cifar10-jpeg/train --size 32 --labels none --threads 16 \
    --out /tmp/c10.dmdata
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
echo "prepare: ok"
