// A stop signal does not wait for a sample grid: the trainer (the dmtrain binary, signalled as
// Slurm signals it) abandons a grid of minutes within seconds and writes the checkpoint the signal
// asks for. Before, SIGTERM during the grid waited for all of it (SIGUSR1 comes 120 s before
// Slurm's end: a longer evaluation lost the checkpoint).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace dmtrain;

TEST(StopSignal, CheckpointsWithinSecondsDuringASampleGrid) {
  const fs::path root = test_support::scratch_dir("stop_signal");
  test_support::write_tiny_idx(root / "data");
  const fs::path yaml = root / "tiny.yaml";
  // A grid of 512 samples x 1000 DDPM steps at iteration 2: over a minute on one CPU thread.
  std::ofstream(yaml) << "base: " << DMTRAIN_SOURCE_DIR << "/configs/quickstart.yaml\n"
                      << "model: {image_size: 8, attention_resolutions: [4], num_res_blocks: 1}\n"
                      << "diffusion: {steps: 1000}\ntimestep: {clts: {target_iteration: 2}}\n"
                      << "data: {format: idx, path: " << (root / "data").string()
                      << ", num_workers: 1}\n"
                      << "train: {iterations: 100000, batch_size: 4, device: cpu, threads: 1, "
                      << "run_dir: " << (root / "run").string() << "}\n"
                      << "checkpoint: {every: 100000}\nlog: {every: 1}\n"
                      << "sample: {count: 512, steps: \"1000\", sampler: ddpm, every: 2}\n";
  const std::string bin = DMTRAIN_BINARY, y = yaml.string(), e = (root / "err.log").string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!std::freopen(e.c_str(), "w", stderr)) ::_exit(127);
    ::execl(bin.c_str(), bin.c_str(), "--config", y.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  // Step 2's metrics line is written just before its grid starts.
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  int lines = 0;
  while (Clock::now() < deadline && lines < 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::string m = test_support::file_text(root / "run" / "metrics.jsonl");
    lines = static_cast<int>(std::count(m.begin(), m.end(), '\n'));
  }
  ASSERT_GE(lines, 2) << test_support::file_text(root / "err.log");
  std::this_thread::sleep_for(std::chrono::seconds(1));  // well into the grid
  const auto signalled = Clock::now();
  ::kill(pid, SIGTERM);
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 &&
         Clock::now() - signalled < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double waited = std::chrono::duration<double>(Clock::now() - signalled).count();
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "still running " << waited
           << " s after SIGTERM: " << test_support::file_text(root / "err.log");
  }
  const std::string log = test_support::file_text(root / "err.log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << log;
  EXPECT_LT(waited, 20.0) << log;
  EXPECT_NE(log.find("sample grid abandoned: a stop signal came (iteration 2)"), std::string::npos)
      << log;
  const auto latest = checkpoint::latest_valid_checkpoint((root / "run" / "checkpoints").string());
  ASSERT_TRUE(latest.has_value()) << log;
  EXPECT_EQ(latest->iteration, 3) << log;
  fs::remove_all(root);
}

}  // namespace
