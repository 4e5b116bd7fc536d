// KernelOptions: how the UNet's layers are computed, never what they compute. Each switch picks
// an implementation of the same op (the same values, or the same values up to the order of a
// float32 sum); the model's parameters, outputs and checkpoints do not depend on them. They
// travel with the model's options (UNetOptions::kernels) to every layer that has a choice; the
// config's train.* keys bind this struct directly (config/schema.cpp), so each switch has one
// home: here. docs/benchmarks.md measures what each pays.
#pragma once

namespace dmtrain::models {

struct KernelOptions {
  // GroupNorm (+ scale/shift + SiLU) as dmtrain's fused CUDA kernels (group_norm_act.hpp); off:
  // the references' chain of ATen ops. Their backward is not differentiable again: a model whose
  // second derivatives are taken (the loss-landscape Hessian) is built with it off.
  bool fused_group_norm = true;
  // Channels-last activations: the fused kernels that read whole pixel rows.
  bool group_norm_rows = false;
  // NCHW: the fused backward that reads x and dL/dy once (the same bits as the two-pass one).
  bool group_norm_cached_backward = false;
  // Convolution biases added by dmtrain's kernels (channel_bias.hpp).
  bool fast_conv_bias = true;
  // 2x2 average pooling's gradient as a nearest upsampling of dL/dy / 4 (resample.hpp).
  bool fast_avg_pool = true;
  // Attention's 1x1 convolutions as token-major matrix products (attention.hpp).
  bool attention_token_major = true;
};

}  // namespace dmtrain::models
