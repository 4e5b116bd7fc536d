#!/usr/bin/env python3
"""Progress of the study's arms: one line per arm (step, img/s, last FID, alive), from
<exp>/arms.txt ("name pid config sets...") and each <exp>/<name>/metrics.jsonl. An arm whose
process has ended reads "end", or "FAIL" with dmtrain's error line when its log <exp>/<name>.log
has one (study group 5 lost an arm to an out-of-memory error that read as "end").
--running prints only how many arms' processes are alive; --alive PID exits 0 when that
process runs."""
import os
import sys

# metrics_jsonl.py, a user tool of the product's scripts/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from metrics_jsonl import records as read_records  # noqa: E402


def records(path):
    """The run's records so far ([] before it wrote any)."""
    return read_records(path, missing_ok=True)


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False




def failure(exp, name):
    """dmtrain's last error line in the arm's log ("dmtrain: error: ..." or "dmtrain: internal
    error: ..."), or None."""
    last = None
    try:
        with open(os.path.join(exp, name + ".log"), errors="replace") as f:
            for line in f:
                if line.startswith(("dmtrain: error:", "dmtrain: internal error:")):
                    last = line.strip()
    except OSError:
        pass
    return last


def arms(exp):
    try:
        with open(os.path.join(exp, "arms.txt")) as f:
            return [l.split()[:2] for l in f if l.strip()]
    except OSError:
        return []


def main():
    exp = sys.argv[1]
    if "--alive" in sys.argv:  # exit status 0 when the process is running
        sys.exit(0 if alive(int(sys.argv[sys.argv.index("--alive") + 1])) else 1)
    rows = []
    for name, pid in arms(exp):
        recs = records(os.path.join(exp, name, "metrics.jsonl"))
        steps = [r for r in recs if "loss" in r]
        fids = [r for r in recs if "fid" in r]
        rows.append((name, alive(int(pid)), steps[-1]["step"] if steps else 0,
                     steps[-1].get("img_per_s", 0) if steps else 0,
                     fids[-1] if fids else None))
    if "--running" in sys.argv:
        print(sum(1 for r in rows if r[1]))
        return
    total = sum(r[3] for r in rows if r[1])
    for name, up, step, ips, fid in rows:
        f = f"fid {fid['fid']:.2f} @ {fid['step']}" if fid else ""
        err = None if up else failure(exp, name)
        state = "run " if up else ("FAIL" if err else "end ")
        print(f"{name:18s} {state} step {step:6d}  {ips:8.0f} img/s  {f}")
        if err:
            print(f"{'':18s}      {err[:200]}")
    print(f"-- {sum(1 for r in rows if r[1])} running, {total:.0f} img/s in all", flush=True)


if __name__ == "__main__":
    main()
