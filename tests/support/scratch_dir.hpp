// scratch_dir(): a fresh directory for a test, shared by the test suites of every area.
//
//   const fs::path dir = test_support::scratch_dir("ckpt_" + name);          // empty, created
//   const fs::path run = test_support::scratch_dir("run_" + name, false);    // absent
//
//   struct LoadErrors : test_support::ScratchDirTest {               // a fixture: dir_, write()
//     LoadErrors() : ScratchDirTest("load_errors") {}
//   };
//
// The path is under the system temp dir, named "dmtrain_<prefix>_<pid>": ctest runs each test in
// a process of its own, several at once, so the process id keeps two tests out of one directory,
// and a test that needs several directories gives each its own prefix. Whatever an earlier run
// left there is removed first; it is not removed afterwards (a failing test's files stay there
// to be looked at).
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

namespace dmtrain::test_support {

inline std::filesystem::path scratch_dir(const std::string& prefix, bool create = true) {
  const std::filesystem::path p = std::filesystem::temp_directory_path() /
                                  ("dmtrain_" + prefix + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  if (create) std::filesystem::create_directories(p);
  return p;
}

// A fixture whose tests each get scratch_dir(prefix + "_" + the test's name), removed after the
// test, with write() for the small text files (configs, YAML) they read back.
class ScratchDirTest : public ::testing::Test {
 protected:
  explicit ScratchDirTest(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '_');  // parameterised tests' names
    dir_ = scratch_dir(prefix_ + "_" + test);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Writes `text` to dir_/name and returns that path.
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }

  std::filesystem::path dir_;

 private:
  std::string prefix_;
};

}  // namespace dmtrain::test_support
