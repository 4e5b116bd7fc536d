// Every shipped config resolves to what its file name promises: the words of the name (split
// on '_') say which sampler, momentum decay, learning-rate rule, loss weighting and prediction
// target the run uses, and a file that promises nothing must be the baseline in each of them.
// This is the check that caught configs/cifar10_clts_mdlrc.yaml training with uniform
// timesteps (a diamond of bases let the shared baseline override CLTS).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "dmtrain/config/load.hpp"

namespace fs = std::filesystem;
using dmtrain::config::load_config;
using dmtrain::config::RunConfig;

namespace {

std::set<std::string> words_of(const fs::path& file) {
  std::set<std::string> words;
  std::stringstream name(file.stem().string());
  for (std::string w; std::getline(name, w, '_');) words.insert(w);
  return words;
}

// Words that name no method (data sets, model sizes, the paper's reading of a value).
const std::set<std::string> kNeutral = {"cifar10", "imagenet128", "small", "baseline", "paper"};
const std::set<std::string> kMethods = {"clts",    "mdlrc",    "minsnr", "speed",     "logitnormal",
                                        "lrdecay", "mdnocomp", "x0",     "quickstart"};

std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(DMTRAIN_SOURCE_DIR) / "configs")) {
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A shipped config as a run resolves it, with placeholders for the paths that configs leave to
// the command line.
RunConfig load_shipped(const fs::path& file) {
  return load_config(file.string(), {"data.path=/placeholder", "eval.inception=/placeholder.pt",
                                     "eval.reference=/placeholder.npz"});
}

}  // namespace

TEST(ShippedConfigs, EachResolvesToWhatItsNamePromises) {
  const auto files = shipped_configs();
  ASSERT_GE(files.size(), 10u);
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    auto w = words_of(file);
    for (const auto& word : w) {
      EXPECT_TRUE(kNeutral.count(word) || kMethods.count(word))
          << "name word '" << word << "' promises nothing this test knows: add it to the rules";
    }
    // The quickstart is documented as the paper's CLTS + MDLRC.
    if (w.count("quickstart")) w.insert({"clts", "mdlrc"});
    const RunConfig cfg = load_shipped(file);
    const std::string want_sampler = w.count("clts")          ? "clts"
                                     : w.count("speed")       ? "speed"
                                     : w.count("logitnormal") ? "logit-normal"
                                                              : "uniform";
    EXPECT_EQ(cfg.timestep.sampler, want_sampler);
    EXPECT_EQ(cfg.optim.momentum_decay, w.count("mdlrc") + w.count("mdnocomp") > 0);
    EXPECT_EQ(cfg.optim.lr_compensation, w.count("mdlrc") > 0);
    EXPECT_EQ(cfg.optim.lr_schedule, w.count("lrdecay") ? "mdlrc" : "constant");
    EXPECT_EQ(cfg.loss_weight.kind, w.count("minsnr") ? "min-snr" : "none");
    if (w.count("minsnr")) {
      EXPECT_DOUBLE_EQ(cfg.loss_weight.gamma, 5.0);
    }
    EXPECT_EQ(cfg.diffusion.mean_type, w.count("x0") ? "x0" : "epsilon");
    if (w.count("paper") && w.count("clts")) {
      EXPECT_DOUBLE_EQ(cfg.timestep.clts.sigma, 1.0);
    }
    if (w.count("mdlrc") || w.count("mdnocomp") || w.count("lrdecay")) {
      EXPECT_DOUBLE_EQ(cfg.optim.beta1_min, 0.5);
    }
    // Each file says what it is in a header comment.
    std::ifstream in(file);
    std::string first;
    std::getline(in, first);
    EXPECT_EQ(first.rfind("# ", 0), 0u) << "no header comment";
  }
}

// The switches that change a step's rounding but not its method: the study's arms
// (configs/experiments/) all pin them to what groups 3 on were measured with, so that a new
// default never moves one arm and not another; the full CIFAR10 recipes run the fastest step
// measured for them (channels-last with the row-reading GroupNorm kernels, docs/benchmarks.md).
TEST(ShippedConfigs, StudyArmsPinTheRoundingSwitchesAndRecipesRunTheFastestStep) {
  int study = 0, recipes = 0;
  for (const auto& file : shipped_configs()) {
    SCOPED_TRACE(file.string());
    const RunConfig cfg = load_shipped(file);
    const auto& t = cfg.train;
    if (file.parent_path().filename() == "experiments") {
      ++study;
      EXPECT_FALSE(t.channels_last);
      EXPECT_FALSE(t.kernels.group_norm_rows);
      EXPECT_FALSE(t.kernels.fast_conv_bias);
      EXPECT_FALSE(t.kernels.attention_token_major);
      EXPECT_TRUE(t.graph_optimizer && t.cuda_graphs && t.kernels.fused_group_norm);
    } else if (file.stem().string().rfind("cifar10_", 0) == 0) {
      ++recipes;
      EXPECT_TRUE(t.channels_last);
      EXPECT_TRUE(t.kernels.group_norm_rows);
      EXPECT_TRUE(t.kernels.fast_conv_bias && t.kernels.attention_token_major);
    } else if (file.stem().string().rfind("imagenet128_", 0) == 0) {
      ++recipes;  // the fastest ImageNet128 step measured (docs/benchmarks.md)
      EXPECT_TRUE(t.channels_last && t.kernels.group_norm_rows);
      EXPECT_TRUE(t.graph_grad_gather && t.prefetch_inputs && t.kernels.group_norm_cached_backward);
      EXPECT_TRUE(t.kernels.fast_conv_bias && t.kernels.attention_token_major &&
                  t.kernels.fast_avg_pool);
    }
  }
  EXPECT_GE(study, 9);
  EXPECT_GE(recipes, 9);
}
