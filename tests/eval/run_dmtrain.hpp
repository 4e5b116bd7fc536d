// Runs the dmtrain executable of this build (DMTRAIN_BINARY) with arguments, for the CLI tests:
// its exit code (a signal, an abort or a segfault, reads as 128 + its number, as the shell
// reports it) and its stdout and stderr together.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace dmtrain::testing {

struct RunResult {
  int rc;
  std::string output;
};

inline RunResult run_dmtrain(const std::string& args) {
  if (!std::filesystem::exists(DMTRAIN_BINARY)) {
    ADD_FAILURE() << "build the dmtrain executable first: " << DMTRAIN_BINARY;
    return {-1, ""};
  }
  const std::string cmd = std::string(DMTRAIN_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

}  // namespace dmtrain::testing
