#include "dmtrain/data/shuffle.hpp"

#include <c10/util/Exception.h>

namespace dmtrain::data {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

namespace {

// Distinct domain constants keep the permutation and flip streams independent.
constexpr uint64_t kPermDomain = 0x5045524D5554ull;  // "PERMUT"
constexpr uint64_t kFlipDomain = 0x464C4950ull;      // "FLIP"

class SplitMix {
 public:
  explicit SplitMix(uint64_t state) : state_(state) {}
  uint64_t next() { return mix64(state_++ * 0x9E3779B97F4A7C15ull); }
  // Uniform integer in [0, bound) by rejection (no modulo bias).
  uint64_t below(uint64_t bound) {
    const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % bound);
    uint64_t v;
    do v = next();
    while (v >= limit);
    return v % bound;
  }

 private:
  uint64_t state_;
};

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  TORCH_CHECK(n >= 0 && epoch >= 0, "epoch_permutation: bad n or epoch");
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  SplitMix rng(mix64(mix64(seed ^ kPermDomain) + static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

std::vector<int64_t> epoch_shard(int64_t n, uint64_t seed, int64_t epoch, int64_t rank,
                                 int64_t world_size) {
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "epoch_shard: bad rank ", rank,
              " of ", world_size);
  const std::vector<int64_t> perm = epoch_permutation(n, seed, epoch);
  const int64_t s = n / world_size;
  std::vector<int64_t> shard(static_cast<size_t>(s));
  for (int64_t k = 0; k < s; ++k) {
    shard[static_cast<size_t>(k)] = perm[static_cast<size_t>(rank + k * world_size)];
  }
  return shard;
}

bool flip_decision(uint64_t seed, int64_t epoch, int64_t index) {
  const uint64_t h = mix64(mix64(mix64(seed ^ kFlipDomain) + static_cast<uint64_t>(epoch)) +
                           static_cast<uint64_t>(index));
  return (h >> 63) != 0;
}

}  // namespace dmtrain::data
