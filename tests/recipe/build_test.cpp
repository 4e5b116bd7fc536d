// The components the trainer builds from a config: the timestep sampler draws from the process
// the model trains on.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "dmtrain/models/attention.hpp"
#include "dmtrain/models/group_norm32.hpp"
#include "dmtrain/models/res_block.hpp"
#include "dmtrain/models/resample.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/timestep/factory.hpp"
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

// The kernel switches among train.* reach every layer of the model the recipe builds, on and off,
// and UNetModelImpl::set_kernels switches them all afterwards.
TEST(Build, KernelSwitchesReachEveryLayer) {
  const auto expect_all = [](models::UNetModelImpl& model, const models::KernelOptions& k,
                             const std::string& what) {
    const auto same = [&](const models::KernelOptions& got) {
      return got.fused_group_norm == k.fused_group_norm &&
             got.group_norm_rows == k.group_norm_rows &&
             got.group_norm_cached_backward == k.group_norm_cached_backward &&
             got.fast_conv_bias == k.fast_conv_bias && got.fast_avg_pool == k.fast_avg_pool &&
             got.attention_token_major == k.attention_token_major;
    };
    int norms = 0, blocks = 0, attention = 0, resample = 0;
    for (const auto& m : model.modules()) {
      if (auto* n = m->as<models::GroupNorm32Impl>()) {
        EXPECT_TRUE(same(n->options.kernels())) << what;
        ++norms;
      }
      if (auto* r = m->as<models::ResBlockImpl>()) {
        EXPECT_TRUE(same(r->options.kernels())) << what;
        ++blocks;
      }
      if (auto* a = m->as<models::AttentionBlockImpl>()) {
        EXPECT_TRUE(same(a->options.kernels())) << what;
        EXPECT_EQ(a->options.token_major(), k.attention_token_major) << what;
        ++attention;
      }
      if (auto* d = m->as<models::DownsampleImpl>()) {
        EXPECT_TRUE(same(d->options.kernels())) << what;
        ++resample;
      }
      if (auto* u = m->as<models::UpsampleImpl>()) {
        EXPECT_TRUE(same(u->options.kernels())) << what;
        ++resample;
      }
    }
    EXPECT_GT(norms, 0);  // the walk found the layers: the test has teeth
    EXPECT_GT(blocks, 0);
    EXPECT_GT(attention, 0);
    EXPECT_GT(resample, 0);
  };
  for (const bool on : {true, false}) {
    auto cfg = test_support::tiny_config("unused", "unused");
    cfg.model.attention_resolutions = {4};
    auto& k = cfg.train.kernels;
    k.fused_group_norm = k.group_norm_rows = k.group_norm_cached_backward = on;
    k.fast_conv_bias = k.fast_avg_pool = k.attention_token_major = on;
    models::UNetModel model(recipe::unet_options(cfg));
    expect_all(*model, k, on ? "config on" : "config off");
    models::KernelOptions flipped;
    flipped.fused_group_norm = flipped.group_norm_rows = flipped.group_norm_cached_backward = !on;
    flipped.fast_conv_bias = flipped.fast_avg_pool = flipped.attention_token_major = !on;
    model->set_kernels(flipped);
    expect_all(*model, flipped, on ? "set_kernels off" : "set_kernels on");
  }
}

// The automatic thread count: the cores the load leaves free, at least one.
TEST(Build, AutoCpuThreadsLeaveTheBusyCores) {
  EXPECT_EQ(recipe::auto_cpu_threads(2, 0.1), 2);
  EXPECT_EQ(recipe::auto_cpu_threads(2, 2.0), 1);
  EXPECT_EQ(recipe::auto_cpu_threads(16, 10.3), 6);
  EXPECT_EQ(recipe::auto_cpu_threads(4, 9.0), 1);
  EXPECT_EQ(recipe::auto_cpu_threads(8, 0.6), 7);
}

// Synthetic data is four batches of distinct images, at most 1/16 of the machine's memory; a
// batch that can never fit is refused before any pixel is made (a batch of 2e9 images asked for
// 2 TB of random pixels, which a machine that overcommits memory started filling for minutes).
TEST(Build, SyntheticDataIsFourBatchesCappedAndAnImpossibleBatchIsRefusedFirst) {
  dmtrain::config::RunConfig cfg;
  cfg.data.format = "synthetic";
  cfg.model.image_size = 16;
  cfg.model.in_channels = 1;
  cfg.train.batch_size = 300;
  EXPECT_EQ(dmtrain::recipe::open_data(cfg)->size(), 1200);  // 4 batches of 300
  cfg.train.batch_size = 100;
  EXPECT_EQ(dmtrain::recipe::synthetic_image_count(cfg, 1e12), 1024);  // at least 1024
  cfg.train.batch_size = 1000000;  // 4 batches: 1.024e9 bytes, over 1/16 of 8e9
  EXPECT_EQ(dmtrain::recipe::synthetic_image_count(cfg, 8e9), static_cast<int64_t>(8e9 / 16 / 256));
  cfg.train.batch_size = 2000000000;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    dmtrain::recipe::open_data(cfg);
    ADD_FAILURE() << "a batch of 2e9 images accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory: one batch of 2000000000 images"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}
