// Resume keeps its promises: a changed optim.lr takes effect (config.yaml records it),
// keys that cannot change are refused by name, metrics.jsonl holds each step once, and no
// checkpoint is written from inside a non-finite streak.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "support/tiny_run.hpp"

using namespace dmtrain;
namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path root;
  explicit Scratch(const std::string& name)
      : root(fs::temp_directory_path() /
             ("dmtrain_promise_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    test_support::write_tiny_idx(root / "data");
  }
  ~Scratch() { fs::remove_all(root); }
  config::RunConfig cfg() const {
    auto c = test_support::tiny_config(root / "data", root / "run");
    c.optim.momentum_decay = false;  // a constant lr, so the logged lr is the configured one
    c.optim.lr_compensation = false;
    return c;
  }
  std::vector<observe::StepRecord> steps() const {
    return observe::read_metrics_file((root / "run" / "metrics.jsonl").string()).steps;
  }
};

train::TrainOptions stop_at(int64_t k, const std::string& resume = "") {
  train::TrainOptions o;
  o.stop_at = k;
  o.resume = resume;
  return o;
}

}  // namespace

// Before: the optimizer's options came back from the checkpoint, so the run kept lr 1e-4 while
// its config.yaml said 1e-5.
TEST(ResumePromises, AChangedLearningRateTakesEffect) {
  Scratch s("lr");
  auto cfg = s.cfg();
  train::train(cfg, stop_at(2));
  cfg.optim.lr = 1e-5;
  train::train(cfg, stop_at(4, "auto"));
  const auto steps = s.steps();
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_DOUBLE_EQ(steps[1].lr, 1e-4);  // logged after step 2: the next step's lr, old config
  EXPECT_DOUBLE_EQ(steps[3].lr, 1e-5);
}

TEST(ResumePromises, KeysThatCannotChangeAreRefusedByName) {
  Scratch s("fixed");
  auto cfg = s.cfg();
  train::train(cfg, stop_at(2));
  cfg.train.batch_size = 8;
  try {
    train::train(cfg, stop_at(4, "auto"));
    FAIL() << "a changed batch size was accepted on resume";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.batch_size (4 -> 8)"), std::string::npos)
        << e.what();
  }
}

// Before: a changed train.iterations was taken silently although MDLRC's beta1_k and the lr
// schedules are functions of it; with a constant lr and no decay it changes nothing else.
TEST(ResumePromises, ChangedIterationsAreRefusedWhenTheScheduleUsesThem) {
  Scratch s("iterations");
  auto cfg = s.cfg();
  cfg.optim.momentum_decay = true;  // beta1_k decays over K = train.iterations
  train::train(cfg, stop_at(2));
  cfg.train.iterations = 20;
  try {
    train::train(cfg, stop_at(4, "auto"));
    FAIL() << "a changed K was accepted on resume";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.iterations"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("optim.momentum_decay"), std::string::npos) << e.what();
  }
  Scratch constant("iterations_constant");
  auto plain = constant.cfg();  // constant lr, no decay
  train::train(plain, stop_at(2));
  plain.train.iterations = 20;
  EXPECT_EQ(train::train(plain, stop_at(4, "auto")).iteration, 4);
}

// Before: after a kill between checkpoints the steps after the checkpoint were logged twice.
TEST(ResumePromises, MetricsAreCutBackToTheResumedIteration) {
  Scratch s("metrics");
  auto cfg = s.cfg();
  train::train(cfg, stop_at(3));  // checkpoints at 2 and 3, steps 1..3 logged
  // As if killed after step 3 before its checkpoint: only iteration 2's remains.
  fs::remove_all(
      checkpoint::list_checkpoints((s.root / "run" / "checkpoints").string()).back().dir);
  train::train(cfg, stop_at(5, "auto"));
  const auto steps = s.steps();
  ASSERT_EQ(steps.size(), 5u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i].step, static_cast<int64_t>(i + 1));
}

// Before: a run killed before its first checkpoint and started again logged its steps twice.
TEST(ResumePromises, AFreshStartAfterAKillBeforeTheFirstCheckpointLogsEachStepOnce) {
  Scratch s("fresh");
  auto cfg = s.cfg();
  train::train(cfg, stop_at(3));
  // As if killed after step 3 before any checkpoint: the records stay, no checkpoint does.
  fs::remove_all(s.root / "run" / "checkpoints");
  ASSERT_EQ(s.steps().size(), 3u);
  train::train(cfg, stop_at(4));
  const auto steps = s.steps();
  ASSERT_EQ(steps.size(), 4u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i].step, static_cast<int64_t>(i + 1));
}

// Before: the checkpoints written during the streak held its state (and the streak counter).
TEST(ResumePromises, NoCheckpointInsideANonFiniteStreak) {
  Scratch s("streak");
  auto cfg = s.cfg();
  cfg.optim.lr = 1e30;  // the first step blows the weights up: every later loss is not finite
  cfg.checkpoint.every = 1;
  cfg.train.max_consecutive_nonfinite = 100;
  const auto r = train::train(cfg, stop_at(4));
  EXPECT_EQ(r.iteration, 4);
  const auto ckpts = checkpoint::list_checkpoints((s.root / "run" / "checkpoints").string());
  ASSERT_FALSE(ckpts.empty());
  EXPECT_EQ(ckpts.back().iteration, 1);  // the last good state, not 2, 3 or 4
  EXPECT_GE(s.steps().back().skipped, 3);
}
