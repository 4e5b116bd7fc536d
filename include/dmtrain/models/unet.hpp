// UNetModel of Improved-/Guided-Diffusion, weight-compatible with both references: the
// state_dict has exactly their keys and shapes (time_embed.0.weight, label_emb.weight,
// input_blocks.*, middle_block.*, output_blocks.*, out.2.weight), so their checkpoints load
// unchanged through load_state_dict (state_dict.hpp).
//
// forward(x, timesteps, y): x [N, in_channels, H, W]; timesteps [N], the values the network
// sees (already rescaled by the diffusion if it rescales; float or integer); y [N] int64 class
// labels, given if and only if num_classes > 0. Returns [N, out_channels, H, W] in x's dtype.
// The torso runs in the dtype of its parameters (x is cast to it), the embedding MLP in its
// own, as in the references' fp16 mode.
#pragma once
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include "dmtrain/models/timestep_sequential.hpp"
#include "dmtrain/models/unet_options.hpp"
#include "dmtrain/models/unet_plan.hpp"

namespace dmtrain::models {

class UNetModelImpl : public torch::nn::Cloneable<UNetModelImpl> {
 public:
  // Throws dmtrain::Error if the options are invalid (see UNetOptions::validate).
  explicit UNetModelImpl(UNetOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& timesteps,
                        const torch::Tensor& y = {});
  // Switches how every layer computes (e.g. fused_group_norm off before taking second
  // derivatives); the parameters are untouched.
  void set_kernels(const KernelOptions& kernels);

  UNetOptions options;
  torch::nn::Sequential time_embed{nullptr};  // Linear, SiLU, Linear
  torch::nn::Embedding label_emb{nullptr};    // null when unconditional
  torch::nn::ModuleList input_blocks{nullptr};
  TimestepEmbedSequential middle_block{nullptr};
  torch::nn::ModuleList output_blocks{nullptr};
  torch::nn::Sequential out{nullptr};  // GroupNorm32, SiLU, 3x3 conv (zero-initialised)
};
TORCH_MODULE(UNetModel);

}  // namespace dmtrain::models
