#!/usr/bin/env bash
# End-to-end through the dmtrain executable, as a user runs it: prepare a packed cache from IDX
# files, train a tiny model for 2 iterations and stop, resume to 4, sample from the run
# directory, and check every file a run promises. Usage: end_to_end.sh DMTRAIN_BINARY SOURCE_DIR
set -euo pipefail
bin="$1"; src="$2"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 32 gray 8x8 images with labels, in the IDX layout of (Fashion-)MNIST.
python3 - "$work/idx" <<'PY'
import os, struct, sys
d = sys.argv[1]; os.makedirs(d)
n = 32
with open(f"{d}/train-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 8, 8) + bytes((i * 37 + i // 64) % 256 for i in range(n * 64)))
with open(f"{d}/train-labels-idx1-ubyte", "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))
PY

"$bin" data prepare --input "$work/idx" --out "$work/tiny.dmdata" --channels 1 > "$work/prepare.txt"
grep -q "32 images of 8x8x1" "$work/prepare.txt" || fail "data prepare: $(cat "$work/prepare.txt")"

cat > "$work/tiny.yaml" <<YAML
base: $src/configs/quickstart.yaml
model: {image_size: 8, attention_resolutions: [4], num_res_blocks: 1}
diffusion: {steps: 50}
timestep: {clts: {target_iteration: 2}}
data: {format: cache, path: $work/tiny.dmdata, num_workers: 1}
train: {iterations: 4, batch_size: 4, device: cpu, run_dir: $work/run}
checkpoint: {every: 2}
log: {every: 1}
sample: {count: 4, steps: ddim2}
YAML

"$bin" --config "$work/tiny.yaml" --dry-run | grep -q "parameters" || fail "dry run"
"$bin" --config "$work/tiny.yaml" --stop-at 2 2> "$work/first.log" || fail "first leg: $(tail -3 "$work/first.log")"
[ -f "$work/run/checkpoints/iter_000000000002/COMMITTED" ] || fail "no committed checkpoint at 2"
[ ! -e "$work/run/ema_0.99.pt" ] || fail "EMA exported before the run finished"
"$bin" --config "$work/tiny.yaml" --resume auto 2> "$work/second.log" || fail "resume: $(tail -3 "$work/second.log")"
grep -q "resumed from .*iter_000000000002 at iteration 2" "$work/run/train.log" || fail "did not resume from 2"
for f in config.yaml train.log metrics.jsonl ema_0.99.pt samples/iter_000004.png \
         checkpoints/iter_000000000004/COMMITTED; do
  [ -s "$work/run/$f" ] || fail "missing $f"
done
[ "$(wc -l < "$work/run/metrics.jsonl")" -eq 4 ] || fail "metrics.jsonl should hold steps 1-4"
"$bin" sample --checkpoint "$work/run" --n 3 --out-npz "$work/s.npz" --out-png "$work/s.png" \
  > "$work/sample.txt" 2>&1 || fail "sample: $(cat "$work/sample.txt")"
[ -s "$work/s.npz" ] && [ -s "$work/s.png" ] || fail "sample outputs"
# A changed model section is refused on resume, with the way out named.
if "$bin" --config "$work/tiny.yaml" --set model.model_channels=64 --resume auto 2> "$work/refuse.log"; then
  fail "resume with another model was accepted"
fi
grep -q "allow-config-change" "$work/refuse.log" || fail "refusal message: $(cat "$work/refuse.log")"
# A worker whose master never appears fails within dist.timeout_s, naming the address.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
if RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" \
   "$bin" --config "$work/tiny.yaml" --run-dir "$work/run2" --set dist.timeout_s=2 2> "$work/dist.log"; then
  fail "a rank without a master was accepted"
fi
grep -q "rank 1 cannot reach the master at 127.0.0.1:$port" "$work/dist.log" || fail "no-master message: $(tail -3 "$work/dist.log")"
# Two local workers train data-parallel; rank 0 owns the metrics, rank 1 has its own log.
"$bin" --nproc-per-node 2 --config "$work/tiny.yaml" --run-dir "$work/run3" 2> "$work/ddp.log" || fail "2 ranks: $(tail -5 "$work/ddp.log")"
[ -s "$work/run3/train.rank1.log" ] && [ "$(wc -l < "$work/run3/metrics.jsonl")" -eq 4 ] || fail "2-rank run outputs"
# The same through torchrun (its agent hosts the store), when a torchrun is at hand.
torchrun_bin="$(command -v torchrun || echo "${DMTRAIN_HOME:-$HOME/.local/share/dmtrain}/venv/bin/torchrun")"
if [ -x "$torchrun_bin" ]; then
  "$torchrun_bin" --no-python --nproc-per-node 2 --master-port "$port" "$bin" --config "$work/tiny.yaml" \
    --run-dir "$work/run4" > "$work/torchrun.log" 2>&1 || fail "torchrun: $(tail -5 "$work/torchrun.log")"
  [ -s "$work/run4/train.rank1.log" ] && [ "$(wc -l < "$work/run4/metrics.jsonl")" -eq 4 ] || fail "torchrun run outputs"
else
  echo "end-to-end: no torchrun found, skipping the torchrun launch"
fi
# The step benchmark, with the profile table and the Chrome trace.
"$bin" bench --config "$work/tiny.yaml" --steps 2 --warmup 1 --profile --trace "$work/trace.json" \
  > "$work/bench.txt" 2> "$work/bench.err" || fail "bench: $(tail -3 "$work/bench.err")"
for want in "throughput: " "ms/step" "TFLOP/s achieved" "CPU time (ops, self)" "aten::convolution"; do
  grep -q "$want" "$work/bench.txt" || fail "bench output lacks '$want': $(cat "$work/bench.txt")"
done
grep -q '"traceEvents"' "$work/trace.json" || fail "bench --trace wrote no Chrome trace"
echo "end-to-end: ok"
