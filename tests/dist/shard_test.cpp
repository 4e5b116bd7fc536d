#include "dmtrain/dist/shard.hpp"

#include <gtest/gtest.h>

#include "dmtrain/util/error.hpp"

namespace dist = dmtrain::dist;

TEST(DistShard, DividesGlobalBatch) {
  dist::Context c;
  EXPECT_EQ(dist::shard_batch(128, c), 128);  // single process keeps the whole batch
  c.world_size = 8;
  c.local_world_size = 8;
  EXPECT_EQ(dist::shard_batch(128, c), 16);
  EXPECT_EQ(dist::shard_batch(8, c), 1);
}

TEST(DistShard, IndivisibleBatchNamesKeyAndWorld) {
  dist::Context c;
  c.world_size = 3;
  try {
    dist::shard_batch(128, c);
    FAIL() << "no error";
  } catch (const dmtrain::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.batch_size=128"), std::string::npos) << m;
    EXPECT_NE(m.find("world size 3"), std::string::npos) << m;
  }
  EXPECT_THROW(dist::shard_batch(2, c), dmtrain::Error);
  EXPECT_THROW(dist::shard_batch(0, c), dmtrain::Error);
}
