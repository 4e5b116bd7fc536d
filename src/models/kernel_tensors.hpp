// What the LibTorch side of dmtrain's CUDA kernels (group_norm_act.cpp, channel_bias.cpp) reads
// off a tensor before a launch: its element type in the kernels' terms, and whether it is dense
// channels-last. Private to src/models; only built with the kernels.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "group_norm_act_cuda.hpp"  // ElementType

namespace dmtrain::models::detail {

inline cuda::ElementType element_type(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16:
      return cuda::ElementType::kBFloat16;
    case at::kHalf:
      return cuda::ElementType::kFloat16;
    default:
      return cuda::ElementType::kFloat32;
  }
}

// Dense channels-last: [N, C, *spatial] with C innermost (an NHWC tensor, or a [N, C, T] view of
// one, as the attention block's flatten makes).
inline bool is_channels_last_dense(const at::Tensor& x) {
  if (x.stride(1) != 1) return false;
  int64_t expect = x.size(1);
  for (int64_t d = x.dim() - 1; d >= 2; --d) {
    if (x.size(d) != 1 && x.stride(d) != expect) return false;
    expect *= x.size(d);
  }
  return x.size(0) == 1 || x.stride(0) == expect;
}

}  // namespace dmtrain::models::detail
