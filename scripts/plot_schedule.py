#!/usr/bin/env python3
"""Plot the CSV of `dmtrain schedule` (columns iteration,t,p,beta1,lr; one row per k and t).

    dmtrain schedule --config configs/x.yaml --at 0,25000,50000,100000 --out sched.csv
    python3 scripts/plot_schedule.py sched.csv sched.png

Left panel: the timestep distribution p_k(t) against t, one curve per iteration k. When the CSV
holds several iterations, a right panel shows beta1_k and lr_k against k (lr on its own axis).
Needs matplotlib (pip install matplotlib); uses only the standard library besides.
"""
import argparse
import csv
import sys
from collections import OrderedDict


def read_schedule(path):
    """Returns OrderedDict k -> {"t": [...], "p": [...], "beta1": float, "lr": float}."""
    rows = OrderedDict()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        want = {"iteration", "t", "p", "beta1", "lr"}
        if reader.fieldnames is None or not want.issubset(reader.fieldnames):
            sys.exit(f"{path}: expected the header iteration,t,p,beta1,lr, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                k = int(row["iteration"])
                entry = rows.setdefault(k, {"t": [], "p": [], "beta1": float(row["beta1"]),
                                            "lr": float(row["lr"])})
                entry["t"].append(int(row["t"]))
                entry["p"].append(float(row["p"]))
            except (TypeError, ValueError) as e:
                sys.exit(f"{path}:{line}: bad row {row}: {e}")
    if not rows:
        sys.exit(f"{path}: no rows")
    return rows


def plot(rows, out, title=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    several = len(rows) > 1
    fig, axes = plt.subplots(1, 2 if several else 1, figsize=(11 if several else 6, 4),
                             squeeze=False)
    ax = axes[0][0]
    for k, e in rows.items():
        ax.plot(e["t"], e["p"], label=f"k = {k}")
    ax.set_xlabel("timestep t")
    ax.set_ylabel("p_k(t)")
    ax.set_title("timestep distribution")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    if several:
        ks = sorted(rows)
        ax = axes[0][1]
        ax.plot(ks, [rows[k]["beta1"] for k in ks], "o-", color="C0", label="beta1_k")
        ax.set_xlabel("iteration k")
        ax.set_ylabel("beta1_k", color="C0")
        ax2 = ax.twinx()
        ax2.plot(ks, [rows[k]["lr"] for k in ks], "s--", color="C3", label="lr_k")
        ax2.set_ylabel("lr_k", color="C3")
        ax.set_title("MDLRC optimizer schedule")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="CSV written by `dmtrain schedule`")
    ap.add_argument("png", help="output image (PNG)")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("plot_schedule.py needs matplotlib: pip install matplotlib")
    plot(read_schedule(a.csv), a.png, a.title)


if __name__ == "__main__":
    main()
