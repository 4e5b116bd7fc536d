// launch_local with /bin/sh workers: environment per rank, failure propagation, signal
// forwarding, free-port picking.
#include "dmtrain/dist/launcher.hpp"
#include "support/scratch_dir.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dmtrain/util/error.hpp"

namespace dist = dmtrain::dist;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  return dmtrain::test_support::scratch_dir("launcher_" + name);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(DistLauncher, EveryRankGetsItsEnvironment) {
  const fs::path dir = fresh_dir("env");
  // Stale rank variables in the parent must not leak through; NCCL_NVLS_ENABLE is 0 unless the
  // user set it (below).
  ::setenv("RANK", "7", 1);
  ::unsetenv("NCCL_NVLS_ENABLE");
  const std::string script =
      "echo \"$RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT "
      "NVLS=$NCCL_NVLS_ENABLE args=$*\" > " +
      dir.string() + "/rank_$RANK";
  const int rc = dist::launch_local(
      3, {"/bin/sh", "-c", script, "sh", "--nproc-per-node", "3", "--config", "x.yaml"}, 23456);
  ::unsetenv("RANK");
  EXPECT_EQ(rc, 0);
  for (int r = 0; r < 3; ++r) {
    const std::string want = std::to_string(r) + " " + std::to_string(r) +
                             " 3 3 127.0.0.1 23456 NVLS=0 args=--config x.yaml\n";
    EXPECT_EQ(slurp(dir / ("rank_" + std::to_string(r))), want) << "rank " << r;
  }
  EXPECT_FALSE(fs::exists(dir / "rank_3"));
  fs::remove_all(dir);
}

// A user's NCCL_NVLS_ENABLE reaches every rank (the launcher used to overwrite it with 0).
TEST(DistLauncher, KeepsAUserSetNvlsEnable) {
  const fs::path dir = fresh_dir("nvls");
  ::setenv("NCCL_NVLS_ENABLE", "1", 1);
  const int rc = dist::launch_local(
      2, {"/bin/sh", "-c", "echo NVLS=$NCCL_NVLS_ENABLE > " + dir.string() + "/rank_$RANK"}, 0);
  ::unsetenv("NCCL_NVLS_ENABLE");
  EXPECT_EQ(rc, 0);
  for (int r = 0; r < 2; ++r) EXPECT_EQ(slurp(dir / ("rank_" + std::to_string(r))), "NVLS=1\n");
  fs::remove_all(dir);
}

TEST(DistLauncher, PortZeroPicksOneFreePortForAll) {
  const fs::path dir = fresh_dir("port");
  const int rc =
      dist::launch_local(2, {"sh", "-c", "echo $MASTER_PORT > " + dir.string() + "/port_$RANK"}, 0);
  EXPECT_EQ(rc, 0);
  const std::string p0 = slurp(dir / "port_0"), p1 = slurp(dir / "port_1");
  EXPECT_EQ(p0, p1);
  const int port = std::atoi(p0.c_str());
  EXPECT_GE(port, 1);
  EXPECT_LE(port, 65535);
  fs::remove_all(dir);
}

TEST(DistLauncher, FailingRankStopsTheOthersAndReturnsItsCode) {
  const auto start = std::chrono::steady_clock::now();
  const int rc = dist::launch_local(
      3, {"/bin/sh", "-c", "if [ \"$RANK\" = 1 ]; then sleep 0.2; exit 3; fi; sleep 30"}, 0,
      /*grace_seconds=*/2.0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(rc, 3);
  EXPECT_LT(seconds, 5.0);
}

TEST(DistLauncher, StubbornRankIsKilledAfterGrace) {
  // Ignores SIGTERM (as a rank stuck in a collective might): SIGKILL after the grace period.
  const auto start = std::chrono::steady_clock::now();
  const int rc =
      dist::launch_local(2,
                         {"/bin/sh", "-c",
                          "if [ \"$RANK\" = 0 ]; then sleep 0.3; exit 5; fi; trap '' TERM; "
                          "while true; do sleep 0.1; done"},
                         0, /*grace_seconds=*/1.0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(rc, 5);
  EXPECT_GE(seconds, 1.0);
  EXPECT_LT(seconds, 6.0);
}

TEST(DistLauncher, ForwardsSigusr1ToEveryWorker) {
  const fs::path dir = fresh_dir("usr1");
  const std::string d = dir.string();
  std::thread sender([&d] {
    // Wait until both workers have installed their trap, then signal the launcher (this
    // process), as Slurm's --signal would.
    for (int i = 0; i < 500; ++i) {
      if (fs::exists(d + "/ready_0") && fs::exists(d + "/ready_1")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(::getpid(), SIGUSR1);
  });
  const int rc = dist::launch_local(
      2,
      {"/bin/sh", "-c",
       "trap 'echo usr1 > " + d + "/got_$RANK; exit 0' USR1; touch " + d +
           "/ready_$RANK; i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; exit 9"},
      0, 2.0);
  sender.join();
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(slurp(dir / "got_0"), "usr1\n");
  EXPECT_EQ(slurp(dir / "got_1"), "usr1\n");
  fs::remove_all(dir);
}

TEST(DistLauncher, ExecFailureAndBadArguments) {
  EXPECT_EQ(dist::launch_local(1, {"/nonexistent/dmtrain"}, 0), 127);
  EXPECT_THROW(dist::launch_local(0, {"/bin/true"}, 0), dmtrain::Error);
  EXPECT_THROW(dist::launch_local(1, {}, 0), dmtrain::Error);
  EXPECT_THROW(dist::launch_local(1, {"/bin/true"}, 70000), dmtrain::Error);
  EXPECT_THROW(dist::launch_local(1, {"no-such-program-xyz"}, 0), dmtrain::Error);
}

TEST(DistLauncher, StripNprocFlag) {
  using V = std::vector<std::string>;
  EXPECT_EQ(dist::strip_nproc_flag({"dmtrain", "--nproc-per-node", "4", "--config", "c.yaml"}),
            (V{"dmtrain", "--config", "c.yaml"}));
  EXPECT_EQ(dist::strip_nproc_flag({"dmtrain", "--nproc-per-node=2", "train"}),
            (V{"dmtrain", "train"}));
}

TEST(DistLauncher, PickFreePortIsBindable) {
  const int port = dist::pick_free_port();
  EXPECT_GT(port, 0);
  EXPECT_LE(port, 65535);
}
