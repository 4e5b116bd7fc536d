"""The study's table (docs/results.md): FID per evaluation step of each arm (mean of its seeds and
their range) and the iterations each arm needs to reach a target FID, as a ratio to the
baseline's, for the arm's mean curve and for each of its seeds. No plotting here (plot_study.py
draws the same numbers), so it runs where matplotlib is missing.

An arm is (name, [seed curves]), a seed curve a dict {step: fid}. The baseline is the first arm;
the target is usually the baseline's mean FID at its last evaluation."""
import os
import sys

# metrics_jsonl.py, a user tool of the product's scripts/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from metrics_jsonl import records  # noqa: E402


def fids(path):
    """{step: fid} of the evaluations in a metrics.jsonl, or, for "FILE.csv:RUN", of the rows of
    that run in a CSV of FIDs recorded without their metrics file (columns run,step,fid; lines
    starting with # are comments saying where the numbers come from)."""
    if ".csv:" in path:
        file, run = path.rsplit(":", 1)
        out = {}
        with open(file) as f:
            rows = [line.strip().split(",") for line in f if line.strip() and line[0] != "#"]
        if rows[0] != ["run", "step", "fid"]:
            raise ValueError(f"{file}: the header must be run,step,fid, got {','.join(rows[0])}")
        for name, step, fid in rows[1:]:
            if name == run:
                out[int(step)] = float(fid)
        if not out:
            raise ValueError(f"{file}: no rows of run {run}")
        return out
    return {r["step"]: r["fid"] for r in records(path) if r.get("fid") is not None}


def reach(curve, target):
    """First step where the piecewise-linear curve [(step, fid)] is <= target, else None."""
    for (s0, f0), (s1, f1) in zip(curve, curve[1:]):
        if f0 <= target:
            return s0
        if f1 <= target:
            return s0 + (f0 - target) / (f0 - f1) * (s1 - s0)
    return curve[-1][0] if curve and curve[-1][1] <= target else None


def mean_curve(seeds, steps):
    """[(step, mean, min, max, n)] over the steps at which at least one seed has a value."""
    out = []
    for s in steps:
        vals = [f[s] for f in seeds if s in f]
        if vals:
            out.append((s, sum(vals) / len(vals), min(vals), max(vals), len(vals)))
    return out


def reach_cell(seeds, steps, target, base):
    """'19,390 (1.03x; seeds 18,574 and > 20,000)': the mean curve's iterations to the target,
    its ratio base / iterations (base: the baseline's), and each seed's when there are several.
    A curve that does not get there within its last evaluation E reads '> E'."""
    def one(curve):
        r = reach(curve, target)
        return (f"{r:,.0f}", base / r if base else None) if r else (f"> {curve[-1][0]:,}", None)
    text, ratio = one([(m[0], m[1]) for m in mean_curve(seeds, steps)])
    parts = [f"{ratio:.2f}x"] if ratio is not None else []
    if len(seeds) > 1:
        parts.append("seeds " + " and ".join(one(sorted(f.items()))[0] for f in seeds))
    return text + (f" ({'; '.join(parts)})" if parts else "")


def table(arms, target):
    """The markdown table, one row per arm, the first arm the baseline."""
    steps = sorted({s for _, seeds in arms for f in seeds for s in f})
    base = reach([(m[0], m[1]) for m in mean_curve(arms[0][1], steps)], target)
    lines = ["| arm | seeds | " + " | ".join(f"{s:,}" for s in steps) +
             f" | iterations to FID {target:g} (ratio to {arms[0][0]}) |",
             "|---|---|" + "---|" * len(steps) + "---|"]
    for name, seeds in arms:
        by_step = {m[0]: m for m in mean_curve(seeds, steps)}
        cells = []
        for s in steps:
            m = by_step.get(s)
            cells.append("" if m is None else f"{m[1]:.1f}" +
                         (f" ({m[2]:.1f}-{m[3]:.1f})" if m[4] > 1 else ""))
        lines.append(f"| {name} | {len(seeds)} | " + " | ".join(cells) +
                     f" | {reach_cell(seeds, steps, target, base)} |")
    return "\n".join(lines)
