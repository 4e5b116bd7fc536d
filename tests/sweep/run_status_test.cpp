// sweep/run_status.hpp: a run is finished when its run dir says so (final checkpoint and every EMA
// export verified), and a run dir holding another configuration is named with the keys that
// differ.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/sweep/run_status.hpp"
#include "support/finished_run.hpp"
#include "support/scratch_dir.hpp"

namespace {
namespace fs = std::filesystem;
using dmtrain::sweep::other_config_problem;
using dmtrain::sweep::unfinished_reason;
using dmtrain::test_support::finished_run_config;
using dmtrain::test_support::make_finished_run_dir;

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("run_status_" + name);
}

TEST(RunStatus, FinishedRunDirIsDone) {
  const fs::path d = scratch("done");
  make_finished_run_dir(d, 10);
  EXPECT_EQ(unfinished_reason(d.string()), "");
}

TEST(RunStatus, MetricsAtTheLastStepAreNotEnough) {
  // Killed after its last metrics line, before the final checkpoint: the newest is iteration 5.
  const fs::path d = scratch("killed_in_checkpoint");
  make_finished_run_dir(d, 10, /*checkpoint_at=*/5);
  std::ofstream(d / "metrics.jsonl") << "{\"step\": 10, \"loss\": 1}\n";
  EXPECT_EQ(unfinished_reason(d.string()), "newest valid checkpoint is iteration 5 of 10");
  EXPECT_EQ(unfinished_reason(scratch("empty").string()), "no config.yaml (not started)");
}

TEST(RunStatus, EveryEmaExportMustBeThereAndVerify) {
  const fs::path d = scratch("killed_in_export");
  make_finished_run_dir(d, 10);
  fs::remove(d / "ema_0.99.safetensors");  // killed between the two exports of the last EMA
  EXPECT_EQ(unfinished_reason(d.string()), "ema_0.99.safetensors is missing");
  make_finished_run_dir(d, 10);
  fs::remove(d / "ema_0.9.pt.fnv");
  EXPECT_EQ(unfinished_reason(d.string()), "ema_0.9.pt has no checksum file");
  make_finished_run_dir(d, 10);
  std::ofstream(d / "ema_0.9.safetensors", std::ios::app) << "torn";
  EXPECT_NE(unfinished_reason(d.string()).find("ema_0.9.safetensors"), std::string::npos);
}

TEST(RunStatus, OtherConfigIsNamedKeyByKey) {
  const fs::path d = scratch("other");
  make_finished_run_dir(d, 10);
  auto now = finished_run_config(fs::path("elsewhere"), 10);  // the run dir itself may differ
  EXPECT_EQ(other_config_problem(d.string(), now), "");
  now.optim.lr = 2e-4;
  now.train.iterations = 20;
  const std::string p = other_config_problem(d.string(), now);
  EXPECT_NE(p.find("run dir '" + d.string() + "' holds a run of another config"), std::string::npos)
      << p;
  EXPECT_NE(p.find("optim.lr 0.0001 -> 0.0002"), std::string::npos) << p;
  EXPECT_NE(p.find("train.iterations 10 -> 20"), std::string::npos) << p;
  EXPECT_EQ(other_config_problem(scratch("none").string(), now), "");
}

}  // namespace
