// TimestepEmbedSequential: the references' container for one UNet block. Children are named
// "0", "1", ... (state_dict keys input_blocks.3.1.qkv.weight, ...); ResBlocks receive the
// timestep embedding, every other child (Conv2d, AttentionBlock, Upsample, Downsample) only x.
// Only those five module types are accepted (TORCH_CHECK in push_back).
#pragma once
#include <memory>

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "dmtrain/models/kernel_options.hpp"

namespace dmtrain::models {

class TimestepEmbedSequentialImpl : public torch::nn::Cloneable<TimestepEmbedSequentialImpl> {
 public:
  TimestepEmbedSequentialImpl() = default;
  void reset() override {}
  // Deep copy: clones every child (Cloneable's default cannot rebuild children added later).
  std::shared_ptr<torch::nn::Module> clone(
      const std::optional<torch::Device>& device = std::nullopt) const override;

  void push_back(std::shared_ptr<torch::nn::Module> layer);
  template <typename M>
  void push_back(const torch::nn::ModuleHolder<M>& holder) {
    push_back(std::static_pointer_cast<torch::nn::Module>(holder.ptr()));
  }
  size_t size() const { return layers_.size(); }
  // The convolution layers' KernelOptions::fast_conv_bias (the other layers hold their own).
  void set_fast_conv_bias(bool on) { fast_conv_bias_ = on; }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb);

 private:
  std::vector<std::shared_ptr<torch::nn::Module>> layers_;
  bool fast_conv_bias_ = KernelOptions{}.fast_conv_bias;
};
TORCH_MODULE(TimestepEmbedSequential);

}  // namespace dmtrain::models
