// The log file under a full disk: the lines that cannot be written are lost, no torn line stays,
// the first line written again is preceded by how many were lost and why, and the run's logging
// goes on. (spdlog's file sink left torn lines and never said what was lost.) The fault:
// RLIMIT_FSIZE, with SIGXFSZ ignored, so writes past it fail with EFBIG.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dmtrain/util/log.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
namespace dlog = dmtrain::log;

TEST(LogFile, AFailedWriteLosesThoseLinesOnlyAndSaysSoWhenItWritesAgain) {
  const fs::path dir = dmtrain::test_support::scratch_dir("log_file");
  const std::string path = (dir / "train.log").string();
  dlog::add_file_sink(path);
  dlog::info("line one");
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  rlimit tight = before;
  tight.rlim_cur = static_cast<rlim_t>(fs::file_size(path) + 10);  // 10 bytes of the next line
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  dlog::info("line two");
  dlog::info("line three");
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  std::signal(SIGXFSZ, old_handler);
  dlog::info("line four");
  dlog::flush();
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u) << fs::file_size(path);
  EXPECT_NE(lines[0].find("line one"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("[warning] 2 log line(s) lost: '" + path + "' could not be written ("),
            std::string::npos)
      << lines[1];
  EXPECT_NE(lines[2].find("line four"), std::string::npos) << lines[2];
  for (const auto& l : lines) EXPECT_EQ(l.rfind("[20", 0), 0u) << "torn: " << l;
}
