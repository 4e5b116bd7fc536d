// TensorBoard event files read back with TensorBoard's own reader (tests/fixtures/observe/
// read_tfevents.py, the tensorboard Python package): tags, steps and values of a CPU run, and an
// event file cut mid-record (as a kill -9 leaves it) still yielding every flushed event. Skipped
// with a message where no python3 with tensorboard is found.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/observe/tensorboard.hpp"
#include "dmtrain/train/trainer.hpp"
#include "support/python.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

using namespace dmtrain;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A python that can import tensorboard (support/python.hpp says where it looks).
std::string tensorboard_python() {
  return dmtrain::test_support::find_python({"tensorboard"});
}

json read_events(const std::string& python, const fs::path& dir) {
  const std::string cmd = python + " " + DMTRAIN_FIXTURES_DIR "/observe/read_tfevents.py " +
                          dir.string() + " 2>/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (pipe && fgets(buf, sizeof(buf), pipe)) out += buf;
  if (pipe) pclose(pipe);
  return json::parse(out);
}

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("tb_" + name, /*create=*/false);
}

}  // namespace

TEST(TensorBoard, ARunsScalarsImagesAndTimestepHistogramReadBack) {
  const std::string py = tensorboard_python();
  if (py.empty())
    GTEST_SKIP() << "no python3 with the tensorboard package (pip install tensorboard)";
  const fs::path root = scratch("run");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.train.iterations = 4;
  cfg.sample.every = 2;
  cfg.sample.count = 4;
  cfg.sample.steps = "ddim2";
  train::train(cfg);
  const json ev = read_events(py, root / "run" / "tensorboard");
  const auto steps = observe::read_metrics_file((root / "run" / "metrics.jsonl").string()).steps;
  ASSERT_EQ(steps.size(), 4u);
  const auto& loss = ev["scalars"]["train/loss"];
  ASSERT_EQ(loss.size(), 4u) << ev.dump();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(loss[i][0].get<int64_t>(), steps[i].step);
    EXPECT_NEAR(loss[i][1].get<double>(), steps[i].loss, 1e-6 * std::abs(steps[i].loss));
  }
  for (const char* tag :
       {"train/grad_norm", "train/lr", "train/beta1", "perf/img_per_s", "train/skipped"}) {
    EXPECT_EQ(ev["scalars"][tag].size(), 4u) << tag;
  }
  // A quartile of t without examples in an interval (4 per batch here) logs nothing then.
  int quartile_points = 0;
  for (int q = 0; q < 4; ++q)
    quartile_points += ev["scalars"]["loss_by_t/loss_q" + std::to_string(q)].size();
  EXPECT_GE(quartile_points, 4);
  // Each EMA's grid and the raw weights', at 2 and at the end (4).
  for (const char* tag : {"samples/ema_0.9", "samples/ema_0.99", "samples/raw"}) {
    const auto& img = ev["images"][tag];
    ASSERT_EQ(img.size(), 2u) << tag << ": " << ev.dump();
    EXPECT_EQ(img[0][0].get<int64_t>(), 2);
    EXPECT_EQ(img[1][0].get<int64_t>(), 4);
    EXPECT_GT(img[0][1].get<int64_t>(), 0);
  }
  EXPECT_TRUE(fs::exists(root / "run" / "samples" / "iter_000002_raw.png"));
  EXPECT_TRUE(fs::exists(root / "run" / "samples" / "iter_000002_ema0.99.png"));
  const auto& hist = ev["histograms"]["timestep/p_k"];
  ASSERT_EQ(hist.size(), 2u) << ev.dump();
  EXPECT_NEAR(hist[0][1].get<double>(), 1.0, 1e-9);  // p_k sums to 1
  EXPECT_EQ(hist[0][3].get<double>(), 49.0);         // t in [0, T - 1], T = 50
  fs::remove_all(root);
}

TEST(TensorBoard, AFileCutMidRecordKeepsEveryFlushedEvent) {
  const std::string py = tensorboard_python();
  if (py.empty())
    GTEST_SKIP() << "no python3 with the tensorboard package (pip install tensorboard)";
  const fs::path root = scratch("torn");
  std::string path;
  {
    observe::EventWriter w(root.string());
    path = w.path();
    for (int s = 1; s <= 3; ++s) w.scalar("x", s, 0.5 * s);
    w.flush();
  }
  // A kill -9 mid-write: the start of a record (its length) and no more.
  std::ofstream(path, std::ios::binary | std::ios::app) << std::string("\x20\x00\x00\x00\x00", 5);
  const json ev = read_events(py, root);
  const auto& x = ev["scalars"]["x"];
  ASSERT_EQ(x.size(), 3u) << ev.dump();
  EXPECT_EQ(x[2][0].get<int64_t>(), 3);
  EXPECT_DOUBLE_EQ(x[2][1].get<double>(), 1.5);
  fs::remove_all(root);
}

// A run restarted at step k (killed before its first checkpoint: k = 0; or resumed from an older
// checkpoint) wrote steps after k into its earlier file; TensorBoard showed them twice.
TEST(TensorBoard, AWriterStartingAtKCutsEarlierFilesBackToK) {
  const std::string py = tensorboard_python();
  if (py.empty()) GTEST_SKIP() << "no python with the tensorboard package (scripts/bootstrap)";
  const fs::path root = scratch("restart");
  std::string first;
  {
    observe::EventWriter w(root.string());
    first = w.path();
    for (int s = 1; s <= 5; ++s) w.scalar("x", s, s);
    w.flush();
  }
  std::ofstream(first, std::ios::binary | std::ios::app) << std::string("\x20\x00\x00", 3);  // torn
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a later file name
  {
    observe::EventWriter w(root.string(), /*first_step=*/3);  // resumed from step 3
    for (int s = 4; s <= 6; ++s) w.scalar("x", s, 10 * s);
  }
  // The earlier file alone holds steps 1..3 now (its 4, 5 and torn tail are gone).
  const json old = read_events(py, first);
  ASSERT_EQ(old["scalars"]["x"].size(), 3u) << old.dump();
  EXPECT_EQ(old["scalars"]["x"][2][0].get<int64_t>(), 3);
  const json ev = read_events(py, root);
  const auto& x = ev["scalars"]["x"];
  ASSERT_EQ(x.size(), 6u) << ev.dump();
  for (int s = 1; s <= 6; ++s) {
    EXPECT_EQ(x[s - 1][0].get<int64_t>(), s);
    EXPECT_DOUBLE_EQ(x[s - 1][1].get<double>(), s <= 3 ? s : 10 * s) << "step " << s;
  }
  {
    observe::EventWriter w(root.string(), /*first_step=*/0);  // a fresh start: nothing before
  }
  EXPECT_EQ(read_events(py, root)["scalars"].size(), 0u);
  fs::remove_all(root);
}

// A full disk while events are written: those events are lost with a warning naming the file,
// no torn record stays in the file, and the writer goes on once it can write again (before, a
// std::ofstream stayed failed and TensorBoard was silent for the rest of the run).
TEST(TensorBoard, AFailedFlushLosesThoseEventsOnlyAndTheWriterGoesOn) {
  const std::string py = tensorboard_python();
  if (py.empty()) GTEST_SKIP() << "no python with the tensorboard package (scripts/bootstrap)";
  const fs::path root = scratch("full");
  observe::EventWriter w(root.string());
  w.scalar("x", 1, 1.0);
  w.flush();
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  rlimit tight = before;
  tight.rlim_cur = static_cast<rlim_t>(fs::file_size(w.path()) + 10);  // 10 bytes of the next
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  for (const int s : {2, 3}) {
    w.scalar("x", s, s);
    EXPECT_NO_THROW(w.flush());
  }
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  std::signal(SIGXFSZ, old_handler);
  w.scalar("x", 4, 4.0);
  w.flush();
  const json ev = read_events(py, root);
  const auto& x = ev["scalars"]["x"];
  ASSERT_EQ(x.size(), 2u) << ev.dump();  // 2 and 3 lost; 2's torn start did not hide 4
  EXPECT_EQ(x[0][0].get<int64_t>(), 1);
  EXPECT_EQ(x[1][0].get<int64_t>(), 4);
  EXPECT_DOUBLE_EQ(x[1][1].get<double>(), 4.0);
  fs::remove_all(root);
}
