#include "dmtrain/models/timestep_sequential.hpp"

#include <string>

#include <torch/nn/modules/conv.h>

#include "dmtrain/models/attention.hpp"
#include "dmtrain/models/channel_bias.hpp"
#include "dmtrain/models/res_block.hpp"
#include "dmtrain/models/resample.hpp"

namespace dmtrain::models {

std::shared_ptr<torch::nn::Module> TimestepEmbedSequentialImpl::clone(
    const std::optional<torch::Device>& device) const {
  auto copy = std::make_shared<TimestepEmbedSequentialImpl>();
  copy->fast_conv_bias_ = fast_conv_bias_;
  for (const auto& layer : layers_) copy->push_back(layer->clone(device));
  return copy;
}

void TimestepEmbedSequentialImpl::push_back(std::shared_ptr<torch::nn::Module> layer) {
  TORCH_CHECK(layer, "TimestepEmbedSequential: null layer");
  TORCH_CHECK(layer->as<ResBlockImpl>() || layer->as<AttentionBlockImpl>() ||
                  layer->as<torch::nn::Conv2dImpl>() || layer->as<UpsampleImpl>() ||
                  layer->as<DownsampleImpl>(),
              "TimestepEmbedSequential: unsupported layer ", layer->name());
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
}

torch::Tensor TimestepEmbedSequentialImpl::forward(const torch::Tensor& x,
                                                   const torch::Tensor& emb) {
  torch::Tensor h = x;
  for (const auto& layer : layers_) {
    if (auto* res = layer->as<ResBlockImpl>()) {
      h = res->forward(h, emb);
    } else if (auto* attn = layer->as<AttentionBlockImpl>()) {
      h = attn->forward(h);
    } else if (auto* conv = layer->as<torch::nn::Conv2dImpl>()) {
      h = conv2d_forward(*conv, h, fast_conv_bias_);
    } else if (auto* up = layer->as<UpsampleImpl>()) {
      h = up->forward(h);
    } else {
      h = layer->as<DownsampleImpl>()->forward(h);
    }
  }
  return h;
}

}  // namespace dmtrain::models
