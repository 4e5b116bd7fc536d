// Upsample / Downsample by a factor 2 in both spatial dimensions (2-D images only).
//   Upsample:   nearest-neighbour x2, then (use_conv) a 3x3 conv named "conv".
//   Downsample: (use_conv) a stride-2 3x3 conv named "op", else 2x2 average pooling.
// Names and shapes match the references' Upsample.conv / Downsample.op.
#pragma once
#include <cstdint>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "dmtrain/models/kernel_options.hpp"

namespace dmtrain::models {

struct ResampleOptions {
  ResampleOptions(int64_t channels, bool use_conv) : channels_(channels), use_conv_(use_conv) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(bool, use_conv);
  // -1 = channels. Only a conv may change the width.
  TORCH_ARG(int64_t, out_channels) = -1;
  TORCH_ARG(KernelOptions, kernels);  // fast_conv_bias, fast_avg_pool
};

class UpsampleImpl : public torch::nn::Cloneable<UpsampleImpl> {
 public:
  explicit UpsampleImpl(ResampleOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  ResampleOptions options;
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

class DownsampleImpl : public torch::nn::Cloneable<DownsampleImpl> {
 public:
  explicit DownsampleImpl(ResampleOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  ResampleOptions options;
  torch::nn::Conv2d op{nullptr};
};
TORCH_MODULE(Downsample);

// The parameter-free halves, shared with ResBlock's up/down path.
torch::Tensor upsample_nearest2x(const torch::Tensor& x);
// 2x2 average pooling, stride 2 (odd rows and columns dropped, as avg_pool2d does). With `fast`
// (KernelOptions::fast_avg_pool) and even H and W, its gradient is taken as the
// nearest upsampling of dL/dy / 4 instead of by ATen's avg_pool2d backward: the same values to
// the bit, several times faster channels-last on CUDA (docs/benchmarks.md).
torch::Tensor avg_pool2x(const torch::Tensor& x, bool fast);

}  // namespace dmtrain::models
