// CUDA-graph replay of the training step (train.cuda_graphs) against the eager step: the same
// tiny run on the GPU, with and without graphs, logs the same loss and gradient norm at every
// iteration, and the graphed run really replayed a graph after its eager warm-up iterations.
// Needs a GPU: skipped in CI, run on the GPU machine.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/train/cuda_graph_step.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace dmtrain::train {
namespace {

namespace fs = std::filesystem;

TEST(CudaGraphStep, ReplayLogsTheSameLossesAsTheEagerStep) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  const fs::path root = dmtrain::test_support::scratch_dir("graph", /*create=*/false);
  test_support::write_tiny_idx(root / "data", 16);
  std::vector<std::vector<std::pair<double, double>>> runs;
  for (const bool graphs : {false, true}) {
    auto cfg = test_support::tiny_config(root / "data", root / (graphs ? "graph" : "eager"));
    cfg.train.device = "cuda";
    cfg.train.precision = "fp32";
    cfg.train.cudnn_benchmark = false;  // the same convolution algorithms in both runs
    cfg.train.cuda_graphs = graphs;
    cfg.model.dropout = 0.0;  // a graph draws its dropout masks differently
    cfg.train.iterations = 7;
    cfg.checkpoint.every = 0;
    const TrainResult r = train(cfg);
    EXPECT_EQ(r.graph_steps, graphs ? 4 : 0);  // iterations 4..7 after 3 eager ones
    runs.push_back(test_support::logged_losses(root / (graphs ? "graph" : "eager")));
  }
  test_support::expect_same_losses(runs[0], runs[1], 7, 1e-5, 1e-4);
  ASSERT_EQ(runs[0].size(), 7u);
  // The weights moved: later losses are not the first one (the comparison has teeth).
  EXPECT_NE(runs[0][6].first, runs[0][0].first);
  fs::remove_all(root);
}

}  // namespace
}  // namespace dmtrain::train

namespace dmtrain::train {
namespace {

// A step that waits for the device (.item()) cannot be captured: run() says so, naming the key
// that turns graphs off, and the device keeps working (the trainer then trains on eagerly).
TEST(CudaGraphStep, AStepThatSyncsIsRefusedAndTheDeviceStaysUsable) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  at::Tensor p = at::ones({4}, at::kCUDA).requires_grad_(true);
  CudaGraphStep step(
      [&](const std::vector<at::Tensor>& in) {
        const at::Tensor l = (in[0] * p).sum();
        if (l.item<float>() > 1e9f) throw std::runtime_error("unreachable");
        return std::make_pair(l, in[0]);
      },
      {p});
  try {
    step.run({at::ones({4}, at::kCUDA)});
    FAIL() << "capture of a synchronising step succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.cuda_graphs"), std::string::npos) << e.what();
  }
  EXPECT_EQ(at::ones({3}, at::kCUDA).sum().item<float>(), 3.f);
  const at::Tensor l = (at::ones({4}, at::kCUDA) * p).sum();
  l.backward();
  EXPECT_EQ(p.grad().sum().item<float>(), 4.f);
  // Random draws work again (the eager fallback's dropout): the failed capture used to leave the
  // CUDA generator in capture mode ("Offset increment outside graph capture").
  EXPECT_NO_THROW({
    const at::Tensor r = at::randn({64}, at::kCUDA);
    const at::Tensor d = at::dropout(at::ones({64}, at::kCUDA), 0.5, /*train=*/true);
    EXPECT_TRUE(at::isfinite(r).all().item<bool>());
    EXPECT_GT(d.eq(0).sum().item<int64_t>(), 0);
  });
}

}  // namespace
}  // namespace dmtrain::train
