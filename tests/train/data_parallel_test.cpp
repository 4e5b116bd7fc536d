// Data-parallel training through the real executable and real processes (CPU, store backend):
// the invariant is that N ranks with global batch B compute the same run as one process with
// batch B (same examples, timesteps, noise, optimizer and EMA decisions), so their weights must
// agree within float32 reduction-order noise. Also: a resume may change the world size, and a
// killed rank ends the job with an error instead of a hang.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/serialize.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dmtrain/config/load.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "support/tiny_run.hpp"

namespace dmtrain::train {
namespace {

namespace fs = std::filesystem;

struct DataParallelRun : ::testing::Test {
  fs::path root;
  void SetUp() override {
    if (!fs::exists(DMTRAIN_BINARY)) GTEST_SKIP() << "dmtrain binary not built";
    root = fs::temp_directory_path() /
           ("dmtrain_ddp_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    test_support::write_tiny_idx(root / "data", 16);
    auto cfg = test_support::tiny_config(root / "data", root / "unused");
    cfg.model.dropout = 0.0;  // dropout masks are per rank by design
    cfg.train.batch_size = 8;
    cfg.train.iterations = 3;
    // Adam divides by sqrt(v) + eps: an element whose gradient is at rounding level gets an update
    // that is a ratio of two rounding noises, so any change of summation order (batch split over
    // ranks, or just another OpenMP thread count in one process) moves it by up to ~lr. With
    // eps = 1 the step is ~lr * gradient (linear), and weights compare the gradients themselves:
    // ranks must agree to float32 reduction noise. The default-eps run is compared on its logged
    // loss and gradient norm (TwoRanksLogTheSameLossesAsOneProcess).
    cfg.optim.eps = 1.0;
    cfg.optim.lr = 0.05;  // weights move ~1e-3 per step, so 1e-6 agreement is a sharp test
    cfg.checkpoint.every = 1;
    cfg.dist.timeout_s = 20;
    std::ofstream(root / "cfg.yaml") << config::dump_config(cfg);
  }
  void TearDown() override { fs::remove_all(root); }

  int dmtrain(const std::string& args, const std::string& env = "") const {
    const std::string cmd = "OMP_NUM_THREADS=1 " + env + " " + DMTRAIN_BINARY + " --config " +
                            (root / "cfg.yaml").string() + " " + args + " > " +
                            (root / "out.txt").string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  }
  std::string output() const {
    std::ifstream in(root / "out.txt");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

// Largest |a - b| over every tensor of two torch::save archives (walking sub-archives: a module
// is saved as one archive per submodule); `count` gets the number of tensors compared.
double max_diff(torch::serialize::InputArchive& ia, torch::serialize::InputArchive& ib,
                int64_t& count) {
  double worst = 0;
  const auto keys = ia.keys();
  EXPECT_EQ(keys, ib.keys());
  for (const auto& k : keys) {
    at::Tensor ta, tb;
    if (ia.try_read(k, ta)) {
      EXPECT_TRUE(ib.try_read(k, tb)) << k;
      if (!tb.defined()) continue;
      const double d = (ta.to(at::kDouble) - tb.to(at::kDouble)).abs().max().item<double>();
      worst = std::max(worst, d);
      ++count;
      continue;
    }
    torch::serialize::InputArchive sa, sb;
    if (ia.try_read(k, sa) && ib.try_read(k, sb)) worst = std::max(worst, max_diff(sa, sb, count));
  }
  return worst;
}

double max_diff(const fs::path& a, const fs::path& b) {
  torch::serialize::InputArchive ia, ib;
  ia.load_from(a.string());
  ib.load_from(b.string());
  int64_t count = 0;
  const double d = max_diff(ia, ib, count);
  EXPECT_GT(count, 10) << a;  // the archive's tensors were really compared
  return d;
}

fs::path ckpt(const fs::path& run, int iteration) {
  std::ostringstream os;
  os << "iter_" << std::setw(12) << std::setfill('0') << iteration;
  return run / "checkpoints" / os.str();
}

TEST_F(DataParallelRun, TwoRanksEqualOneProcessWithTheSameGlobalBatch) {
  ASSERT_EQ(dmtrain("--run-dir " + (root / "one").string()), 0) << output();
  ASSERT_EQ(dmtrain("--nproc-per-node 2 --run-dir " + (root / "two").string()), 0) << output();
  for (const char* file : {"model.pt", "ema_0.pt", "ema_1.pt"}) {
    const double d = max_diff(ckpt(root / "one", 3) / file, ckpt(root / "two", 3) / file);
    EXPECT_LT(d, 1e-6) << file;
  }
  // Not vacuous: training moved the weights far more than the tolerance.
  EXPECT_GT(max_diff(ckpt(root / "one", 1) / "model.pt", ckpt(root / "one", 3) / "model.pt"), 1e-4);
  // Rank 0 wrote the console and the metrics; rank 1 its own log.
  EXPECT_TRUE(fs::exists(root / "two" / "train.rank1.log"));
  std::ifstream metrics(root / "two" / "metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(metrics, l);) ++lines;
  EXPECT_EQ(lines, 3);
}

// dist.graph_step on the CPU: no CUDA graph, but the gradients go through the bucketed all-reduce
// of the flat gradient buffer (dist::BucketedAllReduce) instead of c10d's Reducer, eagerly, and
// the run must be the one process's (and so the Reducer's) run. The log names the path.
TEST_F(DataParallelRun, GraphStepAveragingEqualsOneProcessOnTheCpu) {
  ASSERT_EQ(dmtrain("--run-dir " + (root / "one").string()), 0) << output();
  ASSERT_EQ(dmtrain("--nproc-per-node 2 --set dist.graph_step=true --set log.level=info "
                    "--run-dir " +
                    (root / "bucketed").string()),
            0)
      << output();
  EXPECT_NE(output().find("data-parallel step: bucketed all-reduce of the flat gradient buffer "
                          "(dist.graph_step), eager"),
            std::string::npos)
      << output();
  for (const char* file : {"model.pt", "ema_0.pt", "ema_1.pt"}) {
    const double d = max_diff(ckpt(root / "one", 3) / file, ckpt(root / "bucketed", 3) / file);
    EXPECT_LT(d, 1e-6) << file;
  }
}

// Gradient accumulation is the same optimizer step: one process in 4 chunks, and 2 ranks in 2
// chunks each, equal the plain single-process run; a chunk count that does not divide the
// per-rank batch is refused naming the key.
TEST_F(DataParallelRun, MicroBatchesAccumulateToTheSameStep) {
  ASSERT_EQ(dmtrain("--run-dir " + (root / "one").string()), 0) << output();
  ASSERT_EQ(dmtrain("--set train.micro_batches=4 --run-dir " + (root / "micro").string()), 0)
      << output();
  ASSERT_EQ(dmtrain("--nproc-per-node 2 --set train.micro_batches=2 --run-dir " +
                    (root / "two_micro").string()),
            0)
      << output();
  EXPECT_LT(max_diff(ckpt(root / "one", 3) / "model.pt", ckpt(root / "micro", 3) / "model.pt"),
            1e-6);
  EXPECT_LT(max_diff(ckpt(root / "one", 3) / "model.pt", ckpt(root / "two_micro", 3) / "model.pt"),
            1e-6);
  EXPECT_EQ(dmtrain("--set train.micro_batches=3 --run-dir " + (root / "bad").string()), 2);
  // Refused before the run is built (check_run_config), naming both keys.
  EXPECT_NE(output().find("train.micro_batches (3) must divide train.batch_size (8)"),
            std::string::npos)
      << output();
}

// Every logged number of the recipe's own optimizer (default eps): loss and gradient norm.
TEST_F(DataParallelRun, TwoRanksLogTheSameLossesAsOneProcess) {
  const std::string defaults = "--set optim.eps=1e-8 --set optim.lr=5e-4 ";
  ASSERT_EQ(dmtrain(defaults + "--run-dir " + (root / "one").string()), 0) << output();
  ASSERT_EQ(dmtrain(defaults + "--nproc-per-node 2 --run-dir " + (root / "two").string()), 0)
      << output();
  const auto a = test_support::logged_losses(root / "one"),
             b = test_support::logged_losses(root / "two");
  test_support::expect_same_losses(a, b, 3, 1e-6, 1e-6);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_GT(std::abs(a[0].first - a[2].first), 1e-3);  // the losses are not all alike
}

TEST_F(DataParallelRun, ResumeOnAnotherWorldSizeContinuesTheSameRun) {
  ASSERT_EQ(dmtrain("--run-dir " + (root / "one").string()), 0) << output();
  const std::string run = "--run-dir " + (root / "mixed").string();
  ASSERT_EQ(dmtrain("--nproc-per-node 2 --stop-at 2 " + run), 0) << output();
  ASSERT_EQ(dmtrain("--resume auto " + run), 0) << output();
  EXPECT_NE(output().find("resharded"), std::string::npos) << output();
  EXPECT_LT(max_diff(ckpt(root / "one", 3) / "model.pt", ckpt(root / "mixed", 3) / "model.pt"),
            1e-6);
}

TEST_F(DataParallelRun, AKilledRankEndsTheJobWithAnError) {
  // Two ranks started as torchrun would (no launcher to clean up): rank 1 is killed mid-run and
  // rank 0 must exit non-zero, naming the missing rank, within dist.timeout_s (5 s here).
  const int port = dist::pick_free_port();
  const std::string run = (root / "killed").string();
  const std::string common =
      "OMP_NUM_THREADS=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
      " " + DMTRAIN_BINARY + " --config " + (root / "cfg.yaml").string() + " --run-dir " + run +
      " --set train.iterations=100000 --set dist.timeout_s=5";
  const std::string r0 = "RANK=0 " + common + " > " + (root / "r0.txt").string() + " 2>&1";
  const std::string r1 =
      "RANK=1 " + common + " > /dev/null 2>&1 & echo $! > " + (root / "r1.pid").string();
  ASSERT_EQ(std::system(r1.c_str()), 0);
  auto start = std::chrono::steady_clock::now();
  int rc0 = -1;
  std::thread rank0([&] { rc0 = std::system(r0.c_str()); });
  // Let them train a few steps, then kill rank 1 hard.
  while (!fs::exists(ckpt(run, 2)) &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(120)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::ifstream pid_file(root / "r1.pid");
  int pid = 0;
  pid_file >> pid;
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  rank0.join();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_TRUE(WIFEXITED(rc0) && WEXITSTATUS(rc0) != 0);
  EXPECT_LT(waited, 60.0);
  std::ifstream in(root / "r0.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("missing rank(s): 1"), std::string::npos) << ss.str();
}

}  // namespace
}  // namespace dmtrain::train
