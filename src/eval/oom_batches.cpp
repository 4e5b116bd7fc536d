// Implementation of dmtrain/eval/oom_batches.hpp.
#include "dmtrain/eval/oom_batches.hpp"

#include <c10/util/Exception.h>

#include <algorithm>
#include <exception>

#include "dmtrain/util/out_of_memory.hpp"

namespace dmtrain::eval {

int64_t for_each_batch(int64_t n, int64_t batch, const std::function<void(int64_t, int64_t)>& fn,
                       const std::function<void(int64_t, int64_t)>& on_shrink) {
  TORCH_CHECK(batch >= 1, "for_each_batch: batch must be >= 1, got ", batch);
  int64_t start = 0;
  while (start < n) {
    const int64_t size = std::min(batch, n - start);
    try {
      fn(start, size);
    } catch (const std::exception& e) {
      if (!util::is_out_of_memory(e) || size == 1) throw;
      const int64_t half = (size + 1) / 2;
      if (on_shrink) on_shrink(size, half);
      batch = half;
      continue;  // the same chunk again, smaller
    }
    start += size;
  }
  return batch;
}

}  // namespace dmtrain::eval
