#!/usr/bin/env python3
"""FID against training iterations for one or more dmtrain runs.

Usage: scripts/plot_fid.py OUT.png NAME=RUN_DIR_OR_METRICS_JSONL [NAME=...]
Reads the {"step": k, "fid": v} records that eval.fid_every writes to metrics.jsonl, plots one
line per run, and prints a table of FID per step.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fid_records(path):
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    out = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("fid") is not None:
                out.append((rec["step"], rec["fid"]))
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = [a.split("=", 1) for a in sys.argv[2:]]
    fig, ax = plt.subplots(figsize=(6, 4))
    table = {}
    for name, path in runs:
        recs = fid_records(path)
        table[name] = dict(recs)
        ax.plot([s for s, _ in recs], [v for _, v in recs], marker="o", label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("FID (lower is better)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=120)
    steps = sorted({s for t in table.values() for s in t})
    print("step," + ",".join(table))
    for s in steps:
        print(str(s) + "," + ",".join(f"{table[n].get(s, float('nan')):.2f}" for n in table))


if __name__ == "__main__":
    main()
