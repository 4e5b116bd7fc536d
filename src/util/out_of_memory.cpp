// Implementation of dmtrain/util/out_of_memory.hpp.
#include "dmtrain/util/out_of_memory.hpp"

#include <c10/util/Exception.h>

#include <cstring>

namespace dmtrain::util {

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const char* m = e.what();
  return std::strstr(m, "CUDA out of memory") != nullptr ||
         std::strstr(m, "can't allocate memory") != nullptr;  // ATen's CPU allocator
}

}  // namespace dmtrain::util
