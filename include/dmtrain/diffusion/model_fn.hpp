// The one thing the diffusion needs from a model: a function of (x_t, t, y).
//
// t is what the model sees: the respaced index already mapped to the original timestep through
// timestep_map and, when rescale_timesteps is on, multiplied by 1000 / T_original as a float32
// tensor (int64 otherwise), exactly as ID's _WrappedModel. y is the class-label tensor [N] or an
// undefined tensor for unconditional models. The output has x's shape, or twice its channels when
// the variance is learned (mean part first, as the reference UNets do).
#pragma once
#include <ATen/ATen.h>

#include <functional>

namespace dmtrain::diffusion {

using ModelFn =
    std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y)>;

}  // namespace dmtrain::diffusion
