// for_each_batch against a fake workload that runs out of memory above a chunk size, as a GPU
// shared by several runs does (oom_batches.hpp): every index is covered exactly once and in
// order, the batch halves until it fits and stays there, and errors other than out-of-memory,
// or out-of-memory at size 1, reach the caller.
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
}

TEST(ForEachBatch, RecognisesTheRewrappedMessageAndRethrowsOtherErrors) {
  // TorchScript's interpreter rethrows a scripted network's OOM as a plain error with the text.
  EXPECT_TRUE(de::is_out_of_memory(std::runtime_error(
      "The following operation failed in the TorchScript interpreter.\nRuntimeError: CUDA out of "
      "memory. Tried to allocate 5.15 GiB.")));
  EXPECT_TRUE(de::is_out_of_memory(std::runtime_error(
      "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
      "you tried to allocate 2048000000000 bytes.")));
  EXPECT_FALSE(de::is_out_of_memory(std::runtime_error("shape mismatch")));
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
