#!/usr/bin/env python3
"""Keeps a group of arms inside its time budget: every 60 s (from 150 s after the launch) it
projects each running arm's end from its iteration rate (the median of the last five logged
steps' img/s) plus the
time its remaining FID evaluations will take (the mean fid_seconds of those after the first,
else 30 s each: the first includes loading Inception, 58-64 s against 13-19 s later); if
the latest end falls after launch + BUDGET, it sends SIGINT to the lowest-priority running arm
(the last in arms.txt), which checkpoints and stops. Usage: watchdog.py EXP_DIR BUDGET_S."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from progress import alive, arms, records  # noqa: E402

ITERATIONS, FID_EVERY = 20000, 4000


def projected_end(exp, name, now):
    recs = records(os.path.join(exp, name, "metrics.jsonl"))
    steps = [r for r in recs if "loss" in r]
    if len(steps) < 2:
        return None
    # rate over the last ~1000 iterations of wall time
    mtime = os.path.getmtime(os.path.join(exp, name, "metrics.jsonl"))
    # The median, not the mean: a logged interval that spans an FID evaluation (49 s the first,
    # with the Inception load) or a neighbour's burst reports a fraction of the training rate,
    # and the mean of five let one such record project a 2,000 s end; in group 5 that stopped
    # five of six arms that would have finished.
    ips = sorted(r.get("img_per_s", 0) for r in steps[-5:])
    batch = steps[-1]["images"] / max(1, steps[-1]["step"])
    rate = ips[len(ips) // 2] / batch  # iterations per second while training
    if rate <= 0:
        return None
    # The first evaluation loads Inception and warms it up (58-64 s each with six arms in group
    # 7, the later ones 13-19 s): counted four more times, it projected 180 s too late and
    # stopped an arm that would have finished. Later evaluations are the estimate once there
    # are any; until then 30 s.
    fids = [r.get("fid_seconds", 30.0) for r in recs if "fid" in r][1:]
    fid_s = sum(fids) / len(fids) if fids else 30.0
    step = steps[-1]["step"]
    left_fids = ITERATIONS // FID_EVERY - step // FID_EVERY
    return mtime + (ITERATIONS - step) / rate + left_fids * fid_s


def main():
    exp, budget = sys.argv[1], float(sys.argv[2])
    with open(os.path.join(exp, "launched_at")) as f:
        deadline = float(f.read()) + budget
    time.sleep(150)
    while True:
        now = time.time()
        running = [(n, int(p)) for n, p in arms(exp) if alive(int(p))]
        if not running:
            return
        ends = {n: projected_end(exp, n, now) for n, _ in running}
        known = [e for e in ends.values() if e is not None]
        latest = max(known) if known else now
        print(f"{time.strftime('%H:%M:%S')} {len(running)} running, latest end in "
              f"{latest - now:.0f} s, deadline in {deadline - now:.0f} s", flush=True)
        if latest > deadline and len(running) > 1:
            name, pid = running[-1]
            print(f"  SIGINT {name}: the group would not finish in time", flush=True)
            os.kill(pid, signal.SIGINT)
            time.sleep(90)  # let the others speed up before judging again
            continue
        time.sleep(60)


if __name__ == "__main__":
    main()
