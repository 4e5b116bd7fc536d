// forward_flops: floating-point operations of one UNet forward pass for one image, counted from
// the architecture plan (unet_plan.hpp), a multiply-add counting as 2 FLOPs.
//
// Counted: every convolution (3x3, 1x1, the strided downsampling conv), the attention blocks'
// qkv and output projections and their two T x T matrix products, and the embedding MLPs.
// Not counted (they are a few percent at most and memory-bound): GroupNorm, SiLU, softmax,
// additions, the nearest-neighbour upsampling and average pooling. The benchmark reports
// achieved TFLOP/s as 3 x forward_flops x images/s (backward ~ 2 x forward).
#pragma once
#include <cstdint>

#include "dmtrain/models/unet_options.hpp"

namespace dmtrain::models {

int64_t forward_flops(const UNetOptions& options);

}  // namespace dmtrain::models
