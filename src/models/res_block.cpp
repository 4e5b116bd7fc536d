#include "dmtrain/models/res_block.hpp"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "dmtrain/models/channel_bias.hpp"
#include "dmtrain/models/group_norm32.hpp"
#include "dmtrain/models/resample.hpp"

namespace dmtrain::models {

ResBlockImpl::ResBlockImpl(ResBlockOptions options_) : options(options_) {
  reset();
}

void ResBlockImpl::reset() {
  TORCH_CHECK(!(options.up() && options.down()), "ResBlock cannot both upsample and downsample");
  const int64_t in = options.channels();
  const int64_t out = options.out_channels() == -1 ? in : options.out_channels();
  options.out_channels(out);
  using torch::nn::Conv2d;
  using torch::nn::Conv2dOptions;
  const auto norm = [this](int64_t c) { return GroupNorm32Options(c).kernels(options.kernels()); };
  in_layers = register_module("in_layers",
                              torch::nn::Sequential(GroupNorm32(norm(in)), torch::nn::SiLU(),
                                                    Conv2d(Conv2dOptions(in, out, 3).padding(1))));
  emb_layers = register_module(
      "emb_layers",
      torch::nn::Sequential(torch::nn::SiLU(),
                            torch::nn::Linear(options.emb_channels(),
                                              options.use_scale_shift_norm() ? 2 * out : out)));
  Conv2d out_conv(Conv2dOptions(out, out, 3).padding(1));
  {
    // zero_module in the references: every block starts as the identity.
    torch::NoGradGuard no_grad;
    for (auto& p : out_conv->parameters()) p.zero_();
  }
  out_layers = register_module(
      "out_layers", torch::nn::Sequential(GroupNorm32(norm(out)), torch::nn::SiLU(),
                                          torch::nn::Dropout(options.dropout()), out_conv));
  if (out != in) {
    skip_connection = register_module(
        "skip_connection", Conv2d(options.use_conv() ? Conv2dOptions(in, out, 3).padding(1)
                                                     : Conv2dOptions(in, out, 1)));
  } else {
    skip_connection = nullptr;
  }
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& emb) {
  torch::Tensor x = x_in;
  torch::Tensor h;
  // in_layers = [GroupNorm32, SiLU, conv]; norm and SiLU run as one op.
  h = in_layers->at<GroupNorm32Impl>(0).forward_act(x, {}, {}, /*silu=*/true);
  if (options.up() || options.down()) {
    // Resample between the activation and the conv (BigGAN-style), the skip path too.
    const bool fast_pool = options.kernels().fast_avg_pool;
    const auto resample = [&](const torch::Tensor& t) {
      return options.up() ? upsample_nearest2x(t) : avg_pool2x(t, fast_pool);
    };
    h = resample(h);
    x = resample(x);
  }
  const bool fast_bias = options.kernels().fast_conv_bias;
  h = conv2d_forward(in_layers->at<torch::nn::Conv2dImpl>(2), h, fast_bias);
  torch::Tensor emb_out = emb_layers->forward(emb).to(h.scalar_type()).unsqueeze(-1).unsqueeze(-1);
  if (options.use_scale_shift_norm()) {
    auto scale_shift = emb_out.chunk(2, 1);
    h = out_layers->at<GroupNorm32Impl>(0).forward_act(h, scale_shift[0], scale_shift[1],
                                                       /*silu=*/true);
  } else {
    h = out_layers->at<GroupNorm32Impl>(0).forward_act(h + emb_out, {}, {}, /*silu=*/true);
  }
  // out_layers = [GroupNorm32, SiLU, Dropout, conv].
  h = out_layers->at<torch::nn::DropoutImpl>(2).forward(h);
  h = conv2d_forward(out_layers->at<torch::nn::Conv2dImpl>(3), h, fast_bias);
  return (skip_connection ? conv2d_forward(*skip_connection, x, fast_bias) : x) + h;
}

}  // namespace dmtrain::models
