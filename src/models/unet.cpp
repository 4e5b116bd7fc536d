#include "dmtrain/models/unet.hpp"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "dmtrain/models/attention.hpp"
#include "dmtrain/models/channel_bias.hpp"
#include "dmtrain/models/group_norm32.hpp"
#include "dmtrain/models/res_block.hpp"
#include "dmtrain/models/resample.hpp"
#include "dmtrain/models/timestep_embedding.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::models {
namespace {

std::shared_ptr<torch::nn::Module> build_layer(const LayerSpec& l, const UNetOptions& o,
                                               int64_t emb_dim) {
  switch (l.kind) {
    case LayerKind::kConv:
      return torch::nn::Conv2d(
                 torch::nn::Conv2dOptions(l.in_channels, l.out_channels, 3).padding(1))
          .ptr();
    case LayerKind::kResBlock:
      return ResBlock(ResBlockOptions(l.in_channels, emb_dim)
                          .out_channels(l.out_channels)
                          .dropout(o.dropout())
                          .use_scale_shift_norm(o.use_scale_shift_norm())
                          .up(l.up)
                          .down(l.down)
                          .kernels(o.kernels()))
          .ptr();
    case LayerKind::kAttention:
      // The plan already resolved num_head_channels into a head count.
      return AttentionBlock(AttentionBlockOptions(l.in_channels)
                                .num_heads(l.num_heads)
                                .use_new_attention_order(o.use_new_attention_order())
                                .token_major(o.kernels().attention_token_major)
                                .kernels(o.kernels()))
          .ptr();
    case LayerKind::kDownsample:
      return Downsample(ResampleOptions(l.in_channels, o.conv_resample())
                            .out_channels(l.out_channels)
                            .kernels(o.kernels()))
          .ptr();
    case LayerKind::kUpsample:
      return Upsample(ResampleOptions(l.in_channels, o.conv_resample())
                          .out_channels(l.out_channels)
                          .kernels(o.kernels()))
          .ptr();
  }
  TORCH_CHECK(false, "unknown layer kind");
}

TimestepEmbedSequential build_block(const std::vector<LayerSpec>& layers, const UNetOptions& o,
                                    int64_t emb_dim) {
  TimestepEmbedSequential block;
  block->set_fast_conv_bias(o.kernels().fast_conv_bias);
  for (const auto& l : layers) block->push_back(build_layer(l, o, emb_dim));
  return block;
}

}  // namespace

UNetModelImpl::UNetModelImpl(UNetOptions options_) : options(std::move(options_)) {
  reset();
}

void UNetModelImpl::reset() {
  const UNetPlan plan = plan_unet(options);
  const int64_t mc = options.model_channels();
  time_embed = register_module(
      "time_embed", torch::nn::Sequential(torch::nn::Linear(mc, plan.emb_dim), torch::nn::SiLU(),
                                          torch::nn::Linear(plan.emb_dim, plan.emb_dim)));
  if (options.num_classes() > 0) {
    label_emb =
        register_module("label_emb", torch::nn::Embedding(options.num_classes(), plan.emb_dim));
  } else {
    label_emb = nullptr;
  }
  input_blocks = register_module("input_blocks", torch::nn::ModuleList());
  for (const auto& b : plan.input_blocks)
    input_blocks->push_back(build_block(b, options, plan.emb_dim));
  middle_block =
      register_module("middle_block", build_block(plan.middle_block, options, plan.emb_dim));
  output_blocks = register_module("output_blocks", torch::nn::ModuleList());
  for (const auto& b : plan.output_blocks) {
    output_blocks->push_back(build_block(b, options, plan.emb_dim));
  }
  torch::nn::Conv2d out_conv(
      torch::nn::Conv2dOptions(plan.input_ch, options.out_channels(), 3).padding(1));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : out_conv->parameters()) p.zero_();
  }
  out = register_module(
      "out", torch::nn::Sequential(
                 GroupNorm32(GroupNorm32Options(plan.final_ch).kernels(options.kernels())),
                 torch::nn::SiLU(), out_conv));
}

void UNetModelImpl::set_kernels(const KernelOptions& k) {
  options.kernels(k);
  for (const auto& m : modules(/*include_self=*/false)) {
    if (auto* n = m->as<GroupNorm32Impl>()) n->options.kernels(k);
    if (auto* b = m->as<ResBlockImpl>()) b->options.kernels(k);
    if (auto* a = m->as<AttentionBlockImpl>())
      a->options.kernels(k).token_major(k.attention_token_major);
    if (auto* u = m->as<UpsampleImpl>()) u->options.kernels(k);
    if (auto* d = m->as<DownsampleImpl>()) d->options.kernels(k);
    if (auto* s = m->as<TimestepEmbedSequentialImpl>()) s->set_fast_conv_bias(k.fast_conv_bias);
  }
}

torch::Tensor UNetModelImpl::forward(const torch::Tensor& x, const torch::Tensor& timesteps,
                                     const torch::Tensor& y) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in_channels(),
              "UNetModel: expected x of shape [N, ", options.in_channels(), ", H, W], got ",
              x.sizes());
  TORCH_CHECK(timesteps.dim() == 1 && timesteps.size(0) == x.size(0),
              "UNetModel: timesteps must be [N] with N = ", x.size(0), ", got ", timesteps.sizes());
  TORCH_CHECK(y.defined() == (options.num_classes() > 0),
              "UNetModel: pass y if and only if the model is class-conditional (num_classes = ",
              options.num_classes(), ")");
  torch::Tensor emb = time_embed->forward(timestep_embedding(timesteps, options.model_channels()));
  if (label_emb) {
    TORCH_CHECK(y.dim() == 1 && y.size(0) == x.size(0), "UNetModel: y must be [N], got ",
                y.sizes());
    emb = emb + label_emb->forward(y);
  }
  // The torso runs in its parameters' dtype (the references' inner_dtype).
  const auto torso_dtype = input_blocks->ptr(0)->parameters().front().scalar_type();
  torch::Tensor h = x.to(torso_dtype);
  std::vector<torch::Tensor> skips;
  skips.reserve(input_blocks->size());
  for (const auto& block : *input_blocks) {
    h = block->as<TimestepEmbedSequentialImpl>()->forward(h, emb);
    skips.push_back(h);
  }
  h = middle_block->forward(h, emb);
  for (const auto& block : *output_blocks) {
    h = at::cat({h, skips.back()}, 1);
    skips.pop_back();
    h = block->as<TimestepEmbedSequentialImpl>()->forward(h, emb);
  }
  // out = [GroupNorm32, SiLU, conv]; norm and SiLU run as one op.
  h = out->at<GroupNorm32Impl>(0).forward_act(h.to(x.scalar_type()), {}, {}, /*silu=*/true);
  return conv2d_forward(out->at<torch::nn::Conv2dImpl>(2), h, options.kernels().fast_conv_bias);
}

}  // namespace dmtrain::models
