// Parallel sweeps: the GPU assignment of the scheduler, GPU list parsing, the ETA arithmetic,
// and run_sweep_parallel with /bin/sh children: two runs really overlap (each waits for the
// other to have started), each gets its GPU and log file, a failure lets the others go on, and
// SIGINT / SIGTERM to the sweep reaches every child as SIGINT. Last, a real `dmtrain sweep
// --jobs 2` through the binary.
#include "dmtrain/train/sweep_executor.hpp"
#include "support/scratch_dir.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dmtrain/config/load.hpp"
#include "tiny_run.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;
using train::SweepRun;
using train::SweepScheduler;

namespace {

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("sweepx_" + name);
}

std::vector<SweepRun> runs_in(const fs::path& root, int n) {
  std::vector<SweepRun> runs(n);
  for (int i = 0; i < n; ++i) {
    runs[i].index = i;
    runs[i].name = "r" + std::to_string(i);
    runs[i].run_dir = (root / runs[i].name).string();
    runs[i].iterations = 4;
  }
  return runs;
}

bool wait_for(const std::vector<fs::path>& files, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    bool all = true;
    for (const auto& f : files) all = all && fs::exists(f);
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TEST(SweepSchedule, FewestRunningGpuFirstThenTheFreedOne) {
  // 5 runs, 4 at once, 2 GPUs: runs 0..3 go 0,1,0,1; when run 1 ends run 4 takes GPU 1.
  SweepScheduler s(5, 4, {"0", "1"});
  std::vector<std::string> gpu;
  for (size_t i = 0; i < 4; ++i) {
    const auto st = s.next();
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->run, i);
    gpu.push_back(st->gpu);
  }
  EXPECT_EQ(gpu, (std::vector<std::string>{"0", "1", "0", "1"}));
  EXPECT_FALSE(s.next().has_value());  // 4 running
  EXPECT_EQ(s.running(), 4);
  EXPECT_EQ(s.waiting().size(), 1u);
  s.finished(1);
  const auto st = s.next();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->run, 4u);
  EXPECT_EQ(st->gpu, "1");
  EXPECT_TRUE(s.waiting().empty());
  EXPECT_FALSE(s.next().has_value());

  EXPECT_EQ(train::pick_gpu({2, 1, 1}), 1);  // the first of the least loaded
  EXPECT_EQ(train::pick_gpu({}), -1);
}

TEST(SweepSchedule, NoGpusLeavesTheEnvironmentAndStopStartsNothing) {
  SweepScheduler s(3, 2, {});
  EXPECT_EQ(s.next()->gpu, "");
  EXPECT_EQ(s.next()->run, 1u);
  EXPECT_FALSE(s.next().has_value());
  s.finished(0);
  s.stop();
  EXPECT_FALSE(s.next().has_value());
  EXPECT_EQ(s.waiting().size(), 1u);  // still to do, for the re-launch
}

TEST(SweepGpus, ListsNvidiaSmiAndTheEnvironment) {
  EXPECT_EQ(train::parse_gpu_list(" 0, 2,,3"), (std::vector<std::string>{"0", "2", "3"}));
  EXPECT_EQ(train::parse_gpu_list("GPU-a1b2,MIG-c3"),
            (std::vector<std::string>{"GPU-a1b2", "MIG-c3"}));
  EXPECT_TRUE(train::parse_gpu_list("none").empty());
  EXPECT_TRUE(train::parse_gpu_list("").empty());
  EXPECT_EQ(train::parse_gpu_list("1,-1,2"), (std::vector<std::string>{"1"}));
  EXPECT_EQ(train::count_nvidia_smi_gpus("GPU 0: NVIDIA H200 (UUID: GPU-1)\n"
                                         "  MIG 1g.18gb Device 0: (UUID: MIG-2)\n"
                                         "GPU 1: NVIDIA H200 (UUID: GPU-3)\n"),
            2);
  const char* old = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string saved = old ? old : "";
  ::setenv("CUDA_VISIBLE_DEVICES", "3,5", 1);
  EXPECT_EQ(train::visible_gpus(), (std::vector<std::string>{"3", "5"}));
  ::setenv("CUDA_VISIBLE_DEVICES", "", 1);
  EXPECT_TRUE(train::visible_gpus().empty());
  if (old) {
    ::setenv("CUDA_VISIBLE_DEVICES", saved.c_str(), 1);
  } else {
    ::unsetenv("CUDA_VISIBLE_DEVICES");
  }
}

TEST(SweepEta, RatesOfRunningRunsOverRemainingIterations) {
  // 200 new steps in 20 s: 10 it/s; nothing new yet: unknown.
  EXPECT_DOUBLE_EQ(train::iteration_rate(100, 300, 20), 10);
  EXPECT_TRUE(std::isnan(train::iteration_rate(100, 100, 20)));
  EXPECT_TRUE(std::isnan(train::iteration_rate(0, 5, 0)));
  // 6000 iterations left at 10 + 20 it/s (the unknown rate adds nothing): 200 s.
  EXPECT_DOUBLE_EQ(train::sweep_eta_seconds(6000, {10, 20, NAN}), 200);
  EXPECT_TRUE(std::isnan(train::sweep_eta_seconds(6000, {NAN})));
  EXPECT_TRUE(std::isnan(train::sweep_eta_seconds(6000, {})));
  EXPECT_DOUBLE_EQ(train::sweep_eta_seconds(0, {}), 0);
  EXPECT_EQ(train::format_eta(NAN), "?");
  EXPECT_EQ(train::format_eta(42.4), "42s");
  EXPECT_EQ(train::format_eta(425), "7m05s");
  EXPECT_EQ(train::format_eta(3 * 3600 + 12 * 60 + 7), "3h12m");
  EXPECT_EQ(train::format_eta(2 * 86400 + 3 * 3600), "2d03h");
  train::SweepCounts c;
  c.total = 8, c.done = 3, c.running = 4, c.waiting = 1;
  EXPECT_EQ(train::progress_line(c, 3900),
            "sweep: 3/8 done, 4 running, 1 waiting, 0 failed, ETA 1h05m");
  c.interrupted = 2;
  EXPECT_EQ(train::progress_line(c, NAN),
            "sweep: 3/8 done, 4 running, 1 waiting, 0 failed, 2 interrupted, ETA ?");
}

TEST(SweepParallel, RunsOverlapOnTheirGpusWithLogsAndAFailureGoesOn) {
  const fs::path root = scratch("overlap");
  auto runs = runs_in(root, 4);
  fs::create_directories(runs[3].run_dir);  // r3 is done: never started
  std::ofstream(fs::path(runs[3].run_dir) / "metrics.jsonl") << "{\"step\": 4, \"loss\": 1}\n";
  // Each child marks itself started, then waits for its partner to have started: if the runs
  // went one after another, the first would give up and exit 9. r2 (its own partner) exits 3.
  const std::string script =
      "echo \"hello from $1\"; echo \"$CUDA_VISIBLE_DEVICES\" > \"$1/gpu\"; touch \"$1/started\"; "
      "i=0; while [ ! -e \"$2/started\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
      "[ -e \"$2/started\" ] || exit 9; exit $3";
  const char* partner[] = {"r1", "r0", "r2", "r3"};
  train::ParallelSweepOptions opts;
  opts.jobs = 2;
  opts.gpus = {"g0", "g1"};
  opts.child_logs = true;
  std::vector<std::string> lines;
  opts.print = [&](const std::string& s) { lines.push_back(s); };
  const int code = train::run_sweep_parallel(
      runs,
      [&](const SweepRun& r) -> std::vector<std::string> {
        return {"sh",
                "-c",
                script,
                "sh",
                r.run_dir,
                (root / partner[r.index]).string(),
                r.index == 2 ? "3" : "0"};
      },
      opts);
  EXPECT_EQ(code, 3);
  EXPECT_EQ(test_support::file_text(root / "r0" / "gpu"), "g0\n");
  EXPECT_EQ(test_support::file_text(root / "r1" / "gpu"), "g1\n");
  const std::string g2 = test_support::file_text(root / "r2" / "gpu");
  EXPECT_TRUE(g2 == "g0\n" || g2 == "g1\n") << g2;
  EXPECT_FALSE(fs::exists(root / "r3" / "started"));
  const std::string log = test_support::file_text(root / "r0" / "sweep_child.log");
  EXPECT_NE(log.find("==== dmtrain sweep: sh -c"), std::string::npos) << log;
  EXPECT_NE(log.find("hello from " + runs[0].run_dir), std::string::npos) << log;
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "sweep: 3/4 done, 0 running, 0 waiting, 1 failed, ETA 0s\n");
}

TEST(SweepParallel, SigintOrSigtermReachesEveryChildAsSigintAndStopsTheSweep) {
  for (const int sig : {SIGINT, SIGTERM}) {
    const fs::path root = scratch("signal" + std::to_string(sig));
    const auto runs = runs_in(root, 3);
    // The trap only answers SIGINT: a forwarded SIGTERM would leave no "got" file.
    const std::string script =
        "trap 'echo int > \"$1/got\"; exit 130' INT; mkdir -p \"$1\"; touch \"$1/started\"; "
        "i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 0";
    train::ParallelSweepOptions opts;
    opts.jobs = 2;
    std::vector<std::string> lines;
    opts.print = [&](const std::string& s) { lines.push_back(s); };
    struct sigaction before {};
    ::sigaction(sig, nullptr, &before);
    std::thread sender([&] {
      if (wait_for({root / "r0" / "started", root / "r1" / "started"}, 10)) ::kill(::getpid(), sig);
    });
    const int code = train::run_sweep_parallel(
        runs,
        [&](const SweepRun& r) -> std::vector<std::string> {
          return {"/bin/sh", "-c", script, "sh", r.run_dir};
        },
        opts);
    sender.join();
    EXPECT_EQ(code, 130) << "signal " << sig;
    EXPECT_EQ(test_support::file_text(root / "r0" / "got"), "int\n") << "signal " << sig;
    EXPECT_EQ(test_support::file_text(root / "r1" / "got"), "int\n") << "signal " << sig;
    EXPECT_FALSE(fs::exists(root / "r2"));  // never started
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(),
              "sweep: 0/3 done, 0 running, 1 waiting, 0 failed, 2 interrupted, ETA 0s\n");
    struct sigaction after {};
    ::sigaction(sig, nullptr, &after);
    EXPECT_EQ(after.sa_handler, before.sa_handler);  // the sweep's handler is gone
  }
}

TEST(SweepParallel, RealDmtrainSweepWithTwoJobs) {
  if (!fs::exists(DMTRAIN_BINARY)) GTEST_SKIP() << "dmtrain binary not built";
  const fs::path root = scratch("cli");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "runs");
  cfg.train.iterations = 2;
  cfg.sample.count = 1;
  std::ofstream(root / "base.yaml") << config::dump_config(cfg);
  const std::string cmd =
      std::string("OMP_NUM_THREADS=1 ") + DMTRAIN_BINARY + " sweep --config " +
      (root / "base.yaml").string() +
      " --grid timestep.clts.mu=0.1,0.3 --jobs 2 --gpus none --fid-target 100 > " +
      (root / "out.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << test_support::file_text(root / "out.txt");
  const std::string out = test_support::file_text(root / "out.txt");
  EXPECT_NE(out.find("sweep: 2/2 done, 0 running, 0 waiting, 0 failed"), std::string::npos) << out;
  for (const char* name : {"mu0.1", "mu0.3"}) {
    EXPECT_TRUE(fs::exists(root / "runs" / name / "sweep_child.log")) << name;
    EXPECT_TRUE(fs::exists(root / "runs" / name / "config.yaml")) << name;
  }
  const std::string csv = test_support::file_text(root / "runs" / "sweep_summary.csv");
  EXPECT_NE(csv.find("final_fid,best_fid,iters_to_fid,iters_to_fid_interp,status\n"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find(",done\n"), std::string::npos) << csv;
}
