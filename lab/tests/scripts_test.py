"""The lab's tools (the study's queue and progress, the benchmarks' readers, the lease's
prebuilt binaries), run on small inputs whose answers are worked out by hand. Run by
lab/check.sh: python3 -m unittest discover -s lab/tests -p '*_test.py'."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(*parts):
    return os.path.join(ROOT, "lab", *parts)


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)


class CheckpointStall(unittest.TestCase):
    def test_the_window_after_a_checkpoint_carries_its_extra_time(self):
        # Windows of 10 iterations of 64 images, 1.0 s each, except the one after the
        # checkpoint at iteration 50, which took 1.5 s: a stall of 0.5 s.
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "metrics.jsonl")
            with open(path, "w") as f:
                for step in range(10, 101, 10):
                    seconds = 1.5 if step == 60 else 1.0
                    f.write(json.dumps({"step": step, "images": step * 64,
                                        "img_per_s": 640 / seconds, "loss": 0.1}) + "\n")
            out = run(script("bench", "checkpoint_stall.py"), path, "50", "1")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("checkpoint at 50: stall 0.500 s", out.stdout)


class CurveCheck(unittest.TestCase):
    def write(self, d, name, losses):
        path = os.path.join(d, name + ".jsonl")
        with open(path, "w") as f:
            for step, loss in losses:
                f.write(json.dumps({"step": step, "loss": loss}) + "\n")
        return path

    def test_verdicts(self):
        with tempfile.TemporaryDirectory() as d:
            steps = range(10, 401, 10)
            a = self.write(d, "a", [(s, 1.0 / s) for s in steps])
            near = self.write(d, "near", [(s, 1.0 / s + 1e-4) for s in steps])
            far = self.write(d, "far", [(s, 1.0 / s + 1e-2) for s in steps])
            ok = run(script("bench", "curve_check.py"), a, near, far, "--window", "100")
            self.assertIn("verdict: within noise", ok.stdout)
            bad = run(script("bench", "curve_check.py"), a, far, near, "--window", "100")
            self.assertIn("verdict: NOT within noise", bad.stdout)
            self.assertIn("B farther than C in 4 of 4 windows", bad.stdout)


class TraceAttribution(unittest.TestCase):
    def test_kernels_are_summed_by_their_launching_op_and_autograd_node(self):
        cpu = [  # a backward node enclosing a contiguous() whose copy_ launched two kernels
            {"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function: CatBackward0",
             "pid": 1, "tid": 2, "ts": 0, "dur": 100, "args": {"External id": 1}},
            {"ph": "X", "cat": "cpu_op", "name": "aten::contiguous", "pid": 1, "tid": 2,
             "ts": 10, "dur": 50, "args": {"External id": 2}},
            {"ph": "X", "cat": "cpu_op", "name": "aten::copy_", "pid": 1, "tid": 2, "ts": 20,
             "dur": 30, "args": {"External id": 3, "Input Dims": [[4, 8], [4, 8]]}},
            {"ph": "X", "cat": "cpu_op", "name": "aten::add", "pid": 1, "tid": 2, "ts": 200,
             "dur": 5, "args": {"External id": 4}},
        ]
        gpu = [
            {"ph": "X", "cat": "kernel", "name": "direct_copy_kernel", "pid": 0, "tid": 7,
             "ts": 30, "dur": 20, "args": {"External id": 3}},
            {"ph": "X", "cat": "kernel", "name": "direct_copy_kernel", "pid": 0, "tid": 7,
             "ts": 60, "dur": 10, "args": {"External id": 3}},
            {"ph": "X", "cat": "kernel", "name": "add_kernel", "pid": 0, "tid": 7, "ts": 210,
             "dur": 4, "args": {"External id": 4}},
            {"ph": "X", "cat": "kernel", "name": "direct_copy_kernel", "pid": 0, "tid": 7,
             "ts": 300, "dur": 7, "args": {}},  # a graph replay's: no launching op
        ]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "trace.json")
            with open(path, "w") as f:
                json.dump({"traceEvents": cpu + gpu}, f)
            out = run(script("bench", "trace_attribution.py"), path, "--kernel", "direct_copy")
            self.assertEqual(out.returncode, 0, out.stderr)
            rows = [l for l in out.stdout.splitlines() if "CatBackward0" in l]
            self.assertEqual(len(rows), 1, out.stdout)
            self.assertIn("0.030      2", rows[0])  # 30 us in 2 kernels
            self.assertIn("aten::contiguous > aten::copy_", rows[0])
            self.assertIn("[[4, 8], [4, 8]]", rows[0])
            self.assertIn("0.007      1           with no launching op", out.stdout)
            self.assertNotIn("add_kernel", out.stdout)


class StudyTable(unittest.TestCase):
    def test_iterations_to_the_target_and_their_ratio_for_the_mean_and_each_seed(self):
        sys.path.insert(0, script("study"))
        import study_table  # noqa: E402
        # Baseline seeds 50 -> 30 and 40 -> 20 over steps 1,000 and 2,000: mean 45 -> 25, which
        # reaches 25 at 2,000; seed 1 never does, seed 2 at 1,000 + 15/20 * 1,000 = 1,750. The
        # arm is at 25 already at 1,000: 2,000 / 1,000 = 2.00x.
        arms = [("base", [{1000: 50.0, 2000: 30.0}, {1000: 40.0, 2000: 20.0}]),
                ("arm", [{1000: 25.0, 2000: 10.0}]),
                ("slow", [{1000: 60.0}])]
        rows = study_table.table(arms, 25.0).splitlines()
        self.assertEqual(len(rows), 5)
        self.assertEqual(rows[2], "| base | 2 | 45.0 (40.0-50.0) | 25.0 (20.0-30.0) | "
                                  "2,000 (1.00x; seeds > 2,000 and 1,750) |")
        self.assertEqual(rows[3], "| arm | 1 | 25.0 | 10.0 | 1,000 (2.00x) |")
        self.assertEqual(rows[4], "| slow | 1 | 60.0 |  | > 1,000 |")
        self.assertAlmostEqual(study_table.reach([(0, 10.0), (100, 0.0)], 2.5), 75.0)

    def test_fids_of_one_run_from_a_csv_of_recorded_values(self):
        sys.path.insert(0, script("study"))
        import study_table  # noqa: E402
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "f.csv")
            with open(p, "w") as f:
                f.write("# printed by progress.py\nrun,step,fid\na,4000,155.0\nb,4000,1\na,8000,43.05\n")
            self.assertEqual(study_table.fids(p + ":a"), {4000: 155.0, 8000: 43.05})
            with self.assertRaisesRegex(ValueError, "no rows of run c"):
                study_table.fids(p + ":c")
            with open(p, "w") as f:
                f.write("arm,step,fid\n")
            with self.assertRaisesRegex(ValueError, "header must be run,step,fid"):
                study_table.fids(p + ":a")


class StudyQueue(unittest.TestCase):
    def test_at_most_jobs_arms_run_at_once_in_priority_order(self):
        with tempfile.TemporaryDirectory() as d:
            fake = os.path.join(d, "fake_dmtrain")
            with open(fake, "w") as f:  # logs its arguments and its start and end times
                f.write("#!/bin/sh\necho \"$@\"\necho start $(date +%s.%N) >> " + d +
                        "/times\nsleep 0.4\necho end $(date +%s.%N) >> " + d + "/times\n")
            os.chmod(fake, 0o755)
            group = os.path.join(d, "g.arms")
            with open(group, "w") as f:
                f.write("# a comment\nfirst c1.yaml --set a=1\nsecond c2.yaml\n"
                        "third c3.yaml --set b=2\nfourth c4.yaml\n")
            open(os.path.join(d, "arms.txt"), "w").close()
            out = run(script("study", "queue.py"), d, group, "2", fake, "--set", "common=1")
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(d, "arms.txt")) as f:
                names = [l.split()[0] for l in f if l.strip()]
            self.assertEqual(names, ["first", "second", "third", "fourth"])
            with open(os.path.join(d, "pending")) as f:
                self.assertEqual(f.read().strip(), "0")
            with open(os.path.join(d, "third.log")) as f:
                self.assertEqual(f.read().split(), ["--config", "c3.yaml", "--set", "common=1",
                                                    "--set", "b=2", "--run-dir",
                                                    os.path.join(d, "third"), "--resume", "auto"])
            events = []
            with open(os.path.join(d, "times")) as f:
                for line in f:
                    kind, t = line.split()
                    events.append((float(t), 1 if kind == "start" else -1))
            running, most = 0, 0
            for _, delta in sorted(events):
                running += delta
                most = max(most, running)
            self.assertEqual(len(events), 8)
            self.assertEqual(most, 2)
            # progress.py counts none of the finished arms as running
            count = run(script("study", "progress.py"), d, "--running")
            self.assertEqual(count.stdout.strip(), "0")
            with open(os.path.join(d, "arms.txt")) as f:
                first_pid = f.readline().split()[1]
            self.assertEqual(run(script("study", "progress.py"), d, "--alive", first_pid).returncode, 1)
            self.assertEqual(run(script("study", "progress.py"), d, "--alive",
                                 str(os.getpid())).returncode, 0)


class StudyProgress(unittest.TestCase):
    def test_an_arm_that_died_with_an_error_reads_fail_with_the_error(self):
        with tempfile.TemporaryDirectory() as d:
            dead = subprocess.Popen(["true"])
            dead.wait()  # a pid that no longer runs
            with open(os.path.join(d, "arms.txt"), "w") as f:
                f.write(f"ok {dead.pid} c.yaml\noom {dead.pid} c.yaml\n")
            for name in ("ok", "oom"):
                os.makedirs(os.path.join(d, name))
                with open(os.path.join(d, name, "metrics.jsonl"), "w") as f:
                    f.write(json.dumps({"step": 4000, "loss": 0.1, "img_per_s": 1376.0}) + "\n")
            with open(os.path.join(d, "ok.log"), "w") as f:
                f.write("[info] done\n")
            with open(os.path.join(d, "oom.log"), "w") as f:
                f.write("[info] checkpoint\ndmtrain: internal error: The following operation "
                        "failed in the TorchScript interpreter.\nRuntimeError: CUDA out of memory\n")
            out = run(script("study", "progress.py"), d).stdout.splitlines()
            self.assertTrue(out[0].startswith("ok") and " end  step   4000" in out[0], out)
            self.assertTrue(out[1].startswith("oom") and " FAIL step   4000" in out[1], out)
            self.assertIn("dmtrain: internal error: The following operation failed", out[2])
            self.assertEqual(out[3], "-- 0 running, 0 img/s in all")


class StudyWatchdog(unittest.TestCase):
    def projection(self, rows):
        """watchdog.projected_end for one arm whose metrics are ROWS, less the file's mtime."""
        sys.path.insert(0, script("study"))
        import watchdog  # noqa: E402
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "arm"))
            path = os.path.join(d, "arm", "metrics.jsonl")
            with open(path, "w") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))
            return watchdog.projected_end(d, "arm", time.time()) - os.path.getmtime(path)

    def test_projection_ignores_one_record_that_spans_an_fid_evaluation(self):
        # batch 64, 1,280 img/s (20 it/s) except the record after the 4,000 FID (64 img/s)
        rows = [{"step": s, "images": 64 * s, "loss": 0.1, "img_per_s": 1280.0}
                for s in (3600, 3800, 4200, 4400)]
        rows.insert(2, {"step": 4000, "fid": 100.0, "fid_seconds": 50.0})
        rows.insert(3, {"step": 4000, "images": 64 * 4000, "loss": 0.1, "img_per_s": 64.0})
        # by hand: 15,600 iterations left at 20 it/s = 780 s, plus 4 FIDs of 30 s = 120 s
        # (the mean of the five rates, 1,036.8 img/s, would say 963 s; the first FID's 50 s,
        # which includes loading Inception, is not the later ones' cost)
        self.assertAlmostEqual(self.projection(rows), 900.0, places=3)

    def test_later_fid_evaluations_estimate_the_remaining_ones(self):
        rows = [{"step": s, "images": 64 * s, "loss": 0.1, "img_per_s": 1280.0}
                for s in (7000, 7500, 8500, 9000, 9500, 10000)]
        rows.insert(2, {"step": 4000, "fid": 160.0, "fid_seconds": 62.0})
        rows.insert(3, {"step": 8000, "fid": 47.0, "fid_seconds": 17.0})
        # by hand: 10,000 iterations left at 20 it/s = 500 s, plus 3 FIDs (12,000, 16,000,
        # 20,000) of 17 s = 51 s; the mean with the first (39.5 s) would say 618.5 s
        self.assertAlmostEqual(self.projection(rows), 551.0, places=3)


class UsePrebuilt(unittest.TestCase):
    """lab/lease/use_prebuilt.sh in a small fake tree: it installs carried binaries only when they
    were built from the tree's sources, and its wrappers run them with the carried libraries."""

    def tree(self, d):
        root = os.path.join(d, "repo")
        for sub in ("lab/lease", "cmake", "apps", "include", "src", "tests", ".carry"):
            os.makedirs(os.path.join(root, sub))
        for name in ("use_prebuilt.sh", "source_hash.sh"):
            with open(script("lease", name)) as src, \
                    open(os.path.join(root, "lab", "lease", name), "w") as dst:
                dst.write(src.read())
            os.chmod(os.path.join(root, "lab", "lease", name), 0o755)
        for path, text in (("CMakeLists.txt", "project(x)\n"), ("CMakePresets.json", "{}\n"),
                           ("src/a.cpp", "int a;\n")):
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        # a python3 that names a torch library folder, as the GPU machine's does
        bindir = os.path.join(d, "bin")
        os.makedirs(bindir)
        with open(os.path.join(bindir, "python3"), "w") as f:
            f.write("#!/bin/sh\necho /opt/torch/lib\n")
        os.chmod(os.path.join(bindir, "python3"), 0o755)
        return root, bindir

    def pack(self, d, root, sha1, source_dir):
        pkg = os.path.join(d, "pkg")
        os.makedirs(os.path.join(pkg, "bin"))
        os.makedirs(os.path.join(pkg, "lib"))
        exe = os.path.join(pkg, "bin", "dmtrain")
        with open(exe, "w") as f:  # stands for dmtrain: shows the library path it was given
            f.write('#!/bin/sh\necho "dmtrain 0.1.0 args=$* libs=$LD_LIBRARY_PATH"\n')
        os.chmod(exe, 0o755)
        with open(os.path.join(pkg, "source.sha1"), "w") as f:
            f.write(sha1 + "\n")
        with open(os.path.join(pkg, "source_dir"), "w") as f:
            f.write(source_dir + "\n")
        subprocess.run(["tar", "cJf", os.path.join(root, ".carry", "prebuilt.tar.xz"), "-C", pkg, "."],
                       check=True)

    def use(self, root, bindir):
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"],
                   PREBUILT_DIR=os.path.join(os.path.dirname(root), "unpacked"))
        return subprocess.run(["bash", os.path.join(root, "lab", "lease", "use_prebuilt.sh")],
                              capture_output=True, text=True, env=env, check=False)

    def test_binaries_of_other_sources_are_refused(self):
        with tempfile.TemporaryDirectory() as d:
            root, bindir = self.tree(d)
            self.pack(d, root, "0" * 40, root)
            out = self.use(root, bindir)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn("not used: built from other sources", out.stdout)
            self.assertFalse(os.path.exists(os.path.join(root, "build", "ci", "apps", "dmtrain")))

    def test_matching_binaries_run_through_wrappers_and_the_source_dir_is_linked(self):
        with tempfile.TemporaryDirectory() as d:
            root, bindir = self.tree(d)
            sha1 = subprocess.run(["bash", os.path.join(root, "lab", "lease", "source_hash.sh")],
                                  capture_output=True, text=True, check=True).stdout.strip()
            baked = os.path.join(d, "elsewhere", "main")  # where the tests were compiled
            self.pack(d, root, sha1, baked)
            out = self.use(root, bindir)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertEqual(os.path.realpath(baked), os.path.realpath(root))
            ran = subprocess.run([os.path.join(root, "build", "ci", "apps", "dmtrain"), "x", "y"],
                                 capture_output=True, text=True, check=True).stdout
            self.assertIn(f"args=x y libs={d}/unpacked/lib:/opt/torch/lib", ran)
            # the marker gpu_tests.sh compares with the tree's hash
            with open(os.path.join(root, "build", "ci", ".prebuilt")) as f:
                self.assertEqual(f.read().strip(), sha1)
            # a source edit after packing: refused
            with open(os.path.join(root, "src", "a.cpp"), "a") as f:
                f.write("int b;\n")
            self.assertIn("built from other sources", self.use(root, bindir).stdout)


if __name__ == "__main__":
    unittest.main()
