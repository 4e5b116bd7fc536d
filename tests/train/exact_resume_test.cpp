// Exact resume: on the CPU, 2N iterations straight and N + resume + N give bit-identical weights,
// EMAs and logged losses (llm.c's bit-exact resume test, for the whole trainer).
#include <gtest/gtest.h>

#include <torch/serialize.h>
#include <iomanip>

#include <filesystem>
#include <fstream>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;

namespace {

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("resume_" + name, /*create=*/false);
}

// Every logged loss, as its decimal text: equal texts are equal to the 8 digits the log keeps.
std::vector<std::string> losses(const fs::path& run_dir) {
  std::vector<std::string> out;
  for (const auto& r : observe::read_metrics_file((run_dir / "metrics.jsonl").string()).steps) {
    out.push_back(c10::str(std::setprecision(8), r.loss));
  }
  return out;
}

std::map<std::string, at::Tensor> load_archive(const fs::path& file, const config::RunConfig& cfg) {
  models::UNetModel model(recipe::unet_options(cfg));
  torch::load(model, file.string());
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value();
  return out;
}

}  // namespace

namespace {

// The straight run as configured, the split one with train.prefetch_inputs as `prefetch` says:
// prefetched inputs must give the same numbers, and a checkpoint taken while the next
// iteration's inputs were already drawn must resume as if they were not: with prefetching the
// second half resumes from iteration 2's checkpoint (written while iteration 3's batch and
// draws were prepared; the one at 3, the first half's last iteration, has nothing in flight).
void split_run_equals_straight_run(const std::string& name, bool prefetch) {
  const fs::path root = scratch(name);
  test_support::write_tiny_idx(root / "data");
  auto straight = test_support::tiny_config(root / "data", root / "straight");
  auto split = test_support::tiny_config(root / "data", root / "split");
  split.train.prefetch_inputs = prefetch;

  auto a = train::train(straight);
  EXPECT_EQ(a.iteration, 6);

  train::TrainOptions first;
  first.stop_at = 3;
  auto b1 = train::train(split, first);
  EXPECT_EQ(b1.iteration, 3);
  // Iterations 2 and 3 trained on inputs drawn during the one before (1 drew its own).
  EXPECT_EQ(b1.prefetched_steps, prefetch ? 2 : 0);
  EXPECT_EQ(b1.last_checkpoint, (root / "split" / "checkpoints" / "iter_000000000003").string());
  train::TrainOptions second;
  second.resume =
      prefetch ? (root / "split" / "checkpoints" / "iter_000000000002").string() : "auto";
  auto b2 = train::train(split, second);
  EXPECT_EQ(b2.iteration, 6);
  // From 2: iteration 3 draws its own, 4 to 6 were prepared during the one before.
  EXPECT_EQ(b2.prefetched_steps, prefetch ? 3 : 0);

  // Same logged losses, step by step (the split run logs steps 1-3, then 4-6).
  auto la = losses(root / "straight"), lb = losses(root / "split");
  ASSERT_EQ(la.size(), 6u);
  EXPECT_EQ(la, lb);

  // Bit-identical final weights and EMAs.
  const auto ca = checkpoint::latest_valid_checkpoint((root / "straight" / "checkpoints").string());
  const auto cb = checkpoint::latest_valid_checkpoint((root / "split" / "checkpoints").string());
  ASSERT_TRUE(ca && cb);
  EXPECT_EQ(ca->iteration, 6);
  EXPECT_EQ(cb->iteration, 6);
  auto wa = load_archive(fs::path(ca->dir) / "model.pt", straight);
  auto wb = load_archive(fs::path(cb->dir) / "model.pt", split);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [k, v] : wa) EXPECT_TRUE(torch::equal(v, wb.at(k))) << k;
  for (const char* ema : {"ema_0.9.pt", "ema_0.99.pt"}) {
    torch::serialize::InputArchive ia, ib;
    ia.load_from((root / "straight" / ema).string());
    ib.load_from((root / "split" / ema).string());
    for (const auto& [k, v] : wa) {
      at::Tensor x, y;
      ia.read(k, x);
      ib.read(k, y);
      EXPECT_TRUE(torch::equal(x, y)) << ema << " " << k;
    }
  }
  // A run that actually trained: the weights moved away from a fresh initialisation.
  at::manual_seed(straight.train.seed);
  models::UNetModel fresh(recipe::unet_options(straight));
  double moved = 0;
  for (const auto& p : fresh->named_parameters()) {
    moved += (p.value() - wa.at(p.key())).abs().sum().item<double>();
  }
  EXPECT_GT(moved, 0.0);
  fs::remove_all(root);
}

}  // namespace

TEST(ExactResume, SplitRunEqualsStraightRunBitForBit) {
  split_run_equals_straight_run("exact", /*prefetch=*/false);
}

TEST(ExactResume, SplitRunWithPrefetchedInputsEqualsStraightRunWithout) {
  split_run_equals_straight_run("prefetch", /*prefetch=*/true);
}

TEST(ExactResume, CorruptNewestCheckpointFallsBackToPrevious) {
  const fs::path root = scratch("fallback");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  train::TrainOptions first;
  first.stop_at = 4;  // checkpoints at 2 and 4
  train::train(cfg, first);
  const auto ckpts = checkpoint::list_checkpoints((root / "run" / "checkpoints").string());
  ASSERT_EQ(ckpts.size(), 2u);
  // Corrupt the newest (as a crash mid-copy or bit rot would); resume must use iteration 2.
  {
    std::fstream f(fs::path(ckpts[1].dir) / "model.pt",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  train::TrainOptions resume;
  resume.resume = "auto";
  resume.stop_at = 3;
  auto r = train::train(cfg, resume);
  EXPECT_EQ(r.iteration, 3);
  // Resumed from 2, not started afresh (which also ends at 3): the first run logged steps 1..4,
  // the resume cut them back to 1, 2 and logged 3 (a fresh start would have appended 1, 2, 3).
  const auto steps = observe::read_metrics_file((root / "run" / "metrics.jsonl").string()).steps;
  ASSERT_EQ(steps.size(), 3u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i].step, static_cast<int64_t>(i + 1));
  // An explicitly named corrupt checkpoint is an error, not a silent fallback.
  train::TrainOptions named;
  named.resume = ckpts[1].dir;
  EXPECT_THROW(train::train(cfg, named), dmtrain::Error);
  fs::remove_all(root);
}

TEST(ExactResume, ChangedModelIsRefusedUnlessAllowed) {
  const fs::path root = scratch("changed");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  train::TrainOptions first;
  first.stop_at = 2;
  train::train(cfg, first);
  auto changed = cfg;
  changed.diffusion.noise_schedule = "linear";
  train::TrainOptions resume;
  resume.resume = "auto";
  try {
    train::train(changed, resume);
    FAIL() << "resuming with another diffusion section must be refused";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--allow-config-change"), std::string::npos) << e.what();
  }
  resume.allow_config_change = true;
  resume.stop_at = 3;
  EXPECT_EQ(train::train(changed, resume).iteration, 3);
  fs::remove_all(root);
}
