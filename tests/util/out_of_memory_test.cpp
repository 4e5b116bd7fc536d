// util::is_out_of_memory on the three forms an out-of-memory error reaches dmtrain in: CUDA's
// typed error, the same message rewrapped by TorchScript's interpreter (what the Inception file
// threw in a study arm), and ATen's CPU allocator's enforce failure; other errors are not.
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "dmtrain/util/out_of_memory.hpp"

namespace du = dmtrain::util;

TEST(OutOfMemory, RecognisesTheTypedTheRewrappedAndTheCpuAllocatorsErrors) {
  EXPECT_TRUE(du::is_out_of_memory(
      c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                            "CUDA out of memory. Tried to allocate 5.15 GiB.")));
  // TorchScript's interpreter rethrows a scripted network's OOM as a plain error with the text.
  EXPECT_TRUE(du::is_out_of_memory(std::runtime_error(
      "The following operation failed in the TorchScript interpreter.\nRuntimeError: CUDA out of "
      "memory. Tried to allocate 5.15 GiB.")));
  EXPECT_TRUE(du::is_out_of_memory(std::runtime_error(
      "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
      "you tried to allocate 2048000000000 bytes.")));
  EXPECT_FALSE(du::is_out_of_memory(std::runtime_error("shape mismatch")));
}
