// FID during training (eval.fid_every): a run with a tiny TorchScript feature network standing in
// for Inception logs one FID record per evaluation at the right iterations, finite, changing as
// the model trains, and reproducible (the same samples' noise at every evaluation and run); with
// a reference that has feature vectors the records carry KID and precision/recall too, with a
// mu/sigma-only reference they do not.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "dmtrain/eval/feature_stats.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;

namespace {

// features = tanh(mean_hw(x) W + std_hw(x) C), 6 dimensions.
void save_tiny_feature_net(const std::string& path) {
  torch::jit::Module m("TinyFeatures");
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  m.register_parameter("w", at::randn({3, 6}, g), false);
  m.register_parameter("c", at::randn({3, 6}, g), false);
  m.define(R"(
def forward(self, x):
    return torch.tanh(torch.matmul(x.mean([2, 3]), self.w) + torch.matmul(x.std([2, 3]), self.c))
)");
  m.save(path);
}

// step -> fid of the FID records of a run's metrics.jsonl; `losses` counts the other records.
std::map<int64_t, double> fid_records(const fs::path& run, int* losses) {
  const auto h = dmtrain::observe::read_metrics_file((run / "metrics.jsonl").string());
  std::map<int64_t, double> out;
  for (const auto& r : h.fids) out[r.step] = r.fid;
  *losses = static_cast<int>(h.steps.size());
  return out;
}

TEST(PeriodicFid, LogsReproducibleFidAtTheConfiguredIterations) {
  const fs::path root = dmtrain::test_support::scratch_dir("fid", /*create=*/false);
  test_support::write_tiny_idx(root / "data", 16);
  save_tiny_feature_net((root / "net.pt").string());
  // Reference statistics: any valid 6-dimensional Gaussian will do for the invariants tested.
  eval::FeatureStats ref;
  ref.mu = at::linspace(-0.5, 0.5, 6, at::kDouble);
  ref.sigma = at::eye(6, at::kDouble) * 0.1;
  ref.count = 100;
  eval::save_stats((root / "ref.npz").string(), ref);

  std::map<int64_t, double> runs[2];
  for (int r = 0; r < 2; ++r) {
    auto cfg = test_support::tiny_config(root / "data", root / ("run" + std::to_string(r)));
    cfg.train.iterations = 4;
    cfg.eval.fid_every = 2;
    cfg.eval.fid_samples = 4;
    cfg.eval.steps = "ddim2";
    cfg.eval.batch = 4;
    cfg.eval.inception = (root / "net.pt").string();
    cfg.eval.reference = (root / "ref.npz").string();
    train::train(cfg);
    int losses = 0;
    runs[r] = fid_records(root / ("run" + std::to_string(r)), &losses);
    EXPECT_EQ(losses, 4);  // the loss records are unchanged, one per logged step
  }
  ASSERT_EQ(runs[0].size(), 2u);
  ASSERT_TRUE(runs[0].count(2) && runs[0].count(4));
  for (const auto& [step, v] : runs[0]) EXPECT_TRUE(std::isfinite(v) && v > 0) << step;
  EXPECT_NE(runs[0][2], runs[0][4]);  // the EMA moved between the evaluations
  EXPECT_EQ(runs[0], runs[1]);        // same seed, same noise: the same numbers
  // mu/sigma only: no KID or precision/recall keys in the records.
  for (const auto& r : observe::read_records((root / "run0" / "metrics.jsonl").string())) {
    EXPECT_FALSE(r.has("kid") || r.has("precision") || r.has("recall"));
  }
  fs::remove_all(root);
}

TEST(PeriodicFid, AReferenceWithFeaturesAddsKidAndPrecisionRecall) {
  const fs::path root = dmtrain::test_support::scratch_dir("fidfeat", /*create=*/false);
  test_support::write_tiny_idx(root / "data", 16);
  save_tiny_feature_net((root / "net.pt").string());
  // 20 reference vectors in the network's range (tanh: (-1, 1)), as `dmtrain fid --cache-ref`
  // writes them (mu, sigma, features).
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
  eval::FeatureSet ref;
  ref.features = at::tanh(at::randn({20, 6}, g));
  ref.stats = eval::feature_stats(ref.features);
  eval::save_feature_set((root / "ref.npz").string(), ref);

  std::vector<observe::FidRecord> runs[2];
  for (int r = 0; r < 2; ++r) {
    auto cfg = test_support::tiny_config(root / "data", root / ("run" + std::to_string(r)));
    cfg.train.iterations = 4;
    cfg.eval.fid_every = 2;
    cfg.eval.fid_samples = 5;
    cfg.eval.steps = "ddim2";
    cfg.eval.batch = 5;
    cfg.eval.inception = (root / "net.pt").string();
    cfg.eval.reference = (root / "ref.npz").string();
    train::train(cfg);
    runs[r] =
        observe::read_metrics_file((root / ("run" + std::to_string(r)) / "metrics.jsonl").string())
            .fids;
  }
  ASSERT_EQ(runs[0].size(), 2u);
  for (const auto& f : runs[0]) {
    EXPECT_TRUE(std::isfinite(f.fid) && std::isfinite(f.kid) && std::isfinite(f.kid_std));
    EXPECT_GT(f.kid_std, 0.0);  // 100 different subsets of 5 out of 5 and 20
    // Fractions of 5 samples and of 20 reference vectors.
    EXPECT_NEAR(f.precision * 5, std::round(f.precision * 5), 1e-6) << f.precision;
    EXPECT_NEAR(f.recall * 20, std::round(f.recall * 20), 1e-6) << f.recall;
    EXPECT_TRUE(f.precision >= 0 && f.precision <= 1 && f.recall >= 0 && f.recall <= 1);
  }
  EXPECT_NE(runs[0][0].kid, runs[0][1].kid);  // the EMA moved between the evaluations
  for (size_t i = 0; i < 2; ++i) {            // same seed: the same numbers
    EXPECT_EQ(runs[0][i].fid, runs[1][i].fid);
    EXPECT_EQ(runs[0][i].kid, runs[1][i].kid);
    EXPECT_EQ(runs[0][i].precision, runs[1][i].precision);
    EXPECT_EQ(runs[0][i].recall, runs[1][i].recall);
  }
  fs::remove_all(root);
}

// A stop signal during an evaluation of minutes (4096 samples x 1000 DDIM steps here) abandons it
// and checkpoints at the next iteration within seconds; before, the signal waited for the whole
// evaluation.
TEST(PeriodicFid, AStopSignalDoesNotWaitForTheEvaluation) {
  const fs::path root = dmtrain::test_support::scratch_dir("fid_stop", /*create=*/false);
  test_support::write_tiny_idx(root / "data", 16);
  save_tiny_feature_net((root / "net.pt").string());
  eval::FeatureStats ref;
  ref.mu = at::zeros({6}, at::kDouble);
  ref.sigma = at::eye(6, at::kDouble);
  ref.count = 100;
  eval::save_stats((root / "ref.npz").string(), ref);
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.train.iterations = 1000;
  cfg.checkpoint.every = 1000;
  cfg.diffusion.steps = 1000;
  cfg.eval.fid_every = 2;
  cfg.eval.fid_samples = 4096;
  cfg.eval.steps = "1000";
  cfg.eval.batch = 256;
  cfg.eval.inception = (root / "net.pt").string();
  cfg.eval.reference = (root / "ref.npz").string();
  using Clock = std::chrono::steady_clock;
  std::atomic<bool> done{false};
  Clock::time_point signalled;
  std::thread signaller([&] {
    // Step 2's record is written just before its evaluation starts.
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (!done && Clock::now() < deadline) {
      const std::string m = test_support::file_text(root / "run" / "metrics.jsonl");
      if (std::count(m.begin(), m.end(), '\n') >= 2) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // well into the evaluation
    signalled = Clock::now();
    ::kill(::getpid(), SIGTERM);
  });
  const train::TrainResult r = train::train(cfg);
  done = true;
  signaller.join();
  const double waited = std::chrono::duration<double>(Clock::now() - signalled).count();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.iteration, 3);
  EXPECT_LT(waited, 20.0);
  EXPECT_EQ(r.last_checkpoint.empty(), false);
  fs::remove_all(root);
}

TEST(PeriodicFid, ABadNetworkFileFailsBeforeTraining) {
  const fs::path root = dmtrain::test_support::scratch_dir("fidbad", /*create=*/false);
  test_support::write_tiny_idx(root / "data", 16);
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.eval.fid_every = 2;
  cfg.eval.inception = (root / "missing.pt").string();
  cfg.eval.reference = (root / "missing.npz").string();
  try {
    train::train(cfg);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root / "run" / "checkpoints"));  // nothing trained
  fs::remove_all(root);
}

}  // namespace
