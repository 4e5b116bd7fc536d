// Configs by name (config/find.hpp): `--config cifar10_clts.yaml` from any directory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "dmtrain/config/find.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::config;

namespace {

// Sets an environment variable for one test and restores it afterwards.
struct EnvVar {
  std::string name;
  EnvVar(std::string n, const std::string& value) : name(std::move(n)) {
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~EnvVar() { ::unsetenv(name.c_str()); }
};

std::string error_of(const std::string& name) {
  try {
    find_config(name);
  } catch (const dmtrain::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// The tests run in the build folder, where no configs/ is: the project's configs/ is searched.
TEST(FindConfig, ProjectConfigsByNameFromAnyDirectory) {
  ASSERT_FALSE(fs::exists("cifar10_clts.yaml"));
  const std::string found = find_config("cifar10_clts.yaml");
  EXPECT_EQ(fs::path(found).filename(), "cifar10_clts.yaml");
  EXPECT_TRUE(fs::is_regular_file(found));
  EXPECT_EQ(find_config("cifar10_clts"), found);  // the extension may be left out
  EXPECT_TRUE(fs::is_regular_file(find_config("experiments/cifar10_small_minsnr.yaml")));
  // and load_config takes the name as well (its base, cifar10_baseline.yaml, beside it)
  EXPECT_EQ(load_config("cifar10_clts.yaml", {}, ConfigUse::kModel).timestep.sampler, "clts");
}

TEST(FindConfig, APathAsGivenWinsAndDmtrainConfigPathComesFirst) {
  const fs::path dir = dmtrain::test_support::scratch_dir("find_config");
  std::ofstream(dir / "cifar10_clts.yaml") << "timestep:\n  sampler: uniform\n";
  EnvVar env("DMTRAIN_CONFIG_PATH", "/nonexistent:" + dir.string());
  EXPECT_EQ(find_config("cifar10_clts.yaml"), (dir / "cifar10_clts.yaml").string());
  EXPECT_EQ(find_config((dir / "cifar10_clts.yaml").string()), (dir / "cifar10_clts.yaml").string());
}

TEST(FindConfig, AMissNamesWhereItLookedAndTheClosestNames) {
  const std::string msg = error_of("cifar10_clst.yaml");
  EXPECT_NE(msg.find("config file 'cifar10_clst.yaml' does not exist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("working directory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("configs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("closest: cifar10_clts.yaml"), std::string::npos) << msg;
}
