#include "dmtrain/models/resample.hpp"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include "dmtrain/models/channel_bias.hpp"

namespace dmtrain::models {

torch::Tensor upsample_nearest2x(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "upsample: expected [N, C, H, W], got ", x.sizes());
  // CUDA autocast runs upsample_nearest2d in float32 (it is on autocast's fp32 list, for the
  // interpolating modes' sake): a bf16 input became a float32 copy, a float32 output and a
  // float32 backward (128 us a call in the CIFAR10 step). Nearest upsampling only copies values,
  // and its backward sums four gradients in float32 whatever the dtype (the kernels' accumulate
  // type) before one rounding, so running it in the input's dtype gives the same numbers where
  // a convolution follows (ID's Upsample). Where the upsampled tensor is added to a bf16 one
  // without a convolution between (GD's up ResBlocks' skip path), the sum is now bf16 like the
  // rest of the autocast residual stream instead of float32.
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return at::upsample_nearest2d(x, {2 * x.size(2), 2 * x.size(3)});
}

torch::Tensor avg_pool2x(const torch::Tensor& x) {
  return at::avg_pool2d(x, {2, 2}, {2, 2});
}

UpsampleImpl::UpsampleImpl(ResampleOptions options_) : options(options_) {
  reset();
}

void UpsampleImpl::reset() {
  const int64_t out = options.out_channels() == -1 ? options.channels() : options.out_channels();
  TORCH_CHECK(options.use_conv() || out == options.channels(),
              "Upsample without a conv cannot change the channel count");
  if (options.use_conv()) {
    conv = register_module(
        "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.channels(), out, 3).padding(1)));
  }
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(1) == options.channels(), "Upsample: expected ", options.channels(),
              " channels, got ", x.size(1));
  torch::Tensor h = upsample_nearest2x(x);
  return conv ? conv2d_forward(*conv, h) : h;
}

DownsampleImpl::DownsampleImpl(ResampleOptions options_) : options(options_) {
  reset();
}

void DownsampleImpl::reset() {
  const int64_t out = options.out_channels() == -1 ? options.channels() : options.out_channels();
  TORCH_CHECK(options.use_conv() || out == options.channels(),
              "Downsample without a conv cannot change the channel count");
  if (options.use_conv()) {
    op = register_module(
        "op", torch::nn::Conv2d(
                  torch::nn::Conv2dOptions(options.channels(), out, 3).stride(2).padding(1)));
  }
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(1) == options.channels(), "Downsample: expected ", options.channels(),
              " channels, got ", x.size(1));
  return op ? conv2d_forward(*op, x) : avg_pool2x(x);
}

}  // namespace dmtrain::models
