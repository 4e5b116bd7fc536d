#!/usr/bin/env python3
"""Training unchanged? Compares the loss curves of runs from metrics.jsonl files: a baseline A,
a variant B of the same seed (a speed lever switched on), and a control C, the baseline with
another seed, whose distance from A is the noise the comparison is judged against. Prints the
mean loss of each window of iterations, |B - A| and |C - A| per window, and a verdict: B is
within noise when its mean distance from A is at most the control's and it is the farther of
the two in at most a third of the windows. (A lever that changes the numbers only by rounding
keeps B closer to A than C is early on, as A and B share initial weights, data order and noise;
later the rounding differences grow, as any two trajectories' do, to about a seed's.)

Usage: curve_check.py A.jsonl B.jsonl C.jsonl [--window 200]"""
import argparse
import os
import sys

# metrics_jsonl.py, a user tool of the product's scripts/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from metrics_jsonl import records  # noqa: E402


def losses(path):
    return {r["step"]: r["loss"] for r in records(path) if "loss" in r}


def windows(curve, width):
    out = {}
    for step, loss in curve.items():
        out.setdefault((step - 1) // width, []).append(loss)
    return {w: sum(v) / len(v) for w, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("c")
    ap.add_argument("--window", type=int, default=200)
    args = ap.parse_args()
    wa, wb, wc = (windows(losses(p), args.window) for p in (args.a, args.b, args.c))
    common = sorted(set(wa) & set(wb) & set(wc))
    if not common:
        raise SystemExit("curve_check: the three runs share no window of logged losses")
    print(f"{'iterations':>14} {'A':>9} {'B':>9} {'C':>9} {'|B-A|':>9} {'|C-A|':>9}")
    db, dc, worse = [], [], 0
    for w in common:
        b, c = abs(wb[w] - wa[w]), abs(wc[w] - wa[w])
        db.append(b)
        dc.append(c)
        worse += b > c
        lo, hi = w * args.window + 1, (w + 1) * args.window
        print(f"{lo:>6}-{hi:<7} {wa[w]:9.5f} {wb[w]:9.5f} {wc[w]:9.5f} {b:9.5f} {c:9.5f}")
    mb, mc = sum(db) / len(db), sum(dc) / len(dc)
    print(f"mean |B-A| {mb:.5f}, mean |C-A| {mc:.5f}; B farther than C in {worse} of "
          f"{len(common)} windows")
    ok = mb <= mc and 3 * worse <= len(common)
    print("verdict:", "within noise" if ok else "NOT within noise")


if __name__ == "__main__":
    main()
