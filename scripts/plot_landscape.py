#!/usr/bin/env python3
"""Plot the CSV of `dmtrain landscape` (columns kind,alpha,index,value).

    dmtrain landscape --checkpoints runs/x/checkpoints/iter_A runs/x/checkpoints/iter_B \
        --points 21 --batch 64 --seed 0 --hessian-top 3 --out landscape.csv
    python3 scripts/plot_landscape.py landscape.csv landscape.png

Left panel: the fixed-batch training loss along theta(a) = (1 - a) theta_A + a theta_B (rows
`line,a,0,loss`), with A (a = 0) and B (a = 1) marked. Right panel (when the CSV has `hessian`
rows): the top Hessian eigenvalues at A and at B, one marker per eigenvalue index.
Needs matplotlib; uses only the standard library besides.
"""
import argparse
import csv
import sys


def read_landscape(path):
    line, hessian = [], {0: [], 1: []}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        want = {"kind", "alpha", "index", "value"}
        if reader.fieldnames is None or not want.issubset(reader.fieldnames):
            sys.exit(f"{path}: expected the header kind,alpha,index,value, got {reader.fieldnames}")
        for n, row in enumerate(reader, start=2):
            try:
                if row["kind"] == "line":
                    line.append((float(row["alpha"]), float(row["value"])))
                elif row["kind"] == "hessian":
                    which = int(float(row["alpha"]))
                    hessian.setdefault(which, []).append((int(row["index"]), float(row["value"])))
                else:
                    sys.exit(f"{path}:{n}: unknown kind '{row['kind']}'")
            except ValueError as e:
                sys.exit(f"{path}:{n}: {e}")
    if not line:
        sys.exit(f"{path}: no `line` rows")
    return sorted(line), {k: sorted(v) for k, v in hessian.items() if v}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("out", help="image file (png, pdf, svg ...)")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    line, hessian = read_landscape(args.csv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if hessian else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot([a for a, _ in line], [l for _, l in line], "o-", ms=3)
    for a, l in line:
        if a in (0.0, 1.0):
            ax.annotate("A" if a == 0.0 else "B", (a, l), textcoords="offset points",
                        xytext=(0, 8), ha="center")
    ax.set_xlabel("a   (theta = (1 - a) theta_A + a theta_B)")
    ax.set_ylabel("training loss (fixed batch)")
    ax.grid(alpha=0.3)
    if hessian:
        ax = axes[0][1]
        for which, marker in ((0, "o"), (1, "s")):
            if which in hessian:
                ax.plot([i for i, _ in hessian[which]], [v for _, v in hessian[which]], marker,
                        label="A" if which == 0 else "B")
        ax.set_xlabel("eigenvalue index (0 = largest)")
        ax.set_ylabel("Hessian eigenvalue")
        ax.legend()
        ax.grid(alpha=0.3)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=150)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
