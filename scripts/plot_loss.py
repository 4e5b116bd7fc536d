#!/usr/bin/env python3
"""Training loss against iterations for dmtrain runs, and how far each run is from the first.

Usage: scripts/plot_loss.py OUT.png NAME=RUN_DIR_OR_METRICS_JSONL [NAME=...]
Reads the {"step": k, "loss": v} records that the trainer writes every log.every iterations,
plots one line per run, and prints, for every run after the first, the mean and the largest
(after iteration 500) relative difference to the first run at the same steps, next to the first
run's own point-to-point movement (its batch-to-batch noise).
"""
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def losses(path):
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [(r["step"], r["loss"]) for r in recs if r.get("loss") is not None]


def main():
    if len(sys.argv) < 3 or any("=" not in a for a in sys.argv[2:]):
        sys.exit(__doc__)
    runs = [(a.split("=", 1)[0], losses(a.split("=", 1)[1])) for a in sys.argv[2:]]
    base_name, base = runs[0]
    noise = [abs(b[1] - a[1]) / a[1] for a, b in zip(base, base[1:])]
    print(f"{base_name}: {len(base)} points, point-to-point movement {100 * statistics.mean(noise):.2f}%")
    for name, run in runs[1:]:
        ref = dict(base)
        d = [(s, abs(v - ref[s]) / ref[s]) for s, v in run if s in ref]
        late = [x for s, x in d if s > 500] or [0.0]
        print(f"{name} vs {base_name}: mean |relative difference| {100 * statistics.mean(x for _, x in d):.2f}%, "
              f"max after iteration 500 {100 * max(late):.2f}%, last-10 mean {statistics.mean(v for _, v in run[-10:]):.5f} "
              f"vs {statistics.mean(v for _, v in base[-10:]):.5f}")
    plt.figure(figsize=(7, 4))
    for name, run in runs:
        plt.plot([s for s, _ in run], [v for _, v in run], label=name, lw=1.2)
    plt.yscale("log")
    plt.xlabel("iteration")
    plt.ylabel("training loss (mean over log.every)")
    plt.legend()
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(sys.argv[1], dpi=120)


if __name__ == "__main__":
    main()
