#!/usr/bin/env python3
"""FID vs iterations of the study's arms, with the spread of seeds, and iterations-to-target.

Usage: plot_study.py OUT.png TARGET_FID ARM=METRICS[,METRICS...] [ARM=...]
Each ARM names one arm; several metrics.jsonl files separated by commas are its seeds. Plots the
mean FID of the seeds at each evaluation step, the min-max band where two or more seeds have the
step, and every seed's points; prints the markdown table of study_table.py: FID per step (mean
and spread), and the iterations at which the arm's mean curve and each seed (linear between
evaluations) first reach TARGET_FID, as a ratio to the first arm's (the baseline's).
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from study_table import fids, mean_curve, table  # noqa: E402


def main():
    out, target = sys.argv[1], float(sys.argv[2])
    arms = []
    for arg in sys.argv[3:]:
        name, files = arg.split("=", 1)
        arms.append((name, [fids(p) for p in files.split(",")]))
    steps = sorted({s for _, seeds in arms for f in seeds for s in f})
    print(table(arms, target))
    fig, ax = plt.subplots(figsize=(8, 5))
    # matplotlib's default cycle has 10 colours; the study has more arms than that. tab20's dark
    # shades first, then its light ones: neighbours in the list (minsnr5, speed) get distinct hues.
    colours = plt.cm.tab20.colors[0::2] + plt.cm.tab20.colors[1::2]
    for i, (name, seeds) in enumerate(arms):
        mean = mean_curve(seeds, steps)
        line, = ax.plot([m[0] for m in mean], [m[1] for m in mean], marker="o", label=name,
                        color=colours[i % len(colours)])
        band = [m for m in mean if m[4] > 1]
        if band:
            ax.fill_between([m[0] for m in band], [m[2] for m in band], [m[3] for m in band],
                            color=line.get_color(), alpha=0.2)
            for f in seeds:
                ax.scatter(list(f), list(f.values()), color=line.get_color(), s=10)
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
