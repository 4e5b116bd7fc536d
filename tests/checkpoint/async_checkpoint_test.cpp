// Asynchronous checkpoints (checkpoint.async, checkpoint/async_checkpoint.hpp): the files are those
// a synchronous save of the same state writes, byte for byte; training that goes on while they are
// written does not change them; one checkpoint in flight at a time, committed in order; a failure
// in the background is the synchronous save's error, thrown at the next save or wait, the
// committed checkpoints intact; a kill -9 mid-write leaves nothing a resume would trust. The
// background writer is held at a file by the checkpoint write hook (checkpoint/checkpoint.hpp).
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/timestep/uniform_sampler.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_state.hpp"

using namespace dmtrain;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using Parts = test_support::TinyState;

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("async_" + name, /*create=*/false);
}

std::vector<at::Tensor> clones(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

// Holds the background writer at the file whose path ends with `suffix` until release(); the
// test's thread can see that it got there (reached()).
class Gate {
 public:
  explicit Gate(std::string suffix) : suffix_(std::move(suffix)) {
    checkpoint::set_checkpoint_write_hook([this](const std::string& p) {
      if (p.size() < suffix_.size() ||
          p.compare(p.size() - suffix_.size(), suffix_.size(), suffix_))
        return;
      std::unique_lock<std::mutex> lock(m_);
      reached_ = true;
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(60), [this] { return open_; });
    });
  }
  ~Gate() {
    release();
    checkpoint::set_checkpoint_write_hook(nullptr);
  }
  bool reached() {
    std::unique_lock<std::mutex> lock(m_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [this] { return reached_; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::string suffix_;
  std::mutex m_;
  std::condition_variable cv_;
  bool reached_ = false, open_ = false;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<int64_t> iterations(const fs::path& root) {
  std::vector<int64_t> out;
  for (const auto& c : checkpoint::list_checkpoints(root.string())) out.push_back(c.iteration);
  return out;
}

void expect_same_files(const fs::path& a, const fs::path& b) {
  std::vector<std::string> names_a, names_b;
  for (const auto& e : fs::directory_iterator(a)) names_a.push_back(e.path().filename().string());
  for (const auto& e : fs::directory_iterator(b)) names_b.push_back(e.path().filename().string());
  std::sort(names_a.begin(), names_a.end());
  std::sort(names_b.begin(), names_b.end());
  ASSERT_EQ(names_a, names_b);
  for (const auto& n : names_a)
    EXPECT_TRUE(test_support::file_text(a / n) == test_support::file_text(b / n))
        << n << " differs";
}

}  // namespace

TEST(AsyncCheckpoint, WritesTheSynchronousFilesAndIgnoresTrainingThatGoesOn) {
  const fs::path sync_root = scratch("same_sync"), async_root = scratch("same_async");
  Parts a(1);
  a.step();
  a.step();
  a.state->counters.iteration = 2;
  const auto params = clones(a.model->parameters());
  const std::string sync_dir = a.state->save(sync_root.string(), a.cfg);

  ASSERT_TRUE(a.cfg.checkpoint.async);  // the default
  std::string async_dir;
  {
    Gate gate("/model.pt");  // the first file the background writes
    a.state->save_checkpoint(async_root.string(), a.cfg);
    ASSERT_TRUE(gate.reached());
    EXPECT_TRUE(iterations(async_root).empty());  // returned before the commit
    // Training goes on meanwhile: weights, moments, EMA and counters all change.
    a.step();
    a.state->counters.iteration = 3;
    ASSERT_FALSE(at::equal(a.model->parameters()[0], params[0]));
    gate.release();
    async_dir = a.state->wait_checkpoint();
  }
  ASSERT_EQ(async_dir, (async_root / "iter_000000000002").string());
  EXPECT_EQ(a.state->last_checkpoint(), async_dir);
  // The same files, byte for byte (the manifests too: same sizes, hashes and commit number).
  expect_same_files(sync_dir, async_dir);
  // And what loads is the state of the save, not the one after.
  Parts b(7);
  b.state->load(async_dir, at::kCPU);
  EXPECT_EQ(b.state->counters.iteration, 2);
  const auto loaded = b.model->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(loaded[i], params[i])) << i;
  fs::remove_all(sync_root);
  fs::remove_all(async_root);
}

TEST(AsyncCheckpoint, KeepsOneInFlightAndCommitsInOrder) {
  const fs::path root = scratch("one");
  Parts a(2);
  a.step();
  a.state->counters.iteration = 1;
  double waited = 0;
  {
    Gate gate("iter_000000000001.tmp/model.pt");
    a.state->save_checkpoint(root.string(), a.cfg);
    ASSERT_TRUE(gate.reached());
    a.step();
    a.state->counters.iteration = 2;
    std::thread opener([&gate] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      gate.release();
    });
    const auto t0 = Clock::now();
    a.state->save_checkpoint(root.string(), a.cfg);  // waits for the first one
    waited = std::chrono::duration<double>(Clock::now() - t0).count();
    opener.join();
    // The first one is committed before the second starts.
    EXPECT_EQ(iterations(root).front(), 1);
    EXPECT_EQ(a.state->last_checkpoint(), (root / "iter_000000000001").string());
  }
  EXPECT_GE(waited, 0.25);
  EXPECT_EQ(a.state->wait_checkpoint(), (root / "iter_000000000002").string());
  const auto all = checkpoint::list_checkpoints(root.string());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_LT(all[0].commit, all[1].commit);
  EXPECT_EQ(checkpoint::newest_committed(all).iteration, 2);
  for (const auto& c : all) EXPECT_NO_THROW(checkpoint::verify_checkpoint(c.dir));
  fs::remove_all(root);
}

TEST(AsyncCheckpoint, BackgroundFailureIsTheSynchronousErrorAtTheNextSaveOrWait) {
  const fs::path root = scratch("fail");
  Parts a(3);
  a.step();
  a.state->counters.iteration = 1;
  a.state->save_checkpoint(root.string(), a.cfg);
  const std::string first = a.state->wait_checkpoint();
  // The disk is full for iteration 2's model.pt (a symlink to /dev/full: writes fail with
  // ENOSPC, for root too).
  const std::string bad = (root / "iter_000000000002.tmp" / "model.pt").string();
  checkpoint::set_checkpoint_write_hook([&](const std::string& p) {
    if (p == bad) fs::create_symlink("/dev/full", p);
  });
  a.state->counters.iteration = 2;
  const std::string sync_err = error_of([&] { a.state->save(root.string(), a.cfg); });
  ASSERT_NE(sync_err.find("cannot write checkpoint file '" + bad + "'"), std::string::npos)
      << sync_err;
  EXPECT_NE(sync_err.find("No space left on device"), std::string::npos) << sync_err;

  EXPECT_NO_THROW(a.state->save_checkpoint(root.string(), a.cfg));  // fails in the background
  EXPECT_EQ(error_of([&] { a.state->wait_checkpoint(); }), sync_err);
  EXPECT_EQ(error_of([&] { a.state->wait_checkpoint(); }), "");  // thrown once
  // ... or at the next save, which then does not start.
  a.state->save_checkpoint(root.string(), a.cfg);
  a.state->counters.iteration = 3;
  EXPECT_EQ(error_of([&] { a.state->save_checkpoint(root.string(), a.cfg); }), sync_err);
  checkpoint::set_checkpoint_write_hook(nullptr);
  EXPECT_EQ(iterations(root), (std::vector<int64_t>{1}));
  EXPECT_NO_THROW(checkpoint::verify_checkpoint(first));
  EXPECT_EQ(a.state->last_checkpoint(), first);
  EXPECT_FALSE(fs::exists(root / "iter_000000000002.tmp"));
  EXPECT_FALSE(fs::exists(root / "iter_000000000003.tmp"));
  Parts b(4);
  EXPECT_NO_THROW(b.state->load(first, at::kCPU));
  // The disk has room again: the next save works.
  a.state->save_checkpoint(root.string(), a.cfg);
  EXPECT_EQ(a.state->wait_checkpoint(), (root / "iter_000000000003").string());
  fs::remove_all(root);
}

TEST(AsyncCheckpoint, KillDuringTheBackgroundWriteLeavesNoTrustedTornCheckpoint) {
  const fs::path root = scratch("kill");
  const fs::path marker = root.string() + ".writing";
  fs::remove(marker);
  Parts a(5);
  a.step();
  a.state->counters.iteration = 1;
  a.state->save_checkpoint(root.string(), a.cfg);
  const std::string first = a.state->wait_checkpoint();
  a.step();
  a.state->counters.iteration = 2;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: an async save held inside the background write, model.pt and the EMA files
    // already in the temporary folder, until it is killed.
    at::set_num_threads(1);  // no OpenMP pool after fork
    checkpoint::set_checkpoint_write_hook([&](const std::string& p) {
      if (p.find("optimizer.pt") == std::string::npos) return;
      std::ofstream(marker) << "x";
      std::this_thread::sleep_for(std::chrono::seconds(60));
    });
    a.state->save_checkpoint(root.string(), a.cfg);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    ::_exit(0);
  }
  const auto t0 = Clock::now();
  while (!fs::exists(marker) && Clock::now() - t0 < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool reached = fs::exists(marker);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(reached) << "the child never reached the background write";
  EXPECT_TRUE(WIFSIGNALED(status));
  // The torn one is there, half written, and nothing trusts it.
  EXPECT_TRUE(fs::exists(root / "iter_000000000002.tmp" / "model.pt"));
  EXPECT_EQ(iterations(root), (std::vector<int64_t>{1}));
  const auto latest = checkpoint::latest_valid_checkpoint(root.string());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->dir, first);
  EXPECT_EQ(checkpoint::remove_uncommitted(root.string()).size(), 1u);
  Parts b(6);
  EXPECT_NO_THROW(b.state->load(first, at::kCPU));
  EXPECT_EQ(b.state->counters.iteration, 1);
  fs::remove_all(root);
  fs::remove(marker);
}

TEST(AsyncCheckpoint, SynchronousWhenConfigured) {
  const fs::path root = scratch("sync");
  Parts a(8);
  a.cfg.checkpoint.async = false;
  a.state->counters.iteration = 1;
  a.state->save_checkpoint(root.string(), a.cfg);
  // Committed on return, with no wait.
  EXPECT_EQ(iterations(root), (std::vector<int64_t>{1}));
  EXPECT_EQ(a.state->last_checkpoint(), (root / "iter_000000000001").string());
  EXPECT_EQ(a.state->wait_checkpoint(), a.state->last_checkpoint());
  fs::remove_all(root);
}

// The GPU path: non-blocking copies on a side stream into page-locked memory, fenced before the
// update. Its files load to exactly the state of the save (not byte-identical to a synchronous
// save of CUDA tensors: those record the storage's device, cuda:0, the host copies cpu).
TEST(AsyncCheckpoint, CudaSnapshotLoadsAsTheSynchronousSave) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  const fs::path sync_root = scratch("cuda_sync"), async_root = scratch("cuda_async");
  Parts a(9, at::Device(at::kCUDA, 0));
  a.step();
  a.step();
  a.state->counters.iteration = 2;
  const std::string sync_dir = a.state->save(sync_root.string(), a.cfg);
  a.state->save_checkpoint(async_root.string(), a.cfg);
  for (int i = 0; i < 3; ++i) a.step();  // overlaps the copies and the writing
  const std::string async_dir = a.state->wait_checkpoint();
  Parts s(10), c(11);
  s.state->load(sync_dir, at::kCPU);
  c.state->load(async_dir, at::kCPU);
  const auto ps = s.model->parameters(), pc = c.model->parameters();
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(at::equal(ps[i], pc[i])) << "param " << i;
  for (size_t r = 0; r < s.ema->rates().size(); ++r) {
    for (size_t i = 0; i < ps.size(); ++i) {
      EXPECT_TRUE(at::equal(s.ema->params(r)[i], c.ema->params(r)[i])) << "ema " << r << " " << i;
    }
  }
  EXPECT_EQ(s.opt->iteration(), c.opt->iteration());
  const auto qs = s.opt->param_groups()[0].params(), qc = c.opt->param_groups()[0].params();
  for (size_t i = 0; i < qs.size(); ++i) {
    const auto& a_st = static_cast<const optim::MdlrcAdamParamState&>(
        *s.opt->state().at(qs[i].unsafeGetTensorImpl()));
    const auto& b_st = static_cast<const optim::MdlrcAdamParamState&>(
        *c.opt->state().at(qc[i].unsafeGetTensorImpl()));
    EXPECT_EQ(a_st.step(), b_st.step());
    EXPECT_TRUE(at::equal(a_st.exp_avg(), b_st.exp_avg())) << i;
    EXPECT_TRUE(at::equal(a_st.exp_avg_sq(), b_st.exp_avg_sq())) << i;
  }
  fs::remove_all(sync_root);
  fs::remove_all(async_root);
}
