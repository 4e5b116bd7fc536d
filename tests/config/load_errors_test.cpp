// Every value is checked when the config is loaded, and every malformed file is a
// dmtrain::Error naming the file, the key and the value, never a yaml-cpp exception escaping to
// main (an abort) or a value accepted only to crash later (train.ema_rates: [] segfaulted at the
// first sample grid).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using dmtrain::config::load_config;

namespace {

class LoadErrors : public dmtrain::test_support::ScratchDirTest {
 protected:
  LoadErrors() : ScratchDirTest("load_errors") {}
  // The message of the dmtrain::Error that loading `text` (plus --set overrides) throws; any other
  // exception fails the test (it would abort the CLI), as does loading fine.
  std::string error_of(const std::string& text, const std::vector<std::string>& sets = {}) {
    const std::string file = write("run.yaml", text);
    try {
      load_config(file, sets);
    } catch (const dmtrain::Error& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a dmtrain::Error: " << e.what();
      return "";
    }
    ADD_FAILURE() << "loaded:\n" << text;
    return "";
  }
};

const std::string kMinimal = "train:\n  iterations: 10\ndata:\n  path: /data\n";

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

}  // namespace

TEST_F(LoadErrors, EmptyEmaRatesAreRefusedNamingTheKey) {
  const auto msg = error_of(kMinimal, {"train.ema_rates=[]"});
  EXPECT_HAS(msg, "train.ema_rates");
  EXPECT_HAS(msg, "non-empty");
  EXPECT_HAS(error_of("train:\n  iterations: 10\n  ema_rates: []\ndata:\n  path: /d\n"),
             "run.yaml:3: key 'train.ema_rates'");
}

TEST_F(LoadErrors, EmaRatesOutsideTheUnitIntervalShowTheValue) {
  EXPECT_HAS(error_of(kMinimal, {"train.ema_rates=[0.999, 1.0]"}), "got the list [0.999, 1.0]");
  EXPECT_HAS(error_of(kMinimal, {"train.ema_rates=[-0.1]"}), "in [0, 1)");
}

TEST_F(LoadErrors, WrongItemTypesInListsShowTheList) {
  const auto msg = error_of(kMinimal + "model:\n  channel_mult:\n    - 1\n    - two\n");
  EXPECT_HAS(msg, "run.yaml:6: key 'model.channel_mult'");
  EXPECT_HAS(msg, "[1, two]");  // on one line, though the file wrote a block list
  EXPECT_HAS(error_of(kMinimal, {"model.attention_resolutions=[[16]]"}), "[[16]]");
}

TEST_F(LoadErrors, ScalarWhereASectionIsExpected) {
  auto msg = error_of(kMinimal + "model: 3\n");
  EXPECT_HAS(msg, "run.yaml:5: key 'model' is a section");
  EXPECT_HAS(msg, "got 3");
  EXPECT_HAS(error_of(kMinimal + "timestep:\n  clts: [1, 2]\n"), "'timestep.clts' is a section");
  EXPECT_HAS(error_of(kMinimal, {"optim=1"}), "'optim' is a section");
}

TEST_F(LoadErrors, AnEmptySectionSetsNothing) {
  const auto cfg = load_config(write("a.yaml", kMinimal + "model:\n"));
  EXPECT_EQ(cfg.model.image_size, 32);
}

TEST_F(LoadErrors, NonScalarKeysAreErrorsNotYamlExceptions) {
  EXPECT_HAS(error_of(kMinimal + "? [a, b]\n: 1\n"), "a key must be a name, got [a, b]");
  EXPECT_HAS(error_of(kMinimal + "model: {[a]: 1}\n"), "(under 'model.')");
}

TEST_F(LoadErrors, BaseListOfNonNamesIsAnError) {
  EXPECT_HAS(error_of("base: [[a.yaml]]\n" + kMinimal), "key 'base' expects file names");
}

TEST_F(LoadErrors, AFolderOrAnEmptyFileAsConfig) {
  fs::create_directories(dir_ / "folder.yaml");
  try {
    load_config((dir_ / "folder.yaml").string());
    ADD_FAILURE() << "a folder loaded";
  } catch (const dmtrain::Error& e) {
    EXPECT_HAS(std::string(e.what()), "is not a file");
  }
  // An empty file is an empty config: the required train keys name themselves.
  EXPECT_HAS(error_of(""), "train.iterations is required");
}

// A loss weight that goes to the MSE term alone (loss_weight.terms: mse, the default) has nothing
// to multiply under a VLB-only loss: refused naming both keys, instead of a check failing in the
// first training step.
TEST_F(LoadErrors, MseTermWeightWithAVlbOnlyLossIsRefused) {
  const auto msg = error_of(kMinimal, {"loss_weight.kind=min-snr", "diffusion.loss=kl"});
  EXPECT_HAS(msg, "loss_weight.terms");
  EXPECT_HAS(msg, "diffusion.loss 'kl'");
  EXPECT_HAS(error_of(kMinimal, {"timestep.sampler=speed", "diffusion.loss=rescaled_kl"}),
             "loss_weight.terms");
  EXPECT_HAS(error_of(kMinimal, {"loss_weight.terms=vb"}), "loss_weight.terms");
  EXPECT_HAS(error_of(kMinimal, {"optim.warmup_iterations=-3"}), "optim.warmup_iterations");
  EXPECT_HAS(error_of(kMinimal, {"timestep.sampler=laplace", "timestep.laplace.b=0"}),
             "timestep.laplace.b");
}
