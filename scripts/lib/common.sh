# Shared by scripts/*: where dmtrain keeps its tools, and how to reach LibTorch.
# shellcheck shell=bash
DMTRAIN_HOME="${DMTRAIN_HOME:-$HOME/.local/share/dmtrain}"
DMTRAIN_VENV="$DMTRAIN_HOME/venv"
DMTRAIN_TORCH_VERSION="2.11.0"
DMTRAIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { printf '\033[1m[dmtrain]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[dmtrain] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Prints the python3 whose 'import torch' works, preferring one already on the machine.
dmtrain_torch_python() {
  local py
  for py in "${DMTRAIN_PYTHON:-}" "$(command -v python3 || true)" "$DMTRAIN_VENV/bin/python3"; do
    [ -n "$py" ] && [ -x "$py" ] || continue
    if "$py" -c 'import torch' >/dev/null 2>&1; then echo "$py"; return 0; fi
  done
  return 1
}

# Prints the CMake arguments that point the build at LibTorch (none when Torch_DIR or
# CMAKE_PREFIX_PATH already provide it).
dmtrain_cmake_torch_args() {
  if [ -n "${Torch_DIR:-}" ]; then echo "-DTorch_DIR=$Torch_DIR"; return; fi
  local py
  if py="$(dmtrain_torch_python)"; then echo "-DDMTRAIN_PYTHON=$py"; fi
}

# Configures and builds a CMake preset; extra arguments go to the build (e.g. --target dmtrain).
dmtrain_build() {
  local preset="$1"; shift
  cd "$DMTRAIN_ROOT"
  # shellcheck disable=SC2046
  cmake --preset "$preset" $(dmtrain_cmake_torch_args) >/dev/null \
    || die "CMake configure failed for preset '$preset' (rerun: cmake --preset $preset)"
  cmake --build --preset "$preset" "$@" || die "build failed for preset '$preset'"
}
