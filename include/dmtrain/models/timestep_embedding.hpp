// Sinusoidal timestep embedding of the references (ID/GD nn.timestep_embedding), bit for bit:
//   freqs_i = exp(-ln(max_period) * i / half), i = 0..half-1, computed in float32,
//   emb     = [cos(t * freqs), sin(t * freqs)]  (+ one zero column when dim is odd).
// `timesteps` is a 1-D tensor of the values the model sees (possibly fractional, e.g. ID's
// rescaled t * 1000 / T); any dtype, cast to float32. Returns [N, dim] float32 on its device.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace dmtrain::models {

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim,
                              double max_period = 10000.0);

}  // namespace dmtrain::models
