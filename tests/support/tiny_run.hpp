// Helpers for the trainer tests: a tiny data set in IDX format and a tiny config that trains on
// it in well under a second per iteration on a CPU.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/observe/metrics_log.hpp"

namespace dmtrain::test_support {

// The bytes of a file ("" when it cannot be read).
inline std::string file_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// (loss, gradient norm) of every step record a run wrote to its metrics.jsonl, in order.
inline std::vector<std::pair<double, double>> logged_losses(const std::filesystem::path& run) {
  std::vector<std::pair<double, double>> out;
  for (const auto& r : observe::read_metrics_file((run / "metrics.jsonl").string()).steps) {
    out.emplace_back(r.loss, r.grad_norm);
  }
  return out;
}

// `got` logged `iterations` (loss, gradient norm) pairs, each within the relative tolerances of
// `want`'s (the graph-against-eager and ranks-against-one-process comparisons of these tests).
inline void expect_same_losses(const std::vector<std::pair<double, double>>& want,
                               const std::vector<std::pair<double, double>>& got, size_t iterations,
                               double loss_rel, double norm_rel) {
  ASSERT_EQ(want.size(), iterations);
  ASSERT_EQ(got.size(), iterations);
  for (size_t i = 0; i < iterations; ++i) {
    EXPECT_NEAR(got[i].first, want[i].first, loss_rel * want[i].first) << "iteration " << i + 1;
    EXPECT_NEAR(got[i].second, want[i].second, norm_rel * want[i].second) << "iteration " << i + 1;
  }
}

// Writes train-images-idx3-ubyte / train-labels-idx1-ubyte with n images of side x side
// deterministic pixels into dir.
inline void write_tiny_idx(const std::filesystem::path& dir, int n = 16, int side = 8) {
  std::filesystem::create_directories(dir);
  auto be32 = [](std::ofstream& o, uint32_t v) {
    const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    o.write(b, 4);
  };
  std::ofstream img(dir / "train-images-idx3-ubyte", std::ios::binary);
  be32(img, 0x803);
  be32(img, uint32_t(n));
  be32(img, uint32_t(side));
  be32(img, uint32_t(side));
  for (int i = 0; i < n * side * side; ++i) img.put(char((i * 37 + i / 64 * 11) % 256));
  std::ofstream lab(dir / "train-labels-idx1-ubyte", std::ios::binary);
  be32(lab, 0x801);
  be32(lab, uint32_t(n));
  for (int i = 0; i < n; ++i) lab.put(char(i % 10));
}

inline config::RunConfig tiny_config(const std::filesystem::path& data_dir,
                                     const std::filesystem::path& run_dir) {
  config::RunConfig c;
  c.model.image_size = 8;
  c.model.in_channels = 1;
  c.model.model_channels = 32;
  c.model.channel_mult = {1, 2};
  c.model.num_res_blocks = 1;
  c.model.attention_resolutions = {4};
  c.model.num_heads = 2;
  c.model.dropout = 0.1;  // exercises the dropout RNG across a resume
  c.diffusion.steps = 50;
  c.timestep.sampler = "clts";
  c.timestep.clts.target_iteration = 4;
  c.optim.momentum_decay = true;
  c.optim.lr_compensation = true;
  c.data.format = "idx";
  c.data.path = data_dir.string();
  c.data.num_workers = 1;
  c.train.iterations = 6;
  c.train.batch_size = 4;
  c.train.seed = 7;
  c.train.device = "cpu";
  c.train.run_dir = run_dir.string();
  c.train.ema_rates = {0.9, 0.99};
  c.checkpoint.every = 2;
  c.checkpoint.keep_last = 10;
  c.log.every = 1;
  c.log.level = "warn";
  c.sample.count = 2;
  c.sample.steps = "ddim2";
  return c;
}

}  // namespace dmtrain::test_support
