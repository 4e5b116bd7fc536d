#!/usr/bin/env bash
# Call 1 on the GPU machine: build dmtrain and prepare the data (scripts/study/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p /tmp/study
mv .carry/inception.part00 /tmp/study/ 2>/dev/null || true
cmake --preset ci -DDMTRAIN_PYTHON="$(command -v python3)" -DDMTRAIN_BUILD_TESTS=OFF \
  -DDMTRAIN_CUDA_ARCHITECTURES=90 >/tmp/study/cmake.log
cmake --build --preset ci --target dmtrain -j 16 >/tmp/study/build.log 2>&1 || { tail -50 /tmp/study/build.log; exit 1; }
D=build/ci/apps/dmtrain
mkdir -p /tmp/data
tar xzf .carry/cifar10-jpeg.tar.gz -C /tmp/data
$D data prepare --input /tmp/data/cifar10-jpeg/train --size 32 --labels none --threads 16 \
  --out /tmp/c10.dmdata
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
echo "prepare: ok"
