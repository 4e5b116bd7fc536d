#!/usr/bin/env python3
"""FID vs iterations of the study's arms, with the spread of seeds, and iterations-to-target.

Usage: plot_study.py OUT.png TARGET_FID ARM=METRICS[,METRICS...] [ARM=...]
Each ARM names one arm; several metrics.jsonl files separated by commas are its seeds. Plots the
mean FID of the seeds at each evaluation step, the min-max band where two or more seeds have the
step, and every seed's points; prints a markdown table: FID per step (mean and spread), and the
iteration at which the arm's mean curve (linear between evaluations) first reaches TARGET_FID.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from metrics_jsonl import records  # noqa: E402


def fids(path):
    return {r["step"]: r["fid"] for r in records(path) if r.get("fid") is not None}


def reach(curve, target):
    """First step where the piecewise-linear curve [(step, fid)] is <= target, else None."""
    for (s0, f0), (s1, f1) in zip(curve, curve[1:]):
        if f0 <= target:
            return s0
        if f1 <= target:
            return s0 + (f0 - target) / (f0 - f1) * (s1 - s0)
    return curve[-1][0] if curve and curve[-1][1] <= target else None


def main():
    out, target = sys.argv[1], float(sys.argv[2])
    arms = []
    for arg in sys.argv[3:]:
        name, files = arg.split("=", 1)
        arms.append((name, [fids(p) for p in files.split(",")]))
    steps = sorted({s for _, seeds in arms for f in seeds for s in f})
    fig, ax = plt.subplots(figsize=(8, 5))
    print("| arm | seeds | " + " | ".join(f"{s:,}" for s in steps) + f" | iters to FID {target:g} |")
    print("|---|---|" + "---|" * len(steps) + "---|")
    for name, seeds in arms:
        mean = []
        cells = []
        for s in steps:
            vals = [f[s] for f in seeds if s in f]
            if not vals:
                cells.append("")
                continue
            m = sum(vals) / len(vals)
            mean.append((s, m, min(vals), max(vals), len(vals)))
            cells.append(f"{m:.1f}" + (f" ({min(vals):.1f}-{max(vals):.1f})" if len(vals) > 1 else ""))
        line, = ax.plot([m[0] for m in mean], [m[1] for m in mean], marker="o", label=name)
        band = [m for m in mean if m[4] > 1]
        if band:
            ax.fill_between([m[0] for m in band], [m[2] for m in band], [m[3] for m in band],
                            color=line.get_color(), alpha=0.2)
            for f in seeds:
                ax.scatter(list(f), list(f.values()), color=line.get_color(), s=10)
        r = reach([(m[0], m[1]) for m in mean], target)
        print(f"| {name} | {len(seeds)} | " + " | ".join(cells) +
              f" | {'%.0f' % r if r is not None else 'not reached'} |")
    ax.axhline(target, color="gray", ls=":", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("FID (5,000 EMA samples, DDIM 25)")
    ax.set_yscale("log")
    ax.set_title("CIFAR-10, 9.6M-parameter UNet, batch 64 (band: min-max over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
