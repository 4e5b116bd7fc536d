// ResBlock: the references' residual block conditioned on the timestep embedding.
//
//   h = in_layers(x)                 GroupNorm32 -> SiLU -> 3x3 conv        (in_layers.0 / .2)
//       (up/down: the resampling sits between the SiLU and the conv, and x is resampled too)
//   e = emb_layers(emb)              SiLU -> Linear(emb, out or 2*out)      (emb_layers.1)
//   scale-shift: h = out_layers[1:](GroupNorm(h) * (1 + scale) + shift), [scale, shift] = e
//   otherwise:   h = out_layers(h + e)
//   out_layers = GroupNorm32 -> SiLU -> Dropout -> 3x3 conv (zero-initialised) (out_layers.0/.3)
//   return skip_connection(x) + h    identity if widths agree, else a 1x1 (or 3x3) conv
//
// Children are held in torch::nn::Sequential so that state_dict keys carry the references'
// indices ("in_layers.2.weight"); forward reaches them by index, never through cached handles,
// so that clone() (which replaces a Sequential's children) keeps the module consistent.
#pragma once
#include <cstdint>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "dmtrain/models/kernel_options.hpp"

namespace dmtrain::models {

struct ResBlockOptions {
  ResBlockOptions(int64_t channels, int64_t emb_channels)
      : channels_(channels), emb_channels_(emb_channels) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(int64_t, emb_channels);
  TORCH_ARG(int64_t, out_channels) = -1;  // -1 = channels
  TORCH_ARG(double, dropout) = 0.0;
  // Skip connection as a 3x3 conv instead of 1x1 when widths differ (unused by the UNets).
  TORCH_ARG(bool, use_conv) = false;
  TORCH_ARG(bool, use_scale_shift_norm) = false;
  TORCH_ARG(bool, up) = false;
  TORCH_ARG(bool, down) = false;
  TORCH_ARG(KernelOptions, kernels);
};

class ResBlockImpl : public torch::nn::Cloneable<ResBlockImpl> {
 public:
  explicit ResBlockImpl(ResBlockOptions options);
  void reset() override;
  // x: [N, channels, H, W]; emb: [N, emb_channels]. Returns [N, out_channels, H', W'].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb);

  ResBlockOptions options;
  torch::nn::Sequential in_layers{nullptr};
  torch::nn::Sequential emb_layers{nullptr};
  torch::nn::Sequential out_layers{nullptr};
  torch::nn::Conv2d skip_connection{nullptr};  // null = identity
};
TORCH_MODULE(ResBlock);

}  // namespace dmtrain::models
