// TensorBoard event files read back with TensorBoard's own reader (tests/fixtures/observe/
// read_tfevents.py, the tensorboard Python package): tags, steps and values of a CPU run, and an
// event file cut mid-record (as a kill -9 leaves it) still yielding every flushed event. Skipped
// with a message where no python3 with tensorboard is found.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

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
