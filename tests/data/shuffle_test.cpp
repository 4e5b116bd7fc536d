// Shuffling and sharding: permutations each epoch, fresh across epochs, reproducible, disjoint
// equal shards, fair flips.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "dmtrain/data/shuffle.hpp"

using namespace dmtrain::data;

TEST(Shuffle, EachEpochIsAPermutationAndEpochsDiffer) {
  const int64_t n = 1000;
  std::vector<int64_t> identity(n);
  for (int64_t i = 0; i < n; ++i) identity[i] = i;
  std::vector<int64_t> prev;
  for (int64_t e = 0; e < 4; ++e) {
    std::vector<int64_t> p = epoch_permutation(n, 42, e);
    EXPECT_EQ(p, epoch_permutation(n, 42, e));  // reproducible
    EXPECT_NE(p, identity);
    EXPECT_NE(p, prev);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity);
    prev = p;
  }
  EXPECT_NE(epoch_permutation(n, 42, 0), epoch_permutation(n, 43, 0));
}

TEST(Shuffle, PositionsAreRoughlyUniform) {
  // Over 2000 epochs of n=5, each value lands at position 0 about 400 times (binomial sd ~18).
  std::vector<int> first(5, 0);
  for (int64_t e = 0; e < 2000; ++e) ++first[epoch_permutation(5, 7, e)[0]];
  for (int c : first) EXPECT_NEAR(c, 400, 90);
}

TEST(Shuffle, ShardsAreDisjointEqualAndDropTheTail) {
  const int64_t n = 103, w = 4;  // 25 per rank, 3 dropped
  for (int64_t e = 0; e < 3; ++e) {
    const std::vector<int64_t> perm = epoch_permutation(n, 9, e);
    std::set<int64_t> seen;
    for (int64_t r = 0; r < w; ++r) {
      std::vector<int64_t> s = epoch_shard(n, 9, e, r, w);
      ASSERT_EQ(s.size(), 25u);
      for (size_t k = 0; k < s.size(); ++k) EXPECT_EQ(s[k], perm[r + k * w]);
      seen.insert(s.begin(), s.end());
    }
    EXPECT_EQ(seen.size(), 100u);  // disjoint
    for (int64_t k = 100; k < n; ++k) EXPECT_EQ(seen.count(perm[k]), 0u);
  }
}

TEST(Shuffle, FlipsAreDeterministicAndFair) {
  int flips = 0;
  for (int64_t i = 0; i < 10000; ++i) {
    const bool f = flip_decision(1, 2, i);
    EXPECT_EQ(f, flip_decision(1, 2, i));
    flips += f;
  }
  EXPECT_NEAR(flips, 5000, 250);  // sd 50
  int same = 0;
  for (int64_t i = 0; i < 1000; ++i) same += flip_decision(1, 2, i) == flip_decision(1, 3, i);
  EXPECT_NEAR(same, 500, 80);  // independent across epochs
}
