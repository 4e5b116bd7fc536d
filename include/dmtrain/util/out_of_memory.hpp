// Whether an exception means the machine ran out of memory: main reports it as a limit to lower
// (exit 2, not "internal error"), and evaluation retries at a smaller batch
// (eval/oom_batches.hpp).
#pragma once
#include <exception>

namespace dmtrain::util {

// True for c10::OutOfMemoryError, for errors that carry CUDA's "out of memory" message through
// a rethrow that lost the type (TorchScript's interpreter rewraps what a scripted network
// throws, as the Inception file is), and for ATen's CPU allocator failing ("can't allocate
// memory", an enforce failure rather than an OutOfMemoryError).
bool is_out_of_memory(const std::exception& e);

}  // namespace dmtrain::util
