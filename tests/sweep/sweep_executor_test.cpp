// Parallel sweeps: the GPU assignment of the scheduler, GPU list parsing, the ETA arithmetic,
// and run_sweep_parallel with /bin/sh children: two runs really overlap (each waits for the
// other to have started), each gets its GPU and log file, a failure lets the others go on, and
// SIGINT / SIGTERM to the sweep reaches every child as SIGINT; a real `dmtrain sweep --jobs 2`
// through the binary. Last, CUDA MPS (--mps) with a fake nvidia-cuda-mps-control on PATH: one
// daemon started before the children, which see its pipe directory, and quit after the last (also
// after a failure or SIGINT); a daemon that fails or is missing is a warning; no --mps or --jobs
// 1 starts nothing.
#include "dmtrain/sweep/sweep_executor.hpp"
#include "support/finished_run.hpp"
#include "support/scratch_dir.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dmtrain/config/load.hpp"
#include "dmtrain/util/log.hpp"
#include "support/tiny_run.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;
using sweep::SweepRun;
using sweep::SweepScheduler;

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

  EXPECT_EQ(sweep::pick_gpu({2, 1, 1}), 1);  // the first of the least loaded
  EXPECT_EQ(sweep::pick_gpu({}), -1);
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
  EXPECT_EQ(sweep::parse_gpu_list(" 0, 2,,3"), (std::vector<std::string>{"0", "2", "3"}));
  EXPECT_EQ(sweep::parse_gpu_list("GPU-a1b2,MIG-c3"),
            (std::vector<std::string>{"GPU-a1b2", "MIG-c3"}));
  EXPECT_TRUE(sweep::parse_gpu_list("none").empty());
  EXPECT_TRUE(sweep::parse_gpu_list("").empty());
  EXPECT_EQ(sweep::parse_gpu_list("1,-1,2"), (std::vector<std::string>{"1"}));
  EXPECT_EQ(sweep::count_nvidia_smi_gpus("GPU 0: NVIDIA H200 (UUID: GPU-1)\n"
                                         "  MIG 1g.18gb Device 0: (UUID: MIG-2)\n"
                                         "GPU 1: NVIDIA H200 (UUID: GPU-3)\n"),
            2);
  const char* old = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string saved = old ? old : "";
  ::setenv("CUDA_VISIBLE_DEVICES", "3,5", 1);
  EXPECT_EQ(sweep::visible_gpus(), (std::vector<std::string>{"3", "5"}));
  ::setenv("CUDA_VISIBLE_DEVICES", "", 1);
  EXPECT_TRUE(sweep::visible_gpus().empty());
  if (old) {
    ::setenv("CUDA_VISIBLE_DEVICES", saved.c_str(), 1);
  } else {
    ::unsetenv("CUDA_VISIBLE_DEVICES");
  }
}

TEST(SweepEta, RatesOfRunningRunsOverRemainingIterations) {
  // 200 new steps in 20 s: 10 it/s; nothing new yet: unknown.
  EXPECT_DOUBLE_EQ(sweep::iteration_rate(100, 300, 20), 10);
  EXPECT_TRUE(std::isnan(sweep::iteration_rate(100, 100, 20)));
  EXPECT_TRUE(std::isnan(sweep::iteration_rate(0, 5, 0)));
  // 6000 iterations left at 10 + 20 it/s (the unknown rate adds nothing): 200 s.
  EXPECT_DOUBLE_EQ(sweep::sweep_eta_seconds(6000, {10, 20, NAN}), 200);
  EXPECT_TRUE(std::isnan(sweep::sweep_eta_seconds(6000, {NAN})));
  EXPECT_TRUE(std::isnan(sweep::sweep_eta_seconds(6000, {})));
  EXPECT_DOUBLE_EQ(sweep::sweep_eta_seconds(0, {}), 0);
  EXPECT_EQ(sweep::format_eta(NAN), "?");
  EXPECT_EQ(sweep::format_eta(42.4), "42s");
  EXPECT_EQ(sweep::format_eta(425), "7m05s");
  EXPECT_EQ(sweep::format_eta(3 * 3600 + 12 * 60 + 7), "3h12m");
  EXPECT_EQ(sweep::format_eta(2 * 86400 + 3 * 3600), "2d03h");
  sweep::SweepCounts c;
  c.total = 8, c.done = 3, c.running = 4, c.waiting = 1;
  EXPECT_EQ(sweep::progress_line(c, 3900),
            "sweep: 3/8 done, 4 running, 1 waiting, 0 failed, ETA 1h05m");
  c.interrupted = 2;
  EXPECT_EQ(sweep::progress_line(c, NAN),
            "sweep: 3/8 done, 4 running, 1 waiting, 0 failed, 2 interrupted, ETA ?");
}

TEST(SweepParallel, RunsOverlapOnTheirGpusWithLogsAndAFailureGoesOn) {
  const fs::path root = scratch("overlap");
  auto runs = runs_in(root, 4);
  test_support::make_finished_run_dir(runs[3].run_dir, 4);  // r3 is done: never started
  // Each child marks itself started, then waits for its partner to have started: if the runs
  // went one after another, the first would give up and exit 9. r2 (its own partner) exits 3.
  const std::string script =
      "echo \"hello from $1\"; echo \"$CUDA_VISIBLE_DEVICES\" > \"$1/gpu\"; touch \"$1/started\"; "
      "i=0; while [ ! -e \"$2/started\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
      "[ -e \"$2/started\" ] || exit 9; exit $3";
  const char* partner[] = {"r1", "r0", "r2", "r3"};
  sweep::ParallelSweepOptions opts;
  opts.jobs = 2;
  opts.gpus = {"g0", "g1"};
  opts.child_logs = true;
  std::vector<std::string> lines;
  opts.print = [&](const std::string& s) { lines.push_back(s); };
  const int code = sweep::run_sweep_parallel(
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
    sweep::ParallelSweepOptions opts;
    opts.jobs = 2;
    std::vector<std::string> lines;
    opts.print = [&](const std::string& s) { lines.push_back(s); };
    struct sigaction before {};
    ::sigaction(sig, nullptr, &before);
    std::thread sender([&] {
      if (wait_for({root / "r0" / "started", root / "r1" / "started"}, 10)) ::kill(::getpid(), sig);
    });
    const int code = sweep::run_sweep_parallel(
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

// --- CUDA MPS (ParallelSweepOptions::mps_dir, dmtrain sweep --mps) with a fake control program.
namespace {

// Sets (value) or unsets (nullptr) an environment variable until the end of the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    value ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { had_ ? ::setenv(name_.c_str(), old_.c_str(), 1) : ::unsetenv(name_.c_str()); }

 private:
  std::string name_, old_;
  bool had_ = false;
};

// <root>/bin/nvidia-cuda-mps-control: appends "control [ARGS] pipe=... log=..." to
// <root>/control.log, with " stdin=<its stdin, newlines as |>" unless ARGS is -d; on -d it
// prints "fake: no daemon" and exits d_exit, else it exits 0. Returns <root>/bin.
fs::path fake_mps_control(const fs::path& root, int d_exit) {
  fs::create_directories(root / "bin");
  const fs::path exe = root / "bin" / "nvidia-cuda-mps-control";
  std::ofstream(exe)
      << "#!/bin/sh\nin=\nif [ \"$1\" != -d ]; then in=\" stdin=$(tr '\\n' '|')\"; fi\n"
      << "echo \"control [$*] pipe=$CUDA_MPS_PIPE_DIRECTORY "
      << "log=$CUDA_MPS_LOG_DIRECTORY$in\" >> '" << (root / "control.log").string()
      << "'\nif [ \"$1\" = -d ]; then echo 'fake: no daemon'; exit " << d_exit << "; fi\nexit 0\n";
  fs::permissions(exe, fs::perms::owner_all);
  return root / "bin";
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::stringstream ss(test_support::file_text(file));
  std::vector<std::string> lines;
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  return lines;
}

// Everything logged since the first call (a file sink of this process). Also sets the level back
// to the default, info, which a trainer test run before in this process may have changed.
std::string logged() {
  log::set_level(log::Level::kInfo);
  static const fs::path file = [] {
    const fs::path f = dmtrain::test_support::scratch_dir("sweepx_mpslog") / "log.txt";
    log::add_file_sink(f.string());
    return f;
  }();
  log::flush();
  return test_support::file_text(file);
}

// Each child waits 0.3 s (a quit sent before it ends would be logged first), then appends
// "child <name> pipe=... log=..." to $2 and exits $3.
const std::string kMpsChild =
    "sleep 0.3; echo \"child ${1##*/} pipe=${CUDA_MPS_PIPE_DIRECTORY-unset} "
    "log=${CUDA_MPS_LOG_DIRECTORY-unset}\" >> \"$2\"; exit $3";

int run_mps_sweep(const fs::path& root, int runs, int64_t jobs, const std::string& mps_dir,
                  int failing_run = -1) {
  sweep::ParallelSweepOptions opts;
  opts.jobs = jobs;
  opts.gpus = {"g0"};  // the runs share one GPU
  opts.child_logs = true;
  opts.mps_dir = mps_dir;
  opts.print = [](const std::string&) {};
  const std::string log = (root / "control.log").string();
  return sweep::run_sweep_parallel(
      runs_in(root, runs),
      [&](const SweepRun& r) -> std::vector<std::string> {
        return {
            "/bin/sh", "-c", kMpsChild, "sh", r.run_dir, log, r.index == failing_run ? "3" : "0"};
      },
      opts);
}

}  // namespace

TEST(SweepMps, OneDaemonForAllChildrenStartedFirstAndQuitAfterTheLastEvenAfterAFailure) {
  const fs::path root = scratch("mps");
  const ScopedEnv path("PATH",
                       (fake_mps_control(root, 0).string() + ":" + std::getenv("PATH")).c_str());
  const ScopedEnv pipe_var("CUDA_MPS_PIPE_DIRECTORY", nullptr);
  const size_t logged_before = logged().size();
  EXPECT_EQ(run_mps_sweep(root, 3, 2, (root / "mps").string(), 2), 3);  // r2 fails
  const std::string pipe = (root / "mps" / "pipe").string(), logs = (root / "mps" / "log").string();
  EXPECT_TRUE(fs::is_directory(pipe));
  EXPECT_TRUE(fs::is_directory(logs));
  const std::string env = "pipe=" + pipe + " log=" + logs;
  auto lines = lines_of(root / "control.log");
  ASSERT_EQ(lines.size(), 5u) << test_support::file_text(root / "control.log");
  EXPECT_EQ(lines.front(), "control [-d] " + env);
  EXPECT_EQ(lines.back(), "control [] " + env + " stdin=quit|");  // after every child's line
  std::vector<std::string> children(lines.begin() + 1, lines.end() - 1);
  std::sort(children.begin(), children.end());
  EXPECT_EQ(children,
            (std::vector<std::string>{"child r0 " + env, "child r1 " + env, "child r2 " + env}));
  const std::string child_log = test_support::file_text(root / "r0" / "sweep_child.log");
  EXPECT_NE(child_log.find("(CUDA_VISIBLE_DEVICES=g0 CUDA_MPS_PIPE_DIRECTORY=" + pipe),
            std::string::npos)
      << child_log;
  const std::string said = logged().substr(logged_before);
  EXPECT_NE(said.find("MPS: control daemon started, pipes in " + pipe), std::string::npos) << said;
  EXPECT_NE(said.find("MPS: control daemon stopped"), std::string::npos) << said;
}

TEST(SweepMps, ADaemonThatFailsOrIsMissingIsAWarningAndTheRunsTimeSlice) {
  const ScopedEnv pipe_var("CUDA_MPS_PIPE_DIRECTORY", nullptr);
  const std::vector<std::string> unset = {"child r0 pipe=unset log=unset",
                                          "child r1 pipe=unset log=unset"};
  {
    const fs::path root = scratch("mps_fails");
    const ScopedEnv path("PATH",
                         (fake_mps_control(root, 1).string() + ":" + std::getenv("PATH")).c_str());
    const size_t logged_before = logged().size();
    EXPECT_EQ(run_mps_sweep(root, 2, 2, (root / "mps").string()), 0);
    auto lines = lines_of(root / "control.log");
    ASSERT_EQ(lines.size(), 3u) << test_support::file_text(root / "control.log");  // no quit
    EXPECT_EQ(lines[0].rfind("control [-d] pipe=", 0), 0u) << lines[0];
    std::sort(lines.begin() + 1, lines.end());
    EXPECT_EQ(std::vector<std::string>(lines.begin() + 1, lines.end()), unset);
    const std::string said = logged().substr(logged_before);
    EXPECT_NE(said.find("MPS: the control daemon did not start (nvidia-cuda-mps-control -d exited "
                        "with code 1: fake: no daemon); the runs share the GPU by time-slicing"),
              std::string::npos)
        << said;
  }
  {
    const fs::path root = scratch("mps_missing");
    // A PATH with only `sleep` (for the children, /bin/sh) and no nvidia-cuda-mps-control.
    fs::create_directories(root / "tools");
    fs::create_symlink(fs::exists("/usr/bin/sleep") ? "/usr/bin/sleep" : "/bin/sleep",
                       root / "tools" / "sleep");
    const ScopedEnv path("PATH", (root / "tools").c_str());
    const size_t logged_before = logged().size();
    EXPECT_EQ(run_mps_sweep(root, 2, 2, (root / "mps").string()), 0);
    auto lines = lines_of(root / "control.log");
    std::sort(lines.begin(), lines.end());
    EXPECT_EQ(lines, unset);
    const std::string said = logged().substr(logged_before);
    EXPECT_NE(said.find("(nvidia-cuda-mps-control not found on PATH)"), std::string::npos) << said;
  }
}

TEST(SweepMps, WithoutMpsOrWithOneJobNothingIsStarted) {
  const ScopedEnv pipe_var("CUDA_MPS_PIPE_DIRECTORY", nullptr);
  const std::vector<std::string> unset = {"child r0 pipe=unset log=unset",
                                          "child r1 pipe=unset log=unset"};
  for (const int64_t jobs : {2, 1}) {
    const fs::path root = scratch("mps_off" + std::to_string(jobs));
    const ScopedEnv path("PATH",
                         (fake_mps_control(root, 0).string() + ":" + std::getenv("PATH")).c_str());
    const size_t logged_before = logged().size();
    // jobs 2 without MPS; jobs 1 with it, which starts nothing.
    EXPECT_EQ(run_mps_sweep(root, 2, jobs, jobs == 1 ? (root / "mps").string() : ""), 0);
    auto lines = lines_of(root / "control.log");
    std::sort(lines.begin(), lines.end());
    EXPECT_EQ(lines, unset) << "jobs " << jobs;
    EXPECT_FALSE(fs::exists(root / "mps")) << "jobs " << jobs;
    const std::string said = logged().substr(logged_before);
    EXPECT_EQ(said.find("only matters for runs sharing a GPU") != std::string::npos, jobs == 1)
        << said;
  }
}

TEST(SweepMps, QuitReachesTheControlProgramAfterSigintOnceTheChildrenHaveExited) {
  const fs::path root = scratch("mps_sigint");
  const ScopedEnv path("PATH",
                       (fake_mps_control(root, 0).string() + ":" + std::getenv("PATH")).c_str());
  const ScopedEnv pipe_var("CUDA_MPS_PIPE_DIRECTORY", nullptr);
  const std::string log = (root / "control.log").string();
  // On SIGINT a child waits 0.3 s, then logs itself and exits 130.
  const std::string script =
      "trap 'sleep 0.3; echo \"child ${1##*/} interrupted\" >> \"$2\"; exit 130' INT; "
      "mkdir -p \"$1\"; touch \"$1/started\"; "
      "i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 0";
  sweep::ParallelSweepOptions opts;
  opts.jobs = 2;
  opts.mps_dir = (root / "mps").string();
  opts.print = [](const std::string&) {};
  std::thread sender([&] {
    if (wait_for({root / "r0" / "started", root / "r1" / "started"}, 10)) {
      ::kill(::getpid(), SIGINT);
    }
  });
  const int code = sweep::run_sweep_parallel(
      runs_in(root, 2),
      [&](const SweepRun& r) -> std::vector<std::string> {
        return {"/bin/sh", "-c", script, "sh", r.run_dir, log};
      },
      opts);
  sender.join();
  EXPECT_EQ(code, 130);
  auto lines = lines_of(log);
  ASSERT_EQ(lines.size(), 4u) << test_support::file_text(log);
  EXPECT_EQ(lines.front().rfind("control [-d] ", 0), 0u) << lines.front();
  EXPECT_EQ(lines.back().rfind("control [] ", 0), 0u) << lines.back();
  EXPECT_NE(lines.back().find(" stdin=quit|"), std::string::npos) << lines.back();
  std::sort(lines.begin() + 1, lines.end() - 1);
  EXPECT_EQ(lines[1], "child r0 interrupted");
  EXPECT_EQ(lines[2], "child r1 interrupted");
}

TEST(SweepMps, RealDmtrainSweepWithMpsUsesTheOutDir) {
  if (!fs::exists(DMTRAIN_BINARY)) GTEST_SKIP() << "dmtrain binary not built";
  const fs::path root = scratch("mps_cli");
  const fs::path bin = fake_mps_control(root, 0);
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "runs");
  cfg.train.iterations = 1;
  cfg.sample.count = 1;
  std::ofstream(root / "base.yaml") << config::dump_config(cfg);
  const std::string cmd = "PATH=" + bin.string() + ":$PATH OMP_NUM_THREADS=1 " + DMTRAIN_BINARY +
                          " sweep --config " + (root / "base.yaml").string() +
                          " --grid timestep.clts.mu=0.1 --jobs 2 --gpus none --mps > " +
                          (root / "out.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << test_support::file_text(root / "out.txt");
  const std::string pipe = (root / "runs" / "mps" / "pipe").string();
  const std::string env = "pipe=" + pipe + " log=" + (root / "runs" / "mps" / "log").string();
  EXPECT_EQ(
      lines_of(root / "control.log"),
      (std::vector<std::string>{"control [-d] " + env, "control [] " + env + " stdin=quit|"}));
  const std::string child_log =
      test_support::file_text(root / "runs" / "mu0.1" / "sweep_child.log");
  EXPECT_NE(child_log.find("(CUDA_MPS_PIPE_DIRECTORY=" + pipe), std::string::npos) << child_log;
  EXPECT_TRUE(fs::exists(root / "runs" / "mu0.1" / "config.yaml"));
}
