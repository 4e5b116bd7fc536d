#!/usr/bin/env python3
"""How long checkpoints held training back, from a run's metrics.jsonl (issue 18's measurement).

Usage: checkpoint_stall.py METRICS_JSONL CHECKPOINT_EVERY [WINDOWS_AFTER]
Each step record covers the iterations since the previous one; its wall time is the images it
covers over its img/s (evaluation time is excluded by the trainer, checkpoint time is not). A
checkpoint written after iteration k falls in the window that ends after k (the trainer flushes
metrics before it checkpoints), and an asynchronous one may slow the next windows too (the
copy, the background write). The stall of a checkpoint = the sum, over the WINDOWS_AFTER (3)
windows from that one, of each window's time above the median time of the windows that follow
no checkpoint (the first two windows, warm-up and graph capture, left out)."""
import os
import statistics
import sys

# metrics_jsonl.py, a user tool of the product's scripts/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from metrics_jsonl import records  # noqa: E402


def main():
    path, every = sys.argv[1], int(sys.argv[2])
    after = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    recs = [r for r in records(path) if r.get("img_per_s")]
    windows = []  # (first iteration, last iteration, seconds)
    prev_step, prev_images = 0, 0
    for r in recs:
        windows.append((prev_step, r["step"], (r["images"] - prev_images) / r["img_per_s"]))
        prev_step, prev_images = r["step"], r["images"]
    ckpts = sorted({k for _, k, _ in windows if k % every == 0})
    touched = set()
    for k in ckpts:
        idx = [i for i, (a, _, _) in enumerate(windows) if a >= k][:after]
        touched.update(idx)
    clean = [s for i, (_, _, s) in enumerate(windows) if i >= 2 and i not in touched]
    if not clean:
        sys.exit("checkpoint_stall.py: no window without a checkpoint to compare with")
    med = statistics.median(clean)
    spread = max(clean) - min(clean)
    print(f"{path}: {len(windows)} windows of {windows[-1][1] - windows[-1][0]} iterations, "
          f"median {med:.3f} s (range of the clean windows {spread:.3f} s)")
    for k in ckpts:
        idx = [i for i, (a, _, _) in enumerate(windows) if a >= k][:after]
        if not idx:
            continue  # the run's last checkpoint: nothing trained after it
        extra = [windows[i][2] - med for i in idx]
        print(f"  checkpoint at {k}: stall {sum(extra):.3f} s "
              f"(per window: {', '.join(f'{e:+.3f}' for e in extra)})")


if __name__ == "__main__":
    main()
