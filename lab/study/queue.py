#!/usr/bin/env python3
"""Starts the arms of a group file, at most JOBS at once, highest priority first: each arm as
`dmtrain --config C [COMMON...] [--set ...] --run-dir EXP/<name> --resume auto` in its own
process session (setsid), its output in EXP/<name>.log; a started arm is appended to
EXP/arms.txt ("name pid config sets..."), which progress.py and watchdog.py read; EXP/pending
holds how many arms wait for a slot (0 once all have started). Runs until the last arm has
started. Usage: queue.py EXP GROUP_FILE JOBS DMTRAIN [COMMON...]

queue.py --check DMTRAIN GROUP_FILE... -- [COMMON...] runs each arm's command as it would start
it, with --dry-run, and prints "FAIL <file>: <arm>: <error>" for each that does not resolve and
for names used twice in a file (they would share a run dir), else "study arms: N resolve"; exit
1 on any failure (lab/tests/study_arms.sh, which lab/check.sh runs)."""
import os
import subprocess
import sys
import tempfile
import time


def read_arms(group):
    """[name, config, *sets] for each arm line of a group file."""
    arms = []
    with open(group) as f:
        for line in f:
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                arms.append(parts)
    return arms


def arm_command(dmtrain, exp, arm, common):
    name, config, *sets = arm
    return [dmtrain, "--config", config, *common, *sets, "--run-dir", os.path.join(exp, name),
            "--resume", "auto"]


def check(dmtrain, groups, common):
    exp = os.path.join(tempfile.gettempdir(), "study-check")  # --dry-run writes nothing there
    failed, count = False, 0
    for group in groups:
        arms = read_arms(group)
        names = [a[0] for a in arms]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            print(f"FAIL {group}: arms named twice: {' '.join(twice)}")
            failed = True
        for arm in arms:
            count += 1
            # The arms' data (/tmp/c10.dmdata) exists only on the GPU machine, and --dry-run
            # refuses a missing data.path: check everything else on synthetic data.
            out = subprocess.run(arm_command(dmtrain, exp, arm, common) +
                                 ["--dry-run", "--set", "data.format=synthetic"],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                lines = (out.stdout + out.stderr).splitlines() or [f"exit {out.returncode}"]
                error = next((l for l in lines if "error" in l.lower()), lines[0])
                print(f"FAIL {group}: {arm[0]}: {error}")
                failed = True
    if count == 0:
        print("FAIL no arms found")
        return 1
    if not failed:
        print(f"study arms: {count} resolve")
    return 1 if failed else 0


def main():
    if sys.argv[1] == "--check":
        rest = sys.argv[3:]
        split = rest.index("--") if "--" in rest else len(rest)
        sys.exit(check(sys.argv[2], rest[:split], rest[split + 1:]))
    exp, group, jobs, dmtrain, common = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
    arms = read_arms(group)
    running = []
    for i, arm in enumerate(arms):
        name, config, *sets = arm
        with open(os.path.join(exp, "pending"), "w") as f:
            f.write(f"{len(arms) - i}\n")
        while len(running) >= max(1, jobs):
            running = [p for p in running if p.poll() is None]
            time.sleep(2)
        cmd = arm_command(dmtrain, exp, arm, common)
        with open(os.path.join(exp, name + ".log"), "w") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        running.append(p)
        with open(os.path.join(exp, "arms.txt"), "a") as f:
            f.write(" ".join([name, str(p.pid), config, *sets]) + "\n")
        print(f"{time.strftime('%H:%M:%S')} started {name} (pid {p.pid}): {config} {' '.join(sets)}",
              flush=True)
    with open(os.path.join(exp, "pending"), "w") as f:
        f.write("0\n")
    for p in running:  # reap, so that a finished arm is not left a zombie of this process
        p.wait()


if __name__ == "__main__":
    main()
