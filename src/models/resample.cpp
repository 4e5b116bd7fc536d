#include "dmtrain/models/resample.hpp"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include "dmtrain/models/channel_bias.hpp"

namespace dmtrain::models {
namespace {

// 2x2 / stride-2 average pooling whose gradient is upsample_nearest(dL/dy * 0.25). Each input
// pixel lies in exactly one window (even H and W, no padding), so ATen's avg_pool2d backward
// computes float(g) / 4 once per input pixel and rounds it to the input's type; here
// float(g) * 0.25 is rounded to that type by the multiply and the upsampling copies it: the same
// value, to the bit. Why: ATen's channels-last avg_pool2d backward took ~900 us a call at the
// ImageNet128 recipe's sizes (4.4% of the step on an H200), where the nearest upsampling is a
// memory-bound copy.
struct AvgPool2xUpsampledGradient : public torch::autograd::Function<AvgPool2xUpsampledGradient> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    ctx->saved_data["channels_last"] = x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
    return at::avg_pool2d(x, {2, 2}, {2, 2});
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    // upsample_nearest2x: in the gradient's dtype whatever autocast says, as in the forward pass
    const at::Tensor dx = upsample_nearest2x(grads[0] * 0.25);
    const auto format = ctx->saved_data["channels_last"].toBool() ? at::MemoryFormat::ChannelsLast
                                                                  : at::MemoryFormat::Contiguous;
    return {dx.contiguous(format)};
  }
};

}  // namespace

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

torch::Tensor avg_pool2x(const torch::Tensor& x, bool fast) {
  TORCH_CHECK(x.dim() == 4, "avg_pool2x: expected [N, C, H, W], got ", x.sizes());
  const bool even = x.size(2) % 2 == 0 && x.size(3) % 2 == 0;
  if (fast && even && x.requires_grad()) {
    return AvgPool2xUpsampledGradient::apply(x);
  }
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
  return conv ? conv2d_forward(*conv, h, options.kernels().fast_conv_bias) : h;
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
  return op ? conv2d_forward(*op, x, options.kernels().fast_conv_bias)
            : avg_pool2x(x, options.kernels().fast_avg_pool);
}

}  // namespace dmtrain::models
