// RecordAppender: a record that cannot be written is cut back off the file (no torn bytes stay)
// and counted lost; the outcome says when a run of losses starts and how many it lost when
// writing succeeds again. The fault: RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it is
// cut short and the next fails with EFBIG.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/record_appender.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace fs = std::filesystem;
using dmtrain::util::RecordAppender;

TEST(RecordAppender, ALostRecordLeavesNoTornBytesAndTheLossIsCounted) {
  const fs::path dir = dmtrain::test_support::scratch_dir("record_appender");
  const std::string path = (dir / "r.txt").string();
  RecordAppender f(path, "test file");
  EXPECT_TRUE(f.append("one\n").written);
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  rlimit tight = before;
  tight.rlim_cur = static_cast<rlim_t>(fs::file_size(path) + 3);  // 3 bytes of the next record
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  const auto a = f.append("two two\n");
  const auto b = f.append("three\nfour\n", 2);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(a.written);
  EXPECT_TRUE(a.first_loss);
  EXPECT_FALSE(b.written);
  EXPECT_FALSE(b.first_loss);
  EXPECT_EQ(f.lost(), 3);
  EXPECT_EQ(f.cause(), "File too large");
  EXPECT_EQ(dmtrain::test_support::file_text(path), "one\n");  // the 3 torn bytes are gone
  const auto c = f.append("five\n");
  EXPECT_TRUE(c.written);
  EXPECT_EQ(c.recovered, 3);
  EXPECT_EQ(f.lost(), 0);
  EXPECT_EQ(dmtrain::test_support::file_text(path), "one\nfive\n");
  fs::remove_all(dir);
}

TEST(RecordAppender, AFileThatCannotBeOpenedIsANamedError) {
  try {
    RecordAppender f("/nonexistent/dir/r.txt", "test file");
    ADD_FAILURE() << "no error";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open test file '/nonexistent/dir/r.txt'"),
              std::string::npos)
        << e.what();
  }
}
