#!/usr/bin/env bash
# lab/tools/export_reference_check.sh DMTRAIN REFS_DIR OUT_DIR
#
# The strict half of `dmtrain export`'s promise, which CI cannot run (the reference repositories
# are not on PyPI): trains configs/quickstart.yaml for 4 iterations on synthetic data, exports
# its EMA in both formats, and runs BOTH Python blocks of README's "Using your weights in Python"
# with REFS_DIR/improved-diffusion on PYTHONPATH, so improved-diffusion's own UNetModel loads the
# export with strict=True; then the same for a guided-diffusion-flavoured model (resblock_updown,
# num_head_channels, new attention order) against REFS_DIR/guided-diffusion.
# REFS_DIR holds read-only copies of openai/improved-diffusion and openai/guided-diffusion.
# Needs a python with torch, numpy and safetensors ($DMTRAIN_PYTHON or the bootstrap venv).
set -euo pipefail
dmtrain="$(realpath "$1")"; refs="$(realpath "$2")"; out="$3"
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="${DMTRAIN_PYTHON:-$HOME/.local/share/dmtrain/venv/bin/python3}"
mkdir -p "$out"; out="$(realpath "$out")"
# The two python blocks of the README section, joined.
awk '/^### Using your weights in Python/{on=1} on&&/^```python/{grab=1; next} grab&&/^```/{grab=0; next} grab{print} on&&/^### /&&!/Using your weights/{on=0}' \
  "$root/README.md" > "$out/snippet.py"
check() { # check NAME EXTRA_SET...
  local name="$1"; shift
  local run="$out/$name"
  rm -rf "$run"
  OMP_NUM_THREADS=2 "$dmtrain" --config "$root/configs/quickstart.yaml" --run-dir "$run" \
    --set data.format=synthetic --set train.iterations=4 --set train.device=cpu \
    --set sample.count=1 "$@" > "$out/$name.train.log" 2>&1
  for fmt in pt safetensors; do
    "$dmtrain" export --run "$run" --weights ema --out "$run/model.$fmt"
    (cd "$run" && cp model.json card.json &&
     sed "s/\"model.pt\", weights_only=True)  # or: state = load_file(\"model.safetensors\")/\"model.pt\", weights_only=True) if \"$fmt\" == \"pt\" else load_file(\"model.safetensors\")/" \
       "$out/snippet.py" > check_$fmt.py &&
     PYTHONPATH="$refs/improved-diffusion:$refs/guided-diffusion" "$py" check_$fmt.py &&
     echo "$name $fmt: strict load_state_dict into $(python3 -c 'import json;print(json.load(open("model.json"))["reference"])').unet.UNetModel: ok")
  done
}
check id
check gd --set model.resblock_updown=true --set model.num_head_channels=16 \
  --set model.use_new_attention_order=true
echo "export reference check: ok"
