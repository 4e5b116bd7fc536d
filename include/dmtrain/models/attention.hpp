// Self-attention over the spatial positions of a feature map (the references' AttentionBlock).
//
//   x: [N, C, H, W] -> flatten to [N, C, T]; qkv = qkv(norm(x)) (1x1 Conv1d, C -> 3C);
//   per head (width ch = C / heads): softmax(q^T k / sqrt(ch)) applied to v; out = x + proj_out(a)
//
// Two channel layouts of qkv exist, and a checkpoint is only correct with the one it was
// trained with:
//   legacy (ID, GD default): [N, heads * (q|k|v) * ch] -- heads split first, then q/k/v;
//   new (GD use_new_attention_order): [N, (q|k|v) * heads * ch] -- q/k/v split first.
// The references scale q and k each by ch^-1/4 before the product (for fp16 range); this is
// the same as scaled_dot_product_attention's 1/sqrt(ch), which is what forward uses by default
// (fused kernels on GPU). qkv_attention(..., use_sdpa = false) is the explicit einsum/softmax
// form of the references, kept for testing and for exactness checks.
//
// token_major (with use_sdpa): the same block with its two 1x1 convolutions as matrix products
// over the tokens ([N, T, C] x [C, 3C]), so that q, k and v come out as strided views with the
// head width dense, which SDPA's fused kernels take as they are. The channel-major form needs a
// copy of qkv with T and ch swapped, cuDNN's layout transposes around each 1x1 convolution and,
// in backward, a zero-filled buffer per q/k/v; this one needs a [N, T, C] copy of the normalised
// input when the activations are NCHW (none when they are channels-last) and gives its output in
// the input's layout. Same parameters, same results up to the order of the sums.
#pragma once
#include <cstdint>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "dmtrain/models/group_norm32.hpp"

#include "dmtrain/models/kernel_options.hpp"

namespace dmtrain::models {

// qkv: [N, 3 * C, T] -> [N, C, T].
torch::Tensor qkv_attention(const torch::Tensor& qkv, int64_t num_heads, bool new_order,
                            bool use_sdpa = true);

struct AttentionBlockOptions {
  /* implicit */ AttentionBlockOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(int64_t, num_heads) = 1;
  TORCH_ARG(int64_t, num_head_channels) = -1;  // if != -1, heads = channels / num_head_channels
  TORCH_ARG(bool, use_new_attention_order) = false;
  TORCH_ARG(bool, use_sdpa) = true;
  TORCH_ARG(bool, token_major) = false;  // see above; only with use_sdpa
  TORCH_ARG(KernelOptions, kernels);     // its GroupNorm's
};

class AttentionBlockImpl : public torch::nn::Cloneable<AttentionBlockImpl> {
 public:
  explicit AttentionBlockImpl(AttentionBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  int64_t heads() const;
  // norm(x) as [N, C, T] -> proj_out(attention) as [N, C, T], in the token-major form.
  torch::Tensor token_major_attention(const torch::Tensor& normed);

  AttentionBlockOptions options;
  GroupNorm32 norm{nullptr};
  torch::nn::Conv1d qkv{nullptr};
  torch::nn::Conv1d proj_out{nullptr};  // zero-initialised: the block starts as the identity
};
TORCH_MODULE(AttentionBlock);

}  // namespace dmtrain::models
