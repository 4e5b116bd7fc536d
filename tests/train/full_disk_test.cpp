// The writes a run makes to be watched (sample grids) under a full disk: a warning naming the file
// and the cause, and training goes on (before, the PNG writer's error ended the run at its first
// grid). The fault: the grid's temporary file is a symlink to /dev/full, so its writes fail with
// ENOSPC.
#include <gtest/gtest.h>

#include <filesystem>

#include "dmtrain/train/trainer.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace {
namespace fs = std::filesystem;
using namespace dmtrain;

TEST(FullDisk, ASampleGridThatCannotBeWrittenIsAWarningAndTrainingGoesOn) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const fs::path root = test_support::scratch_dir("full_disk_grid");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.train.iterations = 4;
  cfg.sample.every = 2;
  cfg.sample.count = 1;
  cfg.sample.raw = false;
  cfg.train.ema_rates = {0.9};
  fs::create_directories(root / "run" / "samples");
  fs::create_symlink("/dev/full", root / "run" / "samples" / "iter_000002.png.tmp");
  const train::TrainResult r = train::train(cfg);
  EXPECT_EQ(r.iteration, 4);
  EXPECT_FALSE(fs::exists(root / "run" / "samples" / "iter_000002.png"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(root / "run" / "samples" / "iter_000002.png.tmp")));
  EXPECT_TRUE(fs::exists(root / "run" / "samples" / "iter_000004.png"));  // the final grid
  EXPECT_TRUE(fs::exists(root / "run" / "ema_0.9.pt"));
  fs::remove_all(root);
}

}  // namespace
