// EMA files (ema/ema_files.hpp, ema/posthoc_ema.hpp): their names, and a full disk at an export
// or a post-hoc snapshot is a clear error that leaves no .tmp behind, made here by a .tmp path
// that is a symlink to /dev/full (writes fail with ENOSPC, for root too). Before, LibTorch's
// archive writer aborted the process there (exit 134).
#include <gtest/gtest.h>

#include <torch/nn/modules/linear.h>

#include <filesystem>
#include <string>

#include "dmtrain/ema/ema.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/ema/posthoc_ema.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"

namespace dmtrain::ema {
namespace {

namespace fs = std::filesystem;

TEST(EmaFiles, Names) {
  EXPECT_EQ(checkpoint_ema_file(1), "ema_1.pt");
  EXPECT_EQ(final_ema_file(0.9999), "ema_0.9999.pt");
  EXPECT_EQ(final_ema_file(0.99), "ema_0.99.pt");
  EXPECT_EQ(posthoc_ema_file(0.07), "ema_phema_0.07.pt");
}

TEST(EmaFiles, AFullDiskAtTheExportIsAClearErrorWithNoTmpLeft) {
  const fs::path dir = test_support::scratch_dir("ema_full");
  torch::nn::Linear model(4, 4);
  Ema ema(*model, {0.9});
  const fs::path tmp = dir / (final_ema_file(0.9) + ".tmp");
  fs::create_symlink("/dev/full", tmp);
  try {
    export_final_ema(ema, 0, dir.string());
    FAIL() << "an export to a full disk succeeded";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot write EMA file '" + tmp.string() + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(tmp)));  // nothing torn left to trust
  EXPECT_FALSE(fs::exists(dir / final_ema_file(0.9)));
  // With room on the disk the same export works: the test's failure was the disk's.
  EXPECT_EQ(export_final_ema(ema, 0, dir.string()), (dir / final_ema_file(0.9)).string());
  EXPECT_GT(fs::file_size(dir / final_ema_file(0.9)), 0u);
  fs::remove_all(dir);
}

TEST(EmaFiles, AFullDiskAtAPosthocFileIsAClearError) {
  const fs::path dir = test_support::scratch_dir("phema_full");
  torch::nn::Linear model(4, 4);
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  for (const auto& p : model->named_parameters()) {
    names.push_back(p.key());
    params.push_back(p.value().detach());
  }
  const fs::path file = dir / posthoc_ema_file(0.1);
  fs::create_symlink("/dev/full", file.string() + ".tmp");
  try {
    write_ema_file(names, params, file.string());
    FAIL() << "a post-hoc EMA file was written to a full disk";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(file.string() + ".tmp")));
  EXPECT_FALSE(fs::exists(file));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dmtrain::ema
