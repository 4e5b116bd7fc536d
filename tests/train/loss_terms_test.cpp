// loss_weight.terms through the trainer (train_step's eager path on the CPU): which loss terms a
// loss weighting multiplies must reach the step's objective. Invariants, since the per-example
// terms are not logged: with a fixed variance there is no vb term, so `mse` and `all` give the
// same objective; with L_hybrid's learned variance they differ; and a Min-SNR weight on the MSE
// term changes the objective against no weighting with the same draws and weights.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dmtrain/train/trainer.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;

namespace {

// The logged (loss, grad norm) of a 2-iteration tiny run with the given weighting.
std::vector<std::pair<double, double>> run(const fs::path& root, const std::string& name,
                                           const std::string& kind, const std::string& terms,
                                           bool learn_sigma) {
  auto cfg = test_support::tiny_config(root / "data", root / name);
  cfg.timestep.sampler = "uniform";
  cfg.optim.momentum_decay = cfg.optim.lr_compensation = false;
  cfg.model.learn_sigma = learn_sigma;
  cfg.loss_weight.kind = kind;
  cfg.loss_weight.terms = terms;
  cfg.loss_weight.gamma = 1.0;  // clips every t with SNR > 1: about half of them
  cfg.train.batch_size = 16;    // so that the draws surely include clipped ones
  cfg.train.iterations = 2;
  cfg.checkpoint.every = 0;
  train::train(cfg);
  return test_support::logged_losses(root / name);
}

}  // namespace

TEST(LossTerms, ReachTheTrainingObjective) {
  const fs::path root = test_support::scratch_dir("loss_terms");
  test_support::write_tiny_idx(root / "data");
  const auto none = run(root, "none", "none", "mse", true);
  const auto on_mse = run(root, "mse", "min-snr", "mse", true);
  const auto on_all = run(root, "all", "min-snr", "all", true);
  ASSERT_EQ(none.size(), 2u);
  ASSERT_EQ(on_mse.size(), 2u);
  ASSERT_EQ(on_all.size(), 2u);
  // Same initial weights, data, timesteps and noise: step 1's objectives differ only by weights.
  EXPECT_NE(on_mse[0].first, none[0].first);
  EXPECT_NE(on_mse[0].first, on_all[0].first);
  // Min-SNR weights are <= 1, and under `all` they also shrink the vb term: the objective with
  // the weight on everything is the smallest of the three.
  EXPECT_LT(on_all[0].first, on_mse[0].first);
  EXPECT_LT(on_mse[0].first, none[0].first);

  // No vb term (fixed variance): both readings are the same objective.
  const auto fixed_mse = run(root, "fixed_mse", "min-snr", "mse", false);
  const auto fixed_all = run(root, "fixed_all", "min-snr", "all", false);
  test_support::expect_same_losses(fixed_mse, fixed_all, 2, 1e-6, 1e-5);
}
