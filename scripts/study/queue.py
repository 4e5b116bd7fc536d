#!/usr/bin/env python3
"""Starts the arms of a group file, at most JOBS at once, highest priority first: each arm as
`dmtrain --config C [COMMON...] [--set ...] --run-dir EXP/<name> --resume auto` in its own
process session (setsid), its output in EXP/<name>.log; a started arm is appended to
EXP/arms.txt ("name pid config sets..."), which progress.py and watchdog.py read; EXP/pending
holds how many arms wait for a slot (0 once all have started). Runs until the last arm has
started. Usage: queue.py EXP GROUP_FILE JOBS DMTRAIN [COMMON...]"""
import os
import subprocess
import sys
import time


def main():
    exp, group, jobs, dmtrain, common = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
    arms = []
    with open(group) as f:
        for line in f:
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                arms.append(parts)
    running = []
    for i, (name, config, *sets) in enumerate(arms):
        with open(os.path.join(exp, "pending"), "w") as f:
            f.write(f"{len(arms) - i}\n")
        while len(running) >= max(1, jobs):
            running = [p for p in running if p.poll() is None]
            time.sleep(2)
        cmd = [dmtrain, "--config", config, *common, *sets, "--run-dir", os.path.join(exp, name),
               "--resume", "auto"]
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
