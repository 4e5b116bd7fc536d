// The LibTorch wheel exports a broken copy of std::filesystem (see cmake/Dependencies.cmake).
// Every dmtrain binary must resolve the standard library to libstdc++, or std::filesystem calls
// jump into LibTorch's copy and crash.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

TEST(StdFilesystem, ResolvesToLibstdcxxNotLibTorch) {
  std::uintmax_t (*remove_all)(const std::filesystem::path&) = std::filesystem::remove_all;
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(remove_all), &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  EXPECT_NE(std::string(info.dli_fname).find("libstdc++"), std::string::npos) << info.dli_fname;
  // And it works, beside a live LibTorch.
  const auto dir = std::filesystem::temp_directory_path() / "dmtrain_fs_check" / "a";
  std::filesystem::create_directories(dir);
  EXPECT_GE(std::filesystem::remove_all(dir.parent_path()), 2u);
  EXPECT_EQ(torch::ones({2}).sum().item<float>(), 2.f);
}
