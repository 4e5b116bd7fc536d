// UNetOptions: every hyper-parameter of the Improved-Diffusion (ID) / Guided-Diffusion (GD) UNet,
// plus the two recipes the paper trains (method.md sections 3 and 6).
//
// One options type covers both references because GD's UNetModel is a superset of ID's: with
// resblock_updown = false, num_head_channels = -1 and use_new_attention_order = false the GD
// network has exactly ID's modules and state_dict keys. Where the two differ in an unused corner
// (ID uses model_channels for the first conv, GD int(channel_mult[0] * model_channels)) we follow
// GD; the two agree whenever channel_mult[0] == 1, which is every ID recipe.
//
// attention_resolutions holds the references' *downsample rates* ("ds" = image_size / resolution),
// not resolutions: use attention_ds_from_resolutions(image_size, {16, 8}) -> {2, 4} for 32px.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "dmtrain/models/kernel_options.hpp"

namespace dmtrain::models {

struct UNetOptions {
  TORCH_ARG(int64_t, image_size) = 32;
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(int64_t, model_channels) = 128;
  // 2 * in_channels when the model also predicts the variance (learn_sigma); see learn_sigma().
  TORCH_ARG(int64_t, out_channels) = 3;
  TORCH_ARG(int64_t, num_res_blocks) = 2;
  // Downsample rates (1, 2, 4, ...) at which blocks get self-attention.
  TORCH_ARG(std::vector<int64_t>, attention_resolutions) = std::vector<int64_t>{2, 4};
  TORCH_ARG(double, dropout) = 0.0;
  // Per-level width multipliers; fractional values (GD's 0.5 for 512px) are truncated the same
  // way GD does: int(mult * model_channels).
  TORCH_ARG(std::vector<double>, channel_mult) = std::vector<double>{1, 2, 4, 8};
  // Learned 3x3 convs in Upsample/Downsample (else nearest-neighbour / average pooling only).
  TORCH_ARG(bool, conv_resample) = true;
  // 0 = unconditional; otherwise a label_emb table of num_classes rows.
  TORCH_ARG(int64_t, num_classes) = 0;
  TORCH_ARG(int64_t, num_heads) = 1;
  // Fixed channels per head; -1 = use num_heads instead.
  TORCH_ARG(int64_t, num_head_channels) = -1;
  // Heads in the decoder's attention blocks; -1 = num_heads (deprecated in GD, kept for ID).
  TORCH_ARG(int64_t, num_heads_upsample) = -1;
  // FiLM conditioning: GroupNorm(h) * (1 + scale) + shift instead of h + emb.
  TORCH_ARG(bool, use_scale_shift_norm) = false;
  // BigGAN-style residual blocks for up/downsampling (GD) instead of Upsample/Downsample.
  TORCH_ARG(bool, resblock_updown) = false;
  // false = legacy qkv layout (heads split before q/k/v; ID's only layout), true = GD's new one.
  TORCH_ARG(bool, use_new_attention_order) = false;
  // How the layers are computed (kernel_options.hpp): the same weights and outputs either way.
  TORCH_ARG(KernelOptions, kernels);

  // (TORCH_ARG leaves the access at private.)
 public:
  // Sets out_channels to 2 * in_channels (mean and variance) or in_channels; call after
  // in_channels. The references express learn_sigma the same way.
  UNetOptions& learn_sigma(bool on) {
    out_channels_ = on ? 2 * in_channels_ : in_channels_;
    return *this;
  }

  // Throws dmtrain::Error naming the offending field when the options cannot build a UNet
  // (non-positive sizes, channels not divisible into 32 GroupNorm groups, heads not dividing
  // the attention width, image_size not divisible by the total downsampling).
  void validate() const;
};

// image_size / r for each resolution r ("16,8" at 32px -> {2, 4}), as the references' scripts
// convert --attention_resolutions. Throws dmtrain::Error if r does not divide image_size.
std::vector<int64_t> attention_ds_from_resolutions(int64_t image_size,
                                                   const std::vector<int64_t>& resolutions);

// ID's CIFAR10 recipe: 32px, 128 ch, 3 res blocks, mult 1,2,2,2, attention at 16 and 8, 4 heads,
// scale-shift norm, dropout 0.3, learn_sigma (6 outputs). 52,546,438 parameters.
UNetOptions id_cifar10();

// GD's ImageNet128 recipe (the published 128x128_diffusion.pt: num_heads 4, num_head_channels
// left at -1): 256 ch, 2 res blocks, mult 1,1,2,3,4, attention at 32,16,8, resblock_updown,
// scale-shift norm, 1000 classes, learn_sigma. 421,529,606 parameters.
UNetOptions gd_imagenet128();

}  // namespace dmtrain::models
