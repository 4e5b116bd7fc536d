// TrainState: what a checkpoint holds, registered by name, saved and loaded as one; its format
// version in the manifest (older read, newer refused); the resume decisions beside it; and the
// metrics.jsonl records written and read through one schema.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/timestep/uniform_sampler.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_state.hpp"

using namespace dmtrain;
namespace fs = std::filesystem;

namespace {

using Parts = test_support::TinyState;

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("state_" + name, /*create=*/false);
}

}  // namespace

TEST(TrainState, SavesEveryRegisteredPieceAndLoadsItBack) {
  const fs::path root = scratch("roundtrip");
  Parts a(1);
  EXPECT_EQ(a.state->names(), (std::vector<std::string>{"model.pt", "ema_0.pt", "ema_1.pt",
                                                        "optimizer.pt", "state.pt"}));
  a.state->counters.iteration = 12;
  a.state->counters.position = {3, 8};
  a.state->counters.skipped_total = 2;
  a.opt->set_iteration(12);
  const at::Tensor t_draw = at::randint(100, {4}, a.state->t_gen);  // the stream moved
  (void)t_draw;
  const std::string dir = a.state->save(root.string(), a.cfg);
  EXPECT_EQ(test_support::file_text(fs::path(dir) / "COMMITTED").rfind("format 2\n", 0), 0u);
  EXPECT_EQ(checkpoint::checkpoint_format(dir), checkpoint::kCheckpointFormat);

  Parts b(99);  // other weights and streams until loaded
  b.state->load(dir, at::kCPU);
  EXPECT_EQ(b.state->counters.iteration, 12);
  EXPECT_EQ(b.state->counters.position, (data::LoaderPosition{3, 8}));
  EXPECT_EQ(b.state->counters.skipped_total, 2);
  EXPECT_EQ(b.opt->iteration(), 12);
  const auto pa = a.model->parameters(), pb = b.model->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pb[i])) << i;
  // The random streams continue where the saved ones stood.
  EXPECT_TRUE(
      at::equal(at::randint(100, {8}, a.state->t_gen), at::randint(100, {8}, b.state->t_gen)));
  EXPECT_TRUE(at::equal(at::randn({8}, a.state->noise_gen), at::randn({8}, b.state->noise_gen)));
  fs::remove_all(root);
}

TEST(TrainState, ReadsFormatOneAndRefusesANewerFormatByName) {
  const fs::path root = scratch("format");
  Parts a(1);
  a.state->counters.iteration = 4;
  const std::string dir = a.state->save(root.string(), a.cfg);
  const fs::path manifest = fs::path(dir) / "COMMITTED";
  const std::string text = test_support::file_text(manifest);
  const std::string files = text.substr(text.find('\n') + 1);
  // Format 1: the manifest of the files alone, as checkpoints were written before versions.
  std::ofstream(manifest) << files;
  EXPECT_EQ(checkpoint::checkpoint_format(dir), 1);
  Parts b(2);
  b.state->load(dir, at::kCPU);
  EXPECT_EQ(b.state->counters.iteration, 4);
  std::ofstream(manifest) << "format 3\n" << files;
  try {
    b.state->load(dir, at::kCPU);
    FAIL() << "format 3 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("format 3"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(TrainState, ResumeDecisions) {
  const fs::path root = scratch("resume");
  EXPECT_EQ(checkpoint::resolve_resume("", root.string()), "");
  EXPECT_EQ(checkpoint::resolve_resume("auto", root.string()), "");  // nothing there: fresh
  EXPECT_THROW(checkpoint::resolve_resume((root / "nope").string(), root.string()), Error);
  Parts a(1);
  a.state->counters.iteration = 6;
  const std::string dir = a.state->save(root.string(), a.cfg);
  EXPECT_EQ(checkpoint::resolve_resume("auto", root.string()), dir);
  checkpoint::check_same_run(dir, a.cfg, false);  // the same config: fine
  auto wider = a.cfg;
  wider.model.model_channels = 64;
  EXPECT_THROW(checkpoint::check_same_run(dir, wider, false), Error);
  checkpoint::check_same_run(dir, wider, true);  // allowed: a warning
  auto other_lr = a.cfg;
  other_lr.optim.lr = 1e-5;  // not what the weights mean: no refusal
  checkpoint::check_same_run(dir, other_lr, false);
  fs::remove_all(root);
}

// Rank r of W reads positions r, r + W, ...: offset 4 of 2 ranks is image 8 of the epoch.
TEST(TrainState, ReshardsTheDataPositionWhenBothWorldSizesDivideTheData) {
  checkpoint::TrainCounters c;
  c.world_size = 2;
  c.position = {1, 4};
  EXPECT_EQ(checkpoint::reshard_position(c, 32, 2), (data::LoaderPosition{1, 4}));
  EXPECT_EQ(checkpoint::reshard_position(c, 32, 1), (data::LoaderPosition{1, 8}));
  EXPECT_EQ(checkpoint::reshard_position(c, 32, 4), (data::LoaderPosition{1, 2}));
  EXPECT_THROW(checkpoint::reshard_position(c, 32, 3), Error);  // 32 images do not split over 3
}
