// dist.graph_step with a world-size-1 process group (TrainOptions::single_rank_group), the tiny run
// of tiny_run.hpp:
//  - on the CPU (runs everywhere): the eager bucketed all-reduce path trains exactly as one plain
//    process, and the log names the path;
//  - on one GPU with NCCL: the trainer's captured data-parallel step logs the losses and norms of
//    the eager data-parallel step (c10d's Reducer) and really replays a graph; and the step as
//    the trainer captures it (zero_grads, forward, backward launching the bucket all-reduces,
//    finish(), the flat update), built from the parts, gives the eager losses with the
//    collectives inside the capture.
// The GPU tests are skipped without CUDA and NCCL (written without a GPU; not yet run).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dmtrain/dist/bucketed_all_reduce.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/dist/process_group.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/optim/flat_update.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/train/cuda_graph_step.hpp"
#include "dmtrain/train/trainer.hpp"
#include "support/tiny_run.hpp"

namespace dmtrain::train {
namespace {

namespace fs = std::filesystem;

struct TinyRuns : ::testing::Test {
  fs::path root;
  void SetUp() override {
    root = fs::temp_directory_path() /
           ("dmtrain_dist_graph_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    test_support::write_tiny_idx(root / "data", 16);
  }
  void TearDown() override { fs::remove_all(root); }
  config::RunConfig config(const std::string& name) const {
    auto cfg = test_support::tiny_config(root / "data", root / name);
    cfg.model.dropout = 0.0;  // a graph draws its dropout masks differently
    cfg.checkpoint.every = 0;
    cfg.log.level = "info";
    return cfg;
  }
};

TEST_F(TinyRuns, BucketedAveragingOnTheCpuTrainsAsOneProcess) {
  auto cfg = config("plain");
  cfg.train.iterations = 3;
  train(cfg);
  cfg = config("bucketed");
  cfg.train.iterations = 3;
  cfg.dist.graph_step = true;
  TrainOptions alone;
  alone.single_rank_group = true;
  train(cfg, alone);
  const std::string log = test_support::file_text(root / "bucketed" / "train.log");
  EXPECT_NE(log.find("data-parallel step: bucketed all-reduce of the flat gradient buffer "
                     "(dist.graph_step), eager"),
            std::string::npos)
      << log;
  const auto a = test_support::logged_losses(root / "plain"),
             b = test_support::logged_losses(root / "bucketed");
  test_support::expect_same_losses(a, b, 3, 1e-6, 1e-6);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_NE(a[2].first, a[0].first);  // the weights moved
}

TEST_F(TinyRuns, CapturedDataParallelStepLogsTheEagerLosses) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  if (!dist::has_nccl()) GTEST_SKIP() << "this build has no NCCL";
  std::vector<std::vector<std::pair<double, double>>> runs;
  for (const bool graph_step : {false, true}) {
    const std::string name = graph_step ? "graph" : "eager";
    auto cfg = config(name);
    cfg.train.device = "cuda";
    cfg.train.precision = "fp32";
    cfg.train.cudnn_benchmark = false;  // the same convolution algorithms in both runs
    cfg.train.iterations = 7;
    cfg.dist.graph_step = graph_step;
    TrainOptions alone;
    alone.single_rank_group = true;
    const TrainResult r = train(cfg, alone);
    const std::string log = test_support::file_text(root / name / "train.log");
    // iterations 4..7 after 3 eager ones; a refused capture says why in the log
    EXPECT_EQ(r.graph_steps, graph_step ? 4 : 0) << log;
    if (graph_step) {
      EXPECT_NE(log.find("(dist.graph_step), inside the step's CUDA graph from iteration 3"),
                std::string::npos)
          << log;
      EXPECT_NE(log.find("training step captured as a CUDA graph"), std::string::npos) << log;
    } else {
      EXPECT_NE(log.find("data-parallel step: eager, c10d's Reducer"), std::string::npos) << log;
    }
    runs.push_back(test_support::logged_losses(root / name));
  }
  test_support::expect_same_losses(runs[0], runs[1], 7, 1e-5, 1e-4);  // cuda_graph_test's
  ASSERT_EQ(runs[0].size(), 7u);
  EXPECT_NE(runs[0][6].first, runs[0][0].first);  // the weights moved: the test has teeth
}

constexpr int kSteps = 7;
constexpr int kEagerWarmup = 3;  // as the trainer: NCCL's communicator and cuDNN set up eagerly

// Iteration k's inputs, the same in both runs: images, timesteps, noise.
std::vector<at::Tensor> inputs_of(int k, const at::Device& device) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(100 + k);
  std::vector<at::Tensor> in{at::randn({4, 1, 8, 8}, g), at::randint(0, 50, {4}, g),
                             at::randn({4, 1, 8, 8}, g)};
  for (auto& t : in) t = t.to(device);
  return in;
}

std::vector<double> run(bool graphed, const dist::ProcessGroup& group, int& launches) {
  const at::Device device(at::kCUDA, 0);
  auto cfg = test_support::tiny_config("unused", "unused");
  cfg.model.dropout = 0.0;  // a graph draws its dropout masks differently
  at::globalContext().setBenchmarkCuDNN(false);
  at::manual_seed(7);
  models::UNetModel model(recipe::unet_options(cfg));
  model->to(device);
  model->train();
  std::vector<at::Tensor> params = model->parameters();
  auto optimizer = recipe::make_optimizer(params, cfg);
  std::vector<std::vector<at::Tensor>> ema(1);
  for (const auto& p : params) ema[0].push_back(p.detach().clone());
  optim::FlatOptimizerStep flat(
      params, *optimizer, ema, [](size_t, int64_t) { return 0.1; }, /*grad_clip=*/1.0);
  // Counts the launches (inside backward, also while capturing) on top of the real collective.
  c10::intrusive_ptr<c10d::ProcessGroup> pg = group.c10d();
  dist::BucketedAllReduce all_reduce(
      [pg, &launches](at::Tensor& slice) {
        ++launches;
        std::vector<at::Tensor> t{slice};
        c10d::AllreduceOptions o;
        o.reduceOp = c10d::ReduceOp::AVG;
        return pg->allreduce(t, o);
      },
      flat.buffers().grads, params, /*bucket_mib=*/1);
  EXPECT_GT(all_reduce.buckets().size(), 1u) << "the tiny UNet should fill several buckets";

  const auto loss_of = [&](const std::vector<at::Tensor>& x) {
    const at::Tensor per_example =
        (model->forward(x[0] + x[2], x[1], at::Tensor()) - x[2]).pow(2).mean({1, 2, 3});
    return std::make_pair(per_example.mean(), per_example.detach());
  };
  CudaGraphStep::CapturedUpdate captured;
  captured.zero_grads = [&] { flat.zero_grads(); };
  captured.after_backward = [&] { all_reduce.finish(); };
  captured.thread_local_capture = true;  // as the trainer captures collectives
  captured.update = [&](const at::Tensor& loss) { return flat.update(loss); };
  CudaGraphStep step(loss_of, params, captured);

  std::vector<double> losses;
  for (int k = 0; k < kSteps; ++k) {
    const std::vector<at::Tensor> in = inputs_of(k, device);
    flat.prepare(k);
    at::Tensor loss;
    if (graphed && k >= kEagerWarmup) {
      const int before = launches;
      loss = step.run(in).first;
      if (k == kEagerWarmup) {
        // The warm-up backward and the captured one launched every bucket; the replay none
        // from the host (its collectives are in the graph).
        EXPECT_EQ(launches - before, 2 * static_cast<int>(all_reduce.buckets().size()));
      } else {
        EXPECT_EQ(launches, before) << "a replay launches nothing from the host";
      }
      EXPECT_TRUE(step.update_result().defined());
    } else {
      flat.zero_grads();
      loss = loss_of(in).first;
      loss.backward();
      all_reduce.finish();
      flat.update(loss.detach());
    }
    losses.push_back(loss.item<double>());
    flat.commit(k);
  }
  return losses;
}

TEST(DistGraphStep, CapturedBucketedStepGivesTheEagerLosses) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  if (!dist::has_nccl()) GTEST_SKIP() << "this build has no NCCL";
  if (!optim::flat_update_kernel_available()) GTEST_SKIP() << "no flat-update CUDA kernel";
  const dist::ProcessGroup group = dist::init_single_rank_group(
      at::Device(at::kCUDA, 0), dist::pick_free_port(), std::chrono::seconds(60));
  ASSERT_TRUE(group.is_distributed());
  int eager_launches = 0, graph_launches = 0;
  const std::vector<double> eager = run(false, group, eager_launches);
  const std::vector<double> graph = run(true, group, graph_launches);
  ASSERT_EQ(eager.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(graph.size(), static_cast<size_t>(kSteps));
  for (int k = 0; k < kSteps; ++k) {
    EXPECT_NEAR(graph[k], eager[k], 1e-5 * eager[k]) << "iteration " << k + 1;
  }
  EXPECT_NE(eager[kSteps - 1], eager[0]) << "the weights moved: the comparison has teeth";
  EXPECT_GT(eager_launches, 0);
}

}  // namespace
}  // namespace dmtrain::train
