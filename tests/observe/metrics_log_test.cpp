// metrics.jsonl (observe/metrics_log.hpp): statistics reported by name are written as the
// interval's means, sums and last values, with hand-worked numbers; the one reader parses flat
// records and skips torn or nested lines; records round-trip with null for non-finite numbers.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "dmtrain/observe/metrics_log.hpp"
#include "support/scratch_dir.hpp"

namespace dmtrain::observe {
namespace {

namespace fs = std::filesystem;

class MetricsLogTest : public test_support::ScratchDirTest {
 protected:
  MetricsLogTest() : ScratchDirTest("metrics") {}
};

TEST_F(MetricsLogTest, StatisticsReportedByNameAreWrittenOncePerInterval) {
  MetricsLog::Options o;
  o.path = (dir_ / "metrics.jsonl").string();
  o.print = false;
  o.batch_size = 8;
  o.num_timesteps = 100;
  MetricsLog log(o);
  const auto no_reduce = [](at::Tensor&) {};
  // Interval 1: two steps. Quartiles of t in [0, 100): 10 -> q0, 30 -> q1, 60 -> q2, 99 -> q3.
  log.report("train/loss", 1.0);
  log.report("train/loss", 2.0);
  log.add("perf/data_wait_s", 0.25);
  log.add("perf/data_wait_s", 0.5);
  log.set("train/lr", 1e-4);
  log.set("train/lr", 2e-4);            // the last value counts
  log.report("custom/my_metric", 7.0);  // a new metric: one line where it is computed
  log.add_step(at::tensor({10, 30}), at::tensor({1.0, 3.0}));
  log.add_step(at::tensor({60, 99, 12}), at::tensor({5.0, 7.0, 2.0}));
  const Record a = log.flush(2, no_reduce);
  EXPECT_EQ(a.integer("step"), 2);
  EXPECT_EQ(a.integer("images"), 16);
  EXPECT_DOUBLE_EQ(a.number("loss"), 1.5);
  EXPECT_DOUBLE_EQ(a.number("data_wait_s"), 0.75);
  EXPECT_DOUBLE_EQ(a.number("lr"), 2e-4);
  EXPECT_DOUBLE_EQ(a.number("my_metric"), 7.0);
  EXPECT_DOUBLE_EQ(a.number("loss_q0"), 1.5);  // (1 + 2) / 2
  EXPECT_DOUBLE_EQ(a.number("loss_q1"), 3.0);
  EXPECT_DOUBLE_EQ(a.number("loss_q2"), 5.0);
  EXPECT_DOUBLE_EQ(a.number("loss_q3"), 7.0);
  EXPECT_GT(a.number("img_per_s"), 0);
  // Interval 2: nothing reported for the loss (every step skipped): null, not the old mean.
  log.set("train/lr", 3e-4);
  const Record b = log.flush(4, no_reduce);
  EXPECT_TRUE(std::isnan(b.number("loss")));
  EXPECT_DOUBLE_EQ(b.number("lr"), 3e-4);
  EXPECT_TRUE(std::isnan(b.number("loss_q0")));
  // The file holds exactly what flush returned.
  const auto records = read_records(o.path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_DOUBLE_EQ(records[0].number("loss"), 1.5);
  EXPECT_DOUBLE_EQ(records[0].number("my_metric"), 7.0);
  EXPECT_TRUE(records[1].has("loss"));
  EXPECT_TRUE(std::isnan(records[1].number("loss")));
  const auto typed = read_metrics_file(o.path).steps;
  ASSERT_EQ(typed.size(), 2u);
  EXPECT_EQ(typed[0].images, 16);
  EXPECT_DOUBLE_EQ(typed[0].loss_q[3], 7.0);
  // A name without its group, or one reported two ways, is a programming error.
  EXPECT_THROW(log.report("loss", 1), c10::Error);
  EXPECT_THROW(log.set("train/loss", 1), c10::Error);
}

// Before: after one failed write (a full disk) the stream stayed failed and every later record of
// the run was lost silently. RLIMIT_FSIZE makes the failure here (writes past it fail with EFBIG
// while SIGXFSZ is ignored; the first one is cut short), and lifting it ends it.
TEST_F(MetricsLogTest, AFailedWriteLosesThoseRecordsOnlyAndTheLogWritesOn) {
  MetricsLog::Options o;
  o.path = (dir_ / "metrics.jsonl").string();
  o.print = false;
  o.num_timesteps = 100;
  MetricsLog log(o);
  const auto no_reduce = [](at::Tensor&) {};
  log.report("train/loss", 1.0);
  log.flush(1, no_reduce);
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  rlimit tight = before;
  tight.rlim_cur = static_cast<rlim_t>(fs::file_size(o.path) + 10);  // 10 bytes of the next line
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  for (const int k : {2, 3}) {
    log.report("train/loss", k);
    EXPECT_NO_THROW(log.flush(k, no_reduce));
  }
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  std::signal(SIGXFSZ, old_handler);
  log.report("train/loss", 4.0);
  log.flush(4, no_reduce);
  const auto records = read_records(o.path);
  ASSERT_EQ(records.size(), 2u);  // 2 and 3 lost; 2's torn start is not merged into 4's line
  EXPECT_EQ(records[0].integer("step"), 1);
  EXPECT_EQ(records[1].integer("step"), 4);
  EXPECT_DOUBLE_EQ(records[1].number("loss"), 4.0);
}

TEST(MetricsRecords, RoundTripWithNullForNonFiniteAndTornLinesSkipped) {
  const std::string line = to_json_line(
      {{"step", 200}, {"images", 25600}, {"loss", 0.3253717}, {"grad_norm", NAN}, {"lr", 2e-4}});
  EXPECT_EQ(line, R"({"step":200,"images":25600,"loss":0.3253717,"grad_norm":null,"lr":0.0002})");
  const FidRecord f{4000, 23.160162, 5000, 17.9};
  const fs::path root = test_support::scratch_dir("metrics_roundtrip");
  std::ofstream(root / "m.jsonl") << line << "\n" << f.json_line() << "\n{\"step\": 4";
  const auto h = read_metrics_file((root / "m.jsonl").string());
  ASSERT_EQ(h.steps.size(), 1u);
  ASSERT_EQ(h.fids.size(), 1u);
  EXPECT_EQ(h.steps[0].step, 200);
  EXPECT_EQ(h.steps[0].images, 25600);
  EXPECT_DOUBLE_EQ(h.steps[0].loss, 0.3253717);
  EXPECT_TRUE(std::isnan(h.steps[0].grad_norm));
  EXPECT_EQ(h.fids[0].step, 4000);
  EXPECT_DOUBLE_EQ(h.fids[0].fid, 23.160162);
  EXPECT_EQ(h.fids[0].fid_samples, 5000);
  // Integers above 8 significant digits stay exact (images of a long run).
  EXPECT_EQ(to_json_line({{"images", 123456789.0}}), R"({"images":123456789})");
  fs::remove_all(root);
}

TEST(MetricsRecords, ParsesFlatObjectsAndRejectsTornOrNestedLines) {
  const auto r = parse_record(
      R"( {"step": 10, "loss": null, "lr": -1.5e-4, "ok": true, "name": "a \"b\"\\c"} )");
  ASSERT_TRUE(r.has_value());
  EXPECT_DOUBLE_EQ(r->number("step"), 10);
  EXPECT_TRUE(r->has("loss"));
  EXPECT_TRUE(std::isnan(r->number("loss")));
  EXPECT_DOUBLE_EQ(r->number("lr"), -1.5e-4);
  EXPECT_DOUBLE_EQ(r->number("ok"), 1);
  EXPECT_EQ(r->strings.at("name"), "a \"b\"\\c");
  EXPECT_TRUE(std::isnan(r->number("name")));  // a string is not a number
  EXPECT_FALSE(r->has("fid"));
  EXPECT_TRUE(parse_record("{}").has_value());
  for (const char* bad : {"", "{\"step\": 10, \"lo", "{\"step\": 10,", "{\"step\": 1}{\"step\": 2}",
                          "{\"a\": [1, 2]}", "{\"a\": {\"b\": 1}}", "{\"a\" 1}", "[1]"}) {
    EXPECT_FALSE(parse_record(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace dmtrain::observe
