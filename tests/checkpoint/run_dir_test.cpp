// What a run dir guarantees: one trainer at a time (the lock, also across processes),
// no fresh start over an old run's checkpoints (--restart moves them aside), commit-order pruning,
// interrupted saves cleaned at the start, and filesystem failures as clear errors that keep the
// committed checkpoints. The faults are made here: chmod, tmpfs mounts, symlinks to /dev/full.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/checkpoint/run_dir_lock.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "support/error_of.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;
using dmtrain::test_support::error_of;

namespace {

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("rundir_" + name);
}

std::string fake_checkpoint(const fs::path& root, int64_t it) {
  checkpoint::CheckpointWriter w(root.string(), it);
  std::ofstream(w.path("model.pt")) << "weights " << it;
  return w.commit();
}

std::vector<int64_t> iterations(const fs::path& root) {
  std::vector<int64_t> out;
  for (const auto& c : checkpoint::list_checkpoints(root.string())) out.push_back(c.iteration);
  return out;
}

bool any_tmp(const fs::path& root) {
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.path().extension() == ".tmp") return true;
  }
  return false;
}

// A config file for the dmtrain binary: a tiny model on tiny data, `iterations` long.
fs::path write_yaml(const fs::path& root, int64_t iterations) {
  test_support::write_tiny_idx(root / "data");
  const fs::path yaml = root / "tiny.yaml";
  std::ofstream(yaml) << "base: " << DMTRAIN_SOURCE_DIR << "/configs/quickstart.yaml\n"
                      << "model: {image_size: 8, attention_resolutions: [4], num_res_blocks: 1}\n"
                      << "diffusion: {steps: 50}\ntimestep: {clts: {target_iteration: 2}}\n"
                      << "data: {format: idx, path: " << (root / "data").string()
                      << ", num_workers: 1}\n"
                      << "train: {iterations: " << iterations << ", batch_size: 4, device: cpu, "
                      << "run_dir: " << (root / "run").string() << "}\n"
                      << "checkpoint: {every: " << iterations << "}\nlog: {every: 1}\n"
                      << "sample: {count: 2, steps: ddim2, every: 0}\n";
  return yaml;
}

// Runs the dmtrain binary to its end; returns its exit code, its stderr in *err.
int run_dmtrain(const std::string& args, const fs::path& err_file, std::string* err) {
  const int status =
      std::system((std::string(DMTRAIN_BINARY) + " " + args + " 2> " + err_file.string()).c_str());
  *err = test_support::file_text(err_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Starts the dmtrain binary in the background (stderr to err_file); returns its pid.
pid_t start_dmtrain(const fs::path& yaml, const fs::path& err_file) {
  const std::string bin = DMTRAIN_BINARY, y = yaml.string(), e = err_file.string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!std::freopen(e.c_str(), "w", stderr)) ::_exit(127);
    ::execl(bin.c_str(), bin.c_str(), "--config", y.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

}  // namespace

TEST(RunDir, LockNamesItsHolderAndTakesOverADeadOnes) {
  const fs::path dir = scratch("lock") / "run";
  {
    checkpoint::RunDirLock first(dir.string());
    const std::string err = error_of([&] { checkpoint::RunDirLock second(dir.string()); });
    EXPECT_NE(err.find("run dir " + dir.string() + " is in use"), std::string::npos) << err;
    EXPECT_NE(err.find("pid " + std::to_string(::getpid()) + ", host "), std::string::npos) << err;
    EXPECT_NE(err.find("started 20"), std::string::npos) << err;
  }
  EXPECT_EQ(test_support::file_text(dir / ".lock"), "");  // released cleanly: emptied
  // A killed trainer leaves its line in the file but holds no lock.
  std::ofstream(dir / ".lock") << "pid 999999, host ghost, started 2020-01-01T00:00:00Z\n";
  checkpoint::RunDirLock taken(dir.string());
  EXPECT_NE(taken.taken_over_from().find("pid 999999"), std::string::npos);
  EXPECT_NE(test_support::file_text(dir / ".lock").find("pid " + std::to_string(::getpid())),
            std::string::npos);
  fs::remove_all(dir.parent_path());
}

TEST(RunDir, SecondTrainerProcessFailsAtOnceWithExit2) {
  const fs::path root = scratch("two");
  const fs::path yaml = write_yaml(root, 100000);
  const pid_t a = start_dmtrain(yaml, root / "a.log");
  ASSERT_GT(a, 0);
  // Wait until the first trainer is training (it holds the lock by then).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int lines = 0;
  while (std::chrono::steady_clock::now() < deadline && lines < 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string m = test_support::file_text(root / "run" / "metrics.jsonl");
    lines = static_cast<int>(std::count(m.begin(), m.end(), '\n'));
  }
  ASSERT_GE(lines, 2) << "the first trainer did not start: "
                      << test_support::file_text(root / "a.log");
  std::string err;
  EXPECT_EQ(run_dmtrain("--config " + yaml.string(), root / "b.log", &err), 2) << err;
  EXPECT_NE(err.find("run dir " + (root / "run").string() + " is in use"), std::string::npos)
      << err;
  EXPECT_NE(err.find("pid " + std::to_string(a) + ", host "), std::string::npos) << err;
  ::kill(a, SIGTERM);  // checkpoints and stops
  int status = 0;
  ASSERT_EQ(::waitpid(a, &status, 0), a);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130)
      << test_support::file_text(root / "a.log");
  // One writer: steps 1, 2, 3, ... each once.
  const auto steps = observe::read_metrics_file((root / "run" / "metrics.jsonl").string()).steps;
  ASSERT_GE(steps.size(), 2u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i].step, static_cast<int64_t>(i + 1));
  fs::remove_all(root);
}

TEST(RunDir, FreshStartOverAnOldRunIsRefusedAndRestartMovesItAside) {
  // The case: an older run's iter 10, 20, 30, then a new run writing 10 and 12.
  const fs::path root = scratch("restart");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.train.iterations = 12;
  cfg.checkpoint.every = 10;
  cfg.checkpoint.keep_last = 2;
  const fs::path ckpts = root / "run" / "checkpoints";
  for (int64_t it : {10, 20, 30}) fake_checkpoint(ckpts, it);

  const std::string err = error_of([&] { train::train(cfg); });
  EXPECT_NE(err.find("run dir " + (root / "run").string()), std::string::npos) << err;
  EXPECT_NE(err.find("iter_000000000030"), std::string::npos) << err;
  EXPECT_NE(err.find("--resume auto"), std::string::npos) << err;
  EXPECT_NE(err.find("--restart"), std::string::npos) << err;
  EXPECT_EQ(iterations(ckpts), (std::vector<int64_t>{10, 20, 30}));  // untouched
  EXPECT_FALSE(fs::exists(root / "run" / "metrics.jsonl"));

  train::TrainOptions restart;
  restart.restart = true;
  EXPECT_EQ(train::train(cfg, restart).iteration, 12);
  EXPECT_EQ(iterations(ckpts), (std::vector<int64_t>{10, 12}));
  std::vector<fs::path> previous;
  for (const auto& e : fs::directory_iterator(root / "run")) {
    if (e.path().filename().string().rfind("previous-", 0) == 0) previous.push_back(e.path());
  }
  ASSERT_EQ(previous.size(), 1u);
  EXPECT_EQ(iterations(previous[0] / "checkpoints"), (std::vector<int64_t>{10, 20, 30}));
  for (const auto& c : checkpoint::list_checkpoints((previous[0] / "checkpoints").string())) {
    EXPECT_NO_THROW(checkpoint::verify_checkpoint(c.dir));
  }
  EXPECT_TRUE(fs::exists(root / "run" / "config.yaml"));
  fs::remove_all(root);
}

TEST(RunDir, ResumeAutoWithNoCheckpointThatVerifiesIsRefused) {
  const fs::path root = scratch("noverify");
  test_support::write_tiny_idx(root / "data");
  const auto cfg = test_support::tiny_config(root / "data", root / "run");
  const fs::path ckpts = root / "run" / "checkpoints";
  for (int64_t it : {2, 4}) {
    std::ofstream(fs::path(fake_checkpoint(ckpts, it)) / "model.pt") << "WEIGHTS " << it;
  }
  train::TrainOptions o;
  o.resume = "auto";
  const std::string err = error_of([&] { train::train(cfg, o); });
  EXPECT_NE(err.find("none of the 2 committed checkpoint(s)"), std::string::npos) << err;
  EXPECT_NE(err.find("iter_000000000004"), std::string::npos) << err;
  EXPECT_NE(err.find("--restart"), std::string::npos) << err;
  EXPECT_EQ(iterations(ckpts), (std::vector<int64_t>{2, 4}));
  fs::remove_all(root);
}

TEST(RunDir, InterruptedSavesAreCleanedAtTheStart) {
  const fs::path root = scratch("clean");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.train.iterations = 2;
  const fs::path ckpts = root / "run" / "checkpoints";
  fs::create_directories(ckpts / "iter_000000000008.tmp");
  fs::create_directories(ckpts / "iter_000000000009");  // renamed, manifest never written
  std::ofstream(ckpts / "iter_000000000009" / "model.pt") << "torn";
  EXPECT_EQ(train::train(cfg).iteration, 2);
  EXPECT_FALSE(fs::exists(ckpts / "iter_000000000008.tmp"));
  EXPECT_FALSE(fs::exists(ckpts / "iter_000000000009"));
  EXPECT_EQ(iterations(ckpts), (std::vector<int64_t>{2}));
  const std::string log = test_support::file_text(root / "run" / "train.log");
  EXPECT_NE(log.find("removed " + (ckpts / "iter_000000000008.tmp").string()), std::string::npos);
  EXPECT_NE(log.find("removed " + (ckpts / "iter_000000000009").string()), std::string::npos);
  fs::remove_all(root);
}

TEST(RunDir, UnwritableParentIsAClearErrorWithExit2) {
  const fs::path root = scratch("perm");
  const fs::path yaml = write_yaml(root, 2);
  const fs::path parent = root / "locked";
  fs::create_directories(parent);
  ::chmod(parent.c_str(), 0555);
  if (std::ofstream(parent / "probe")) {
    ::chmod(parent.c_str(), 0755);
    fs::remove_all(root);
    GTEST_SKIP() << "chmod 0555 does not stop this user (root) from writing";
  }
  std::string err;
  EXPECT_EQ(run_dmtrain("--config " + yaml.string() + " --run-dir " + (parent / "run").string(),
                        root / "err.log", &err),
            2)
      << err;
  EXPECT_NE(err.find((parent / "run").string()), std::string::npos) << err;
  EXPECT_NE(err.find("Permission denied"), std::string::npos) << err;
  ::chmod(parent.c_str(), 0755);
  fs::remove_all(root);
}

TEST(RunDir, ReadOnlyFileSystemIsAClearErrorWithExit2) {
  const fs::path root = scratch("rofs");
  const fs::path yaml = write_yaml(root, 2);
  const fs::path mnt = root / "ro";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", MS_RDONLY, "size=64k") != 0) {
    const std::string why = std::strerror(errno);
    fs::remove_all(root);
    GTEST_SKIP() << "cannot mount a read-only tmpfs (needs CAP_SYS_ADMIN): " << why;
  }
  std::string err;
  const int rc = run_dmtrain("--config " + yaml.string() + " --run-dir " + (mnt / "run").string(),
                             root / "err.log", &err);
  ::umount2(mnt.c_str(), MNT_DETACH);
  EXPECT_EQ(rc, 2) << err;
  EXPECT_NE(err.find((mnt / "run").string()), std::string::npos) << err;
  EXPECT_NE(err.find("Read-only file system"), std::string::npos) << err;
  fs::remove_all(root);
}

// A CheckpointWriter on a full disk: a real one (a 256k tmpfs) when `tmpfs`, else a file that
// is /dev/full (writes fail with ENOSPC).
static void expect_full_disk_is_a_clear_error(bool tmpfs) {
  SCOPED_TRACE(tmpfs ? "tmpfs" : "/dev/full");
  const fs::path root = scratch("full");
  const fs::path disk = root / "disk";
  fs::create_directories(disk);
  if (tmpfs) {
    ASSERT_EQ(::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=256k"), 0);
  }
  const fs::path ckpts = disk / "checkpoints";
  const std::string first = fake_checkpoint(ckpts, 10);
  const std::string bad = (ckpts / "iter_000000000020.tmp" / "model.pt").string();
  if (!tmpfs) {
    checkpoint::set_checkpoint_write_hook([&](const std::string& p) {
      if (p == bad) fs::create_symlink("/dev/full", p);
    });
  }
  const std::string err = error_of([&] {
    checkpoint::CheckpointWriter w(ckpts.string(), 20);
    w.write("model.pt", [&](const std::string& p) {
      std::ofstream out(p, std::ios::binary);
      out << std::string(1 << 20, 'w');
    });
    w.commit();
  });
  checkpoint::set_checkpoint_write_hook(nullptr);
  EXPECT_NE(err.find("cannot write checkpoint file '" + bad + "'"), std::string::npos) << err;
  EXPECT_NE(err.find("No space left on device"), std::string::npos) << err;
  EXPECT_NO_THROW(checkpoint::verify_checkpoint(first));
  EXPECT_EQ(iterations(ckpts), (std::vector<int64_t>{10}));
  EXPECT_FALSE(any_tmp(ckpts));
  if (tmpfs) ::umount2(disk.c_str(), MNT_DETACH);
  fs::remove_all(root);
}

TEST(RunDir, FullDiskFailsTheCheckpointAndKeepsThePreviousOne) {
  expect_full_disk_is_a_clear_error(/*tmpfs=*/false);
  const fs::path probe = scratch("mount_probe");
  const bool can_mount = ::mount("tmpfs", probe.c_str(), "tmpfs", 0, "size=64k") == 0;
  if (can_mount) ::umount2(probe.c_str(), MNT_DETACH);
  fs::remove_all(probe);
  if (!can_mount) GTEST_SKIP() << "no tmpfs mount (needs CAP_SYS_ADMIN): /dev/full only";
  expect_full_disk_is_a_clear_error(/*tmpfs=*/true);
}

TEST(RunDir, TrainerCheckpointWriteFailureIsAClearError) {
  // LibTorch's own writer (torch::save) into a file that is /dev/full, through the trainer.
  const fs::path root = scratch("torchfull");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.train.iterations = 4;
  train::TrainOptions leg;
  leg.stop_at = 2;
  train::train(cfg, leg);
  const fs::path ckpts = root / "run" / "checkpoints";
  const std::string bad = (ckpts / "iter_000000000004.tmp" / "model.pt").string();
  checkpoint::set_checkpoint_write_hook([&](const std::string& p) {
    if (p == bad) fs::create_symlink("/dev/full", p);
  });
  train::TrainOptions resume;
  resume.resume = "auto";
  const std::string err = error_of([&] { train::train(cfg, resume); });
  checkpoint::set_checkpoint_write_hook(nullptr);
  EXPECT_NE(err.find("cannot write checkpoint file '" + bad + "'"), std::string::npos) << err;
  EXPECT_NE(err.find("No space left on device"), std::string::npos) << err;
  EXPECT_EQ(iterations(ckpts), (std::vector<int64_t>{2}));
  EXPECT_NO_THROW(checkpoint::verify_checkpoint((ckpts / "iter_000000000002").string()));
  EXPECT_FALSE(any_tmp(ckpts));
  fs::remove_all(root);
}
