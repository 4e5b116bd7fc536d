// Deterministic, resumable shuffling and sharding: pure functions of (seed, epoch, rank, index),
// so every rank of a distributed run computes the same permutation without communicating, and a
// run resumed from a checkpoint sees exactly the samples it would have seen.
//
// Scheme: epoch e's order is a Fisher-Yates permutation of [0, N) driven by a SplitMix64 stream
// seeded with mix(seed, e) (our own generator and bounded-integer draw, so the order never
// changes with the standard library or LibTorch version). Rank r of W takes positions r, r+W,
// r+2W, ... of that order, for S = floor(N / W) positions, so the shards are disjoint, equal in
// size, and the last N mod W samples of each epoch's order are dropped.
#pragma once
#include <cstdint>
#include <vector>

namespace dmtrain::data {

// SplitMix64 finaliser: a bijective 64-bit mixer (Steele, Lea, Flood 2014).
uint64_t mix64(uint64_t x);

// The whole-set permutation of epoch `epoch` (identical on every rank).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

// Shard of `rank` (S = n / world_size entries) taken from epoch_permutation(n, seed, epoch).
std::vector<int64_t> epoch_shard(int64_t n, uint64_t seed, int64_t epoch, int64_t rank,
                                 int64_t world_size);

// Whether sample `index` is mirrored left-right in epoch `epoch` (probability 1/2, independent
// of rank, order and thread timing).
bool flip_decision(uint64_t seed, int64_t epoch, int64_t index);

}  // namespace dmtrain::data
