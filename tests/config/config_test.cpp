// Config loading: precedence, strictness and the messages users see.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using dmtrain::Error;
using dmtrain::config::dump_config;
using dmtrain::config::load_config;

namespace {

class ConfigTest : public dmtrain::test_support::ScratchDirTest {
 protected:
  ConfigTest() : ScratchDirTest("config") {}
  // The message of the dmtrain::Error thrown by f, or "" if none.
  template <class F>
  std::string error_of(F f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

const char* kMinimal = "train:\n  iterations: 10\ndata:\n  path: /data\n";

}  // namespace

TEST_F(ConfigTest, DefaultsFillWhatTheFileLeavesOut) {
  auto cfg = load_config(write("a.yaml", kMinimal));
  EXPECT_EQ(cfg.train.iterations, 10);
  EXPECT_EQ(cfg.model.model_channels, 128);
  EXPECT_EQ(cfg.diffusion.steps, 4000);
  EXPECT_DOUBLE_EQ(cfg.timestep.clts.mu, 0.3);
}

TEST_F(ConfigTest, PrecedenceIsBaseThenFileThenSet) {
  write("base.yaml",
        "train:\n  iterations: 10\n  batch_size: 7\n  seed: 3\ndata:\n  path: /d\n"
        "model:\n  model_channels: 64\n");
  auto file = write("run.yaml", "base: base.yaml\ntrain:\n  batch_size: 9\n  seed: 4\n");
  auto cfg = load_config(file, {"train.seed=5", "timestep.clts.mu=0.25"});
  EXPECT_EQ(cfg.model.model_channels, 64);  // from base only
  EXPECT_EQ(cfg.train.batch_size, 9);       // file beats base
  EXPECT_EQ(cfg.train.seed, 5u);            // --set beats file
  EXPECT_DOUBLE_EQ(cfg.timestep.clts.mu, 0.25);
}

TEST_F(ConfigTest, SetAcceptsFlowLists) {
  auto cfg = load_config(write("a.yaml", kMinimal), {"model.channel_mult=[1,2]"});
  EXPECT_EQ(cfg.model.channel_mult, (std::vector<int64_t>{1, 2}));
}

TEST_F(ConfigTest, SetTakesStringValuesLiterally) {
  // Paths given on the command line are not YAML: " #1" was a comment, "~" and "null" were null,
  // "!x" a tag, "%x" a directive, "a: b" a map.
  for (const std::string path : {"runs/exp #1", "~", "null", "!x", "%x", "a: b", "[x]", "'q'"}) {
    const auto cfg = load_config(write("a.yaml", kMinimal),
                                 {"data.path=" + path, "data.cache=" + path + ".dmdata"});
    EXPECT_EQ(cfg.data.path, path);
    EXPECT_EQ(cfg.data.cache, path + ".dmdata");
  }
  EXPECT_EQ(load_config(write("a.yaml", kMinimal), {"data.cache="}).data.cache, "");
  // A non-string key is still YAML: a choice of string names is checked as before.
  EXPECT_NE(error_of([&] {
              load_config(write("a.yaml", kMinimal), {"diffusion.noise_schedule=cosine #x"});
            }).find("diffusion.noise_schedule"),
            std::string::npos);
}

TEST_F(ConfigTest, UnknownKeyNamesFileLineAndClosestKey) {
  auto file = write("a.yaml", std::string(kMinimal) + "model:\n  model_chanels: 64\n");
  auto msg = error_of([&] { load_config(file); });
  EXPECT_NE(msg.find("a.yaml:6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'model.model_chanels'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'model.model_channels'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, UnknownSetKeySuggestsTheRightSection) {
  auto msg = error_of([&] { load_config(write("a.yaml", kMinimal), {"clts.mu=0.2"}); });
  EXPECT_NE(msg.find("--set clts.mu=0.2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'timestep.clts.mu'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, WrongTypeNamesExpectedType) {
  auto file = write("a.yaml", std::string(kMinimal) + "optim:\n  lr: fast\n");
  auto msg = error_of([&] { load_config(file); });
  EXPECT_NE(msg.find("a.yaml:6: key 'optim.lr' expects a number in (0, inf), got 'fast'"),
            std::string::npos)
      << msg;
  msg = error_of([&] { load_config(write("b.yaml", kMinimal), {"train.batch_size=1.5"}); });
  EXPECT_NE(msg.find("key 'train.batch_size' expects an integer >= 1, got '1.5'"),
            std::string::npos)
      << msg;
  msg = error_of([&] { load_config(write("c.yaml", kMinimal), {"model.learn_sigma=yes"}); });
  EXPECT_NE(msg.find("expects true or false"), std::string::npos) << msg;
}

TEST_F(ConfigTest, OutOfRangeValuesAreRejected) {
  auto file = write("a.yaml", kMinimal);
  EXPECT_NE(error_of([&] {
              load_config(file, {"timestep.clts.mu=1.5"});
            }).find("'timestep.clts.mu' expects a number in [0, 1], got '1.5'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_config(file, {"timestep.clts.sigma=0"}); }).find("sigma"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_config(file, {"timestep.clts.target_iteration=0"});
            }).find("target_iteration"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_config(file, {"optim.beta1=1.0"}); }).find("optim.beta1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_config(file, {"diffusion.noise_schedule=quadratic"});
            }).find("one of linear, cosine"),
            std::string::npos);
  auto msg = error_of([&] { load_config(file, {"optim.beta1=0.6", "optim.beta1_min=0.7"}); });
  EXPECT_NE(msg.find("optim.beta1_min (0.7"), std::string::npos) << msg;
}

TEST_F(ConfigTest, MissingIterationsIsAnError) {
  auto msg = error_of([&] { load_config(write("a.yaml", "data:\n  path: /d\n")); });
  EXPECT_NE(msg.find("train.iterations is required"), std::string::npos) << msg;
}

TEST_F(ConfigTest, FileErrorsNameTheFile) {
  EXPECT_NE(error_of([&] { load_config((dir_ / "nope.yaml").string()); }).find("does not exist"),
            std::string::npos);
  auto bad = write("bad.yaml", "train: [1, 2\n");
  EXPECT_NE(error_of([&] { load_config(bad); }).find("bad.yaml"), std::string::npos);
  auto cyc = write("cyc.yaml", "base: cyc.yaml\n");
  EXPECT_NE(error_of([&] { load_config(cyc); }).find("extends itself"), std::string::npos);
}

TEST_F(ConfigTest, DumpRoundTripsEveryKey) {
  auto cfg = load_config(
      write("a.yaml", kMinimal),
      {"optim.lr=0.00025", "train.ema_rates=[0.999,0.9999]", "model.attention_resolutions=[]",
       "timestep.sampler=clts", "sample.steps=ddim25", "data.cache="});
  const std::string dumped = dump_config(cfg);
  auto again = load_config(write("dump.yaml", dumped));
  EXPECT_EQ(dump_config(again), dumped);
  EXPECT_DOUBLE_EQ(again.optim.lr, 0.00025);
  EXPECT_EQ(again.train.ema_rates, (std::vector<double>{0.999, 0.9999}));
  EXPECT_TRUE(again.model.attention_resolutions.empty());
  EXPECT_EQ(again.sample.steps, "ddim25");
}

TEST_F(ConfigTest, PeriodicFidNeedsTheNetworkAndTheReference) {
  auto file = write("a.yaml", kMinimal);
  auto msg = error_of([&] { load_config(file, {"eval.fid_every=1000"}); });
  EXPECT_NE(msg.find("eval.fid_every is 1000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("eval.inception and eval.reference"), std::string::npos) << msg;
  auto cfg = load_config(file, {"eval.fid_every=1000", "eval.inception=i.pt",
                                "eval.reference=r.npz", "eval.fid_samples=64"});
  EXPECT_EQ(cfg.eval.fid_every, 1000);
  EXPECT_EQ(cfg.eval.fid_samples, 64);
  EXPECT_EQ(cfg.eval.fid_every, load_config(file).eval.fid_every + 1000);  // default: off (0)
}

TEST_F(ConfigTest, DistKeysAreCheckedAndRoundTrip) {
  auto file = write("a.yaml", kMinimal);
  auto msg = error_of([&] { load_config(file, {"dist.timeout_s=0"}); });
  EXPECT_NE(msg.find("dist.timeout_s"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(0, inf)"), std::string::npos) << msg;
  msg = error_of([&] { load_config(file, {"dist.bucket_mib=0"}); });
  EXPECT_NE(msg.find("dist.bucket_mib"), std::string::npos) << msg;
  auto cfg = load_config(file, {"dist.timeout_s=30", "dist.bucket_mib=50"});
  auto again = load_config(write("b.yaml", dump_config(cfg)));
  EXPECT_DOUBLE_EQ(again.dist.timeout_s, 30);
  EXPECT_EQ(again.dist.bucket_mib, 50);
}

// A diamond (run -> [a, b] -> base): the shared base is read once and below both, so it cannot
// undo what `a` set; `b`, listed later, wins over `a` where both set a key. The bug this pins:
// reading `b` re-read `base`, whose value overrode `a`'s (the paper's-method config trained
// with uniform timesteps).
TEST_F(ConfigTest, DiamondBasesResolveInC3OrderWithLaterBasesWinning) {
  write("base.yaml",
        "train:\n  iterations: 10\n  seed: 1\n  batch_size: 8\ndata:\n  path: /d\n"
        "timestep:\n  sampler: uniform\noptim:\n  momentum_decay: false\n");
  write("a.yaml", "base: base.yaml\ntimestep:\n  sampler: clts\ntrain:\n  seed: 2\n");
  write("b.yaml", "base: base.yaml\noptim:\n  momentum_decay: true\ntrain:\n  seed: 3\n");
  auto cfg = load_config(write("run.yaml", "base: [a.yaml, b.yaml]\n"));
  EXPECT_EQ(cfg.timestep.sampler, "clts");  // a's, not base's re-read through b
  EXPECT_TRUE(cfg.optim.momentum_decay);    // b's
  EXPECT_EQ(cfg.train.seed, 3u);            // both set it: the later base wins
  EXPECT_EQ(cfg.train.batch_size, 8);       // only base sets it
  auto swapped = load_config(write("run2.yaml", "base: [b.yaml, a.yaml]\n"));
  EXPECT_EQ(swapped.train.seed, 2u);
  EXPECT_EQ(swapped.timestep.sampler, "clts");
}

TEST_F(ConfigTest, FileOverridesEveryBaseOfADiamond) {
  write("base.yaml", "train:\n  iterations: 10\n  seed: 1\ndata:\n  path: /d\n");
  write("a.yaml", "base: base.yaml\ntrain:\n  seed: 2\n");
  write("b.yaml", "base: base.yaml\n");
  auto cfg = load_config(write("run.yaml", "base: [a.yaml, b.yaml]\ntrain:\n  seed: 9\n"));
  EXPECT_EQ(cfg.train.seed, 9u);
  // b says nothing about the seed, and its base sits below a: a's value stands.
  EXPECT_EQ(load_config(write("run3.yaml", "base: [a.yaml, b.yaml]\n")).train.seed, 2u);
}

TEST_F(ConfigTest, BasesWithNoConsistentOrderAreRefusedNamingBothFiles) {
  write("x.yaml", "train:\n  iterations: 10\ndata:\n  path: /d\n");
  write("y.yaml", "train:\n  seed: 1\n");
  write("p.yaml", "base: [x.yaml, y.yaml]\n");
  write("q.yaml", "base: [y.yaml, x.yaml]\n");
  const std::string msg =
      error_of([&] { load_config(write("run.yaml", "base: [p.yaml, q.yaml]\n")); });
  EXPECT_NE(msg.find("x.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("y.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no consistent order"), std::string::npos) << msg;
}

TEST_F(ConfigTest, MissingBaseNamesTheFileThatListsIt) {
  const std::string msg = error_of(
      [&] { load_config(write("run.yaml", "base: [nope.yaml]\ntrain:\n  iterations: 1\n")); });
  EXPECT_NE(msg.find("run.yaml:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nope.yaml"), std::string::npos) << msg;
}

TEST_F(ConfigTest, LrScheduleWithCompensationIsRefused) {
  const std::string msg = error_of([&] {
    load_config(write("a.yaml", kMinimal),
                {"optim.lr_compensation=true", "optim.lr_schedule=mdlrc"});
  });
  EXPECT_NE(msg.find("optim.lr_schedule"), std::string::npos) << msg;
}

// A command that samples or evaluates a model needs the model and diffusion sections only.
TEST_F(ConfigTest, ModelUseDoesNotNeedTrainingOnlyKeys) {
  const auto file = write("net.yaml", "model:\n  model_channels: 64\n");
  EXPECT_NE(error_of([&] { load_config(file); }).find("train.iterations"), std::string::npos);
  const auto cfg = load_config(file, {}, dmtrain::config::ConfigUse::kModel);
  EXPECT_EQ(cfg.model.model_channels, 64);
  EXPECT_TRUE(cfg.data.path.empty());
}

TEST_F(ConfigTest, ConfigSetsSeesKeysOfEveryBase) {
  write("base.yaml", "model:\n  dropout: 0.2\ntrain:\n  iterations: 3\n");
  const auto file = write("run.yaml", "base: base.yaml\ndata:\n  path: /d\n");
  using dmtrain::config::config_sets;
  EXPECT_TRUE(config_sets(file, "model"));
  EXPECT_TRUE(config_sets(file, "train.iterations"));
  EXPECT_TRUE(config_sets(file, "data.path"));
  EXPECT_FALSE(config_sets(file, "diffusion"));
  EXPECT_FALSE(config_sets(file, "train.batch_size"));
}
