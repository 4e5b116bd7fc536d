// The checkpoint protocol: only committed, intact folders are trusted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;

namespace {

fs::path fresh_dir(const std::string& name) {
  return dmtrain::test_support::scratch_dir("ckpt_" + name);
}

std::string write_checkpoint(const fs::path& root, int64_t it, const std::string& payload) {
  checkpoint::CheckpointWriter w(root.string(), it);
  std::ofstream(w.path("model.pt")) << payload;
  std::ofstream(w.path("state.pt")) << "state " << it;
  return w.commit();
}

}  // namespace

TEST(Checkpoint, CommittedCheckpointsAreListedInOrder) {
  auto root = fresh_dir("list");
  write_checkpoint(root, 20, "b");
  write_checkpoint(root, 10, "a");
  auto all = checkpoint::list_checkpoints(root.string());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].iteration, 10);
  EXPECT_EQ(all[1].iteration, 20);
  EXPECT_NO_THROW(checkpoint::verify_checkpoint(all[1].dir));
  fs::remove_all(root);
}

TEST(Checkpoint, UncommittedWriteIsInvisible) {
  // A crash after writing files but before commit(): only the .tmp folder exists.
  auto root = fresh_dir("torn");
  write_checkpoint(root, 10, "good");
  {
    checkpoint::CheckpointWriter w(root.string(), 20);
    std::ofstream(w.path("model.pt")) << "half";
  }  // no commit
  auto latest = checkpoint::latest_valid_checkpoint(root.string());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->iteration, 10);
  fs::remove_all(root);
}

TEST(Checkpoint, CorruptNewestFallsBackToPrevious) {
  auto root = fresh_dir("corrupt");
  write_checkpoint(root, 10, "good weights");
  auto bad = write_checkpoint(root, 20, "newer weights");
  // Same size, different bytes: only the hash can tell.
  std::ofstream(fs::path(bad) / "model.pt") << "NEWER weights";
  EXPECT_THROW(checkpoint::verify_checkpoint(bad), dmtrain::Error);
  try {
    checkpoint::verify_checkpoint(bad);
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.pt"), std::string::npos) << e.what();
  }
  auto latest = checkpoint::latest_valid_checkpoint(root.string());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->iteration, 10);
  // Truncation is caught by the size.
  fs::resize_file(fs::path(bad) / "state.pt", 2);
  EXPECT_THROW(checkpoint::verify_checkpoint(bad), dmtrain::Error);
  fs::remove_all(root);
}

TEST(Checkpoint, MissingManifestOrFileIsReported) {
  auto root = fresh_dir("missing");
  auto dir = write_checkpoint(root, 5, "x");
  fs::remove(fs::path(dir) / "state.pt");
  EXPECT_THROW(checkpoint::verify_checkpoint(dir), dmtrain::Error);
  fs::remove(fs::path(dir) / "COMMITTED");
  EXPECT_TRUE(checkpoint::list_checkpoints(root.string()).empty());
  EXPECT_FALSE(checkpoint::latest_valid_checkpoint(root.string()).has_value());
  fs::remove_all(root);
}

TEST(Checkpoint, PruneKeepsLastAndEveryMth) {
  auto root = fresh_dir("prune");
  for (int64_t it : {100, 200, 300, 400, 500, 600}) write_checkpoint(root, it, "w");
  checkpoint::prune_checkpoints(root.string(), /*keep_last=*/2, /*keep_every=*/300);
  std::vector<int64_t> left;
  for (const auto& c : checkpoint::list_checkpoints(root.string())) left.push_back(c.iteration);
  EXPECT_EQ(left, (std::vector<int64_t>{300, 500, 600}));
  fs::remove_all(root);
}

TEST(Checkpoint, PruneKeepsTheMostRecentlyCommittedNotTheHighestIterations) {
  // An older run's 10, 20, 30, then a newer run's 10 (replacing the old one) and 12: the newer
  // run's checkpoints are the newest, whatever their iterations.
  auto root = fresh_dir("prune_order");
  for (int64_t it : {10, 20, 30}) write_checkpoint(root, it, "old");
  write_checkpoint(root, 10, "new");
  write_checkpoint(root, 12, "new");
  EXPECT_EQ(checkpoint::newest_committed(checkpoint::list_checkpoints(root.string())).iteration,
            12);
  checkpoint::prune_checkpoints(root.string(), /*keep_last=*/2, /*keep_every=*/0);
  std::vector<int64_t> left;
  for (const auto& c : checkpoint::list_checkpoints(root.string())) {
    left.push_back(c.iteration);
    EXPECT_NO_THROW(checkpoint::verify_checkpoint(c.dir));
  }
  EXPECT_EQ(left, (std::vector<int64_t>{10, 12}));
  fs::remove_all(root);
}
