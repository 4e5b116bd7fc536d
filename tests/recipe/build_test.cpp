// The components the trainer builds from a config: the timestep sampler draws from the process
// the model trains on.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <unistd.h>

#include <filesystem>

#include "dmtrain/models/channel_bias.hpp"
#include "dmtrain/models/group_norm_act.hpp"
#include "dmtrain/models/resample.hpp"
#include "dmtrain/timestep/factory.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/train/trainer.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

using namespace dmtrain;
namespace fs = std::filesystem;

// The bug: with diffusion.timestep_respacing the sampler drew t over all diffusion.steps, past
// the respaced tables ("index out of range" at the first step).
TEST(Build, SamplerDrawsFromTheRespacedProcess) {
  auto cfg = test_support::tiny_config("/unused", "/unused");  // 50 steps
  cfg.diffusion.timestep_respacing = "10";
  for (const char* kind : {"uniform", "clts", "speed", "logit-normal"}) {
    cfg.timestep.sampler = kind;
    const auto o = recipe::sampler_options(cfg);
    EXPECT_EQ(o.num_timesteps, 10) << kind;
    EXPECT_EQ(timestep::make_sampler(o)->num_timesteps(), 10) << kind;
  }
  cfg.diffusion.timestep_respacing = "";
  EXPECT_EQ(recipe::sampler_options(cfg).num_timesteps, 50);
}

TEST(Build, ARespacedRunTrains) {
  const fs::path root = dmtrain::test_support::scratch_dir("build", /*create=*/false);
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.diffusion.timestep_respacing = "10";
  cfg.train.iterations = 2;
  EXPECT_EQ(train::train(cfg).iteration, 2);
  fs::remove_all(root);
}

// train.threads sets LibTorch's intra-op thread count for the run (and the log says so).
TEST(Build, TrainThreadsSetsTheCpuThreadCount) {
  const fs::path root = dmtrain::test_support::scratch_dir("threads", /*create=*/false);
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.train.iterations = 1;
  const int before = at::get_num_threads();
  cfg.train.threads = before == 1 ? 2 : 1;
  train::train(cfg);
  EXPECT_EQ(at::get_num_threads(), cfg.train.threads);
  at::set_num_threads(before);
  fs::remove_all(root);
}

// The kernel switches among train.* reach the process-wide switches the models read, on and off.
TEST(Build, KernelSwitchesFollowTheConfig) {
  const fs::path root = dmtrain::test_support::scratch_dir("switches", /*create=*/false);
  test_support::write_tiny_idx(root / "data");
  const bool bias = models::fast_conv_bias_enabled(), rows = models::nhwc_row_kernels_enabled(),
             cached = models::cached_backward_enabled(), pool = models::fast_avg_pool_enabled();
  for (const bool on : {true, false}) {
    auto cfg = test_support::tiny_config(root / "data", root / (on ? "on" : "off"));
    cfg.train.iterations = 1;
    cfg.train.fast_conv_bias = on;
    cfg.train.nhwc_group_norm_rows = on;
    cfg.train.group_norm_cached_backward = on;
    cfg.train.fast_avg_pool = on;
    train::train(cfg);
    EXPECT_EQ(models::fast_conv_bias_enabled(), on);
    EXPECT_EQ(models::nhwc_row_kernels_enabled(), on);
    EXPECT_EQ(models::cached_backward_enabled(), on);
    EXPECT_EQ(models::fast_avg_pool_enabled(), on);
  }
  models::set_fast_conv_bias_enabled(bias);
  models::set_nhwc_row_kernels_enabled(rows);
  models::set_cached_backward_enabled(cached);
  models::set_fast_avg_pool_enabled(pool);
  fs::remove_all(root);
}

// The automatic thread count: the cores the load leaves free, at least one.
TEST(Build, AutoCpuThreadsLeaveTheBusyCores) {
  EXPECT_EQ(recipe::auto_cpu_threads(2, 0.1), 2);
  EXPECT_EQ(recipe::auto_cpu_threads(2, 2.0), 1);
  EXPECT_EQ(recipe::auto_cpu_threads(16, 10.3), 6);
  EXPECT_EQ(recipe::auto_cpu_threads(4, 9.0), 1);
  EXPECT_EQ(recipe::auto_cpu_threads(8, 0.6), 7);
}
