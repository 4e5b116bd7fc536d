#!/usr/bin/env bash
# One sha1 over the files a dmtrain build is made of (CMake files, apps, include, src, tests'
# sources and CMake), by content and path: make_prebuilt.sh writes it beside the binaries and
# use_prebuilt.sh compares it with the tree it runs in. No git needed (the GPU machine's copy
# of the working tree has no .git).
set -euo pipefail
cd "$(dirname "$0")/../.."
find CMakeLists.txt CMakePresets.json cmake apps include src tests -type f \
  \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.h' \
     -o -name 'CMakeLists.txt' -o -name '*.cmake' -o -name '*.json' -o -name '*.in' \) \
  -not -path 'tests/fixtures/*' | LC_ALL=C sort | xargs sha1sum | sha1sum | cut -d' ' -f1
