// check_run_config (recipe/build.hpp): what --dry-run and the start of a run refuse before
// training. Before it, an invalid sample.steps or eval.steps passed the dry run and failed after
// the last iteration (at the final grid or FID), and attention resolutions the net never reaches
// were silently ignored.
#include <gtest/gtest.h>

#include <string>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain;

namespace {

// The message of the dmtrain::Error check_run_config throws for cfg, or "" when it passes.
std::string error_of(const config::RunConfig& cfg) {
  try {
    recipe::check_run_config(cfg);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

config::RunConfig defaults() {
  config::RunConfig cfg;
  cfg.train.iterations = 10;
  cfg.data.format = "synthetic";
  return cfg;
}

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

}  // namespace

TEST(RunConfigCheck, DefaultsPassWithoutWarnings) {
  EXPECT_TRUE(recipe::check_run_config(defaults()).empty());
}

TEST(RunConfigCheck, MicroBatchesThatDoNotDivideTheBatchAreRefused) {
  auto cfg = defaults();
  cfg.train.batch_size = 8;
  cfg.train.micro_batches = 3;
  EXPECT_HAS(error_of(cfg), "train.micro_batches (3) must divide train.batch_size (8)");
  cfg.train.micro_batches = 4;
  EXPECT_EQ(error_of(cfg), "");
}

TEST(RunConfigCheck, BadSampleStepsIsRefusedNamingTheKey) {
  auto cfg = defaults();
  cfg.sample.steps = "ddimX";
  EXPECT_HAS(error_of(cfg), "sample.steps 'ddimX'");
  // Well-formed, but more steps than the process has (the final grid failed on this).
  cfg.diffusion.steps = 20;
  cfg.sample.steps = "50";
  EXPECT_HAS(error_of(cfg), "sample.steps '50' is not a respacing of the trained process's 20");
}

TEST(RunConfigCheck, BadEvalStepsIsRefusedWhenFidRuns) {
  auto cfg = defaults();
  cfg.eval.steps = "ddimX";
  EXPECT_EQ(error_of(cfg), "");  // eval.steps is unused while eval.fid_every is 0
  cfg.eval.fid_every = 5;
  EXPECT_HAS(error_of(cfg), "eval.steps 'ddimX'");
}

TEST(RunConfigCheck, UnreachedAttentionResolutionsWarnWithTheNetsResolutions) {
  auto cfg = defaults();  // image_size 32, channel_mult of 4 levels: 32, 16, 8, 4
  cfg.model.attention_resolutions = {64, 16, 2};
  const auto warnings = recipe::check_run_config(cfg);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_HAS(warnings[0], "model.attention_resolutions");
  EXPECT_HAS(warnings[0], "never reaches 64, 2");
  EXPECT_HAS(warnings[0], "32, 16, 8, 4");
  // The net is the one without them: the unreached resolutions add no blocks.
  auto reached = defaults();
  reached.model.attention_resolutions = {16};
  EXPECT_EQ(recipe::unet_options(cfg).attention_resolutions(),
            recipe::unet_options(reached).attention_resolutions());
}

TEST(RunConfigCheck, AttentionResolutionThatDividesNoLevelNamesTheKey) {
  auto cfg = defaults();
  cfg.model.attention_resolutions = {12};
  const auto msg = error_of(cfg);
  EXPECT_HAS(msg, "model.attention_resolutions: 12 does not divide model.image_size 32");
  EXPECT_HAS(msg, "32, 16, 8, 4");
}

TEST(RunConfigCheck, UNetOptionErrorsNameTheConfigKey) {
  auto cfg = defaults();
  cfg.model.num_heads = 3;  // does not divide the level widths (128, 256)
  EXPECT_HAS(error_of(cfg), "model.num_heads");
}

TEST(RunConfigCheck, EmaRatesSharingAnExportFileAreRefused) {
  auto cfg = defaults();
  cfg.train.ema_rates = {0.9999, 0.99990001};
  EXPECT_HAS(error_of(cfg), "train.ema_rates: two rates export to the same file ema_0.9999.pt");
}
