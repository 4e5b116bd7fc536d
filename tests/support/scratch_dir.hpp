// scratch_dir(): a fresh directory for a test, shared by the test suites of every area.
//
//   const fs::path dir = test_support::scratch_dir("ckpt_" + name);          // empty, created
//   const fs::path run = test_support::scratch_dir("run_" + name, false);    // absent
//
// The path is under the system temp dir, named "dmtrain_<prefix>_<pid>": ctest runs each test in
// a process of its own, several at once, so the process id keeps two tests out of one directory,
// and a test that needs several directories gives each its own prefix. Whatever an earlier run
// left there is removed first; it is not removed afterwards (a failing test's files stay there
// to be looked at).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace dmtrain::test_support {

inline std::filesystem::path scratch_dir(const std::string& prefix, bool create = true) {
  const std::filesystem::path p = std::filesystem::temp_directory_path() /
                                  ("dmtrain_" + prefix + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  if (create) std::filesystem::create_directories(p);
  return p;
}

}  // namespace dmtrain::test_support
