// for_each_batch against a fake workload that runs out of memory above a chunk size, as a GPU
// shared by several runs does (oom_batches.hpp): every index is covered exactly once and in
// order, the batch halves until it fits and stays there, and errors other than out-of-memory,
// or out-of-memory at size 1, reach the caller. (Which errors are out-of-memory:
// tests/util/out_of_memory_test.cpp.)
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "dmtrain/eval/oom_batches.hpp"

namespace de = dmtrain::eval;

namespace {

[[noreturn]] void throw_oom() {
  throw c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                              "CUDA out of memory. Tried to allocate 5.15 GiB.");
}

}  // namespace

TEST(ForEachBatch, HalvesOnOutOfMemoryAndCoversEveryIndexOnce) {
  std::vector<std::pair<int64_t, int64_t>> done, shrinks;
  const int64_t last = de::for_each_batch(
      1000, 1000,
      [&](int64_t start, int64_t size) {
        if (size > 300) throw_oom();  // fits at 300 or less
        done.emplace_back(start, size);
      },
      [&](int64_t from, int64_t to) { shrinks.emplace_back(from, to); });
  // 1000 -> 500 -> 250; then 250-image chunks throughout (the size that fitted is kept).
  EXPECT_EQ(last, 250);
  const std::vector<std::pair<int64_t, int64_t>> want_shrinks{{1000, 500}, {500, 250}};
  EXPECT_EQ(shrinks, want_shrinks);
  const std::vector<std::pair<int64_t, int64_t>> want{{0, 250}, {250, 250}, {500, 250}, {750, 250}};
  EXPECT_EQ(done, want);
}

TEST(ForEachBatch, ShrinksOnlyWhenAChunkFailsAndHandlesARaggedTail) {
  std::vector<std::pair<int64_t, int64_t>> done;
  int calls = 0;
  de::for_each_batch(10, 4, [&](int64_t start, int64_t size) {
    ++calls;
    if (start == 4 && size > 1 && calls == 2) throw_oom();  // one transient failure
    done.emplace_back(start, size);
  });
  const std::vector<std::pair<int64_t, int64_t>> want{{0, 4}, {4, 2}, {6, 2}, {8, 2}};
  EXPECT_EQ(done, want);
  // A ragged tail that fails reports its own size, not the batch's: 2 -> 1.
  std::vector<std::pair<int64_t, int64_t>> shrinks;
  de::for_each_batch(
      10, 4,
      [&](int64_t start, int64_t size) {
        if (start == 8 && size > 1) throw_oom();
      },
      [&](int64_t failed, int64_t to) { shrinks.emplace_back(failed, to); });
  const std::vector<std::pair<int64_t, int64_t>> want_shrinks{{2, 1}};
  EXPECT_EQ(shrinks, want_shrinks);
}

TEST(ForEachBatch, RethrowsOtherErrorsAndOutOfMemoryAtSizeOne) {
  EXPECT_THROW(de::for_each_batch(8, 8, [](int64_t, int64_t) { throw std::runtime_error("bad"); }),
               std::runtime_error);
  int tries = 0;
  EXPECT_THROW(de::for_each_batch(3, 4,
                                  [&](int64_t, int64_t) {
                                    ++tries;
                                    throw_oom();
                                  }),
               c10::OutOfMemoryError);
  EXPECT_EQ(tries, 3);  // 3 -> 2 -> 1, then the error at size 1 is the caller's
}
