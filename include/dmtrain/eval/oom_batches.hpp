// Batches that shrink when the GPU runs out of memory, for evaluation work whose result does not
// depend on how it is batched (FID's Inception features, sample_images' samples: sample i
// depends only on (seed, i)).
//
// Why: a sweep runs several trainers on one GPU (dmtrain sweep --jobs, the study's arms under
// MPS), and they tend to evaluate FID at the same iteration. A study arm was lost that way:
// six runs each held 22-25 GiB for Inception at eval.batch 1000, the seventh allocation of 5 GiB
// failed, and the whole run died at iteration 4,000 with "internal error". An evaluation that
// halves its batch instead finishes with the same numbers, a little later.
//
// for_each_batch(n, batch, fn) calls fn(start, size) for consecutive chunks covering [0, n), each
// at most `batch` long. When fn throws an out-of-memory error (util::is_out_of_memory), the same
// chunk is retried at half the size, and that size is kept for the rest; at size 1 the error is
// rethrown. fn must leave no trace of a chunk that threw (append its results only at its end).
// on_shrink(failed, to) is called at each halving with the size that failed and the next (for a
// warning). Returns the last batch size.
#pragma once
#include <cstdint>
#include <functional>

namespace dmtrain::eval {

int64_t for_each_batch(int64_t n, int64_t batch, const std::function<void(int64_t, int64_t)>& fn,
                       const std::function<void(int64_t, int64_t)>& on_shrink = {});

}  // namespace dmtrain::eval
