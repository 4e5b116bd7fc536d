#!/usr/bin/env python3
"""Which ops launch the kernels of a profile: reads a Chrome trace written by `dmtrain bench
--profile --trace T.json` (Kineto's format; .json or .json.gz) and sums, for every device
kernel whose name matches PATTERN (a regular expression), its device time by the CPU op that
launched it, named by the nearest autograd node above that op ("forward" outside backward) and
the last ops of its call chain, with the input shapes when the trace has them (--trace records
them). Kernels replayed from a CUDA graph carry no launching op: profile with
`--set train.cuda_graphs=false` for this. With --cpu-op NAME it attributes CPU ops of that name
instead (a CPU-only trace).

Usage: trace_attribution.py TRACE [--kernel PATTERN | --cpu-op NAME] [--top N] [--depth D]
Prints one row per (autograd node, op chain, shapes): total ms, calls, mean us."""
import argparse
import collections
import gzip
import json
import re


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)["traceEvents"]


def chains(cpu_ops):
    """For each CPU op (by id()), the list of ops enclosing it on its thread, outermost first."""
    out = {}
    by_thread = collections.defaultdict(list)
    for e in cpu_ops:
        by_thread[(e.get("pid"), e.get("tid"))].append(e)
    for ops in by_thread.values():
        ops.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
        stack = []
        for e in ops:
            while stack and stack[-1]["ts"] + stack[-1].get("dur", 0) <= e["ts"]:
                stack.pop()
            out[id(e)] = list(stack)
            stack.append(e)
    return out


def describe(op, enclosing, depth):
    names = [o["name"] for o in enclosing] + [op["name"]]
    node = next((n.split(": ", 1)[-1] for n in reversed(names) if "evaluate_function" in n),
                "forward")
    chain = " > ".join(n for n in names[-depth:] if "evaluate_function" not in n)
    shapes = op.get("args", {}).get("Input Dims")
    return node, chain, json.dumps(shapes) if shapes else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--cpu-op", default=None)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--depth", type=int, default=3)
    a = ap.parse_args()
    events = [e for e in load(a.trace) if e.get("ph") == "X"]
    cpu_ops = [e for e in events if e.get("cat") in ("cpu_op", "user_annotation")]
    enclosing = chains(cpu_ops)
    by_external = {}
    for e in cpu_ops:
        ext = e.get("args", {}).get("External id")
        # The innermost op with this id launched the kernel: keep the latest-starting one.
        if ext is not None and (ext not in by_external or e["ts"] >= by_external[ext]["ts"]):
            by_external[ext] = e
    total = collections.Counter()
    calls = collections.Counter()
    unattributed = [0, 0.0]
    if a.cpu_op:
        for e in cpu_ops:
            if e["name"] == a.cpu_op:
                key = describe(e, enclosing[id(e)], a.depth)
                total[key] += e.get("dur", 0)
                calls[key] += 1
    else:
        pattern = re.compile(a.kernel or ".")
        for e in events:
            if e.get("cat") not in ("kernel", "gpu_memcpy", "gpu_memset"):
                continue
            if not pattern.search(e["name"]):
                continue
            op = by_external.get(e.get("args", {}).get("External id"))
            if op is None:
                unattributed[0] += 1
                unattributed[1] += e.get("dur", 0)
                continue
            key = describe(op, enclosing[id(op)], a.depth)
            total[key] += e.get("dur", 0)
            calls[key] += 1
    print(f"{'total ms':>9} {'calls':>6} {'mean us':>8}  autograd node | op chain | input shapes")
    for key, us in total.most_common(a.top):
        node, chain, shapes = key
        print(f"{us / 1000:9.3f} {calls[key]:6d} {us / calls[key]:8.1f}  {node} | {chain} | "
              f"{shapes[:120]}")
    print(f"{sum(total.values()) / 1000:9.3f} {sum(calls.values()):6d}           in all")
    if unattributed[0]:
        print(f"{unattributed[1] / 1000:9.3f} {unattributed[0]:6d}           with no launching op "
              "(CUDA-graph replays?)")


if __name__ == "__main__":
    main()
