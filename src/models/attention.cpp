#include "dmtrain/models/attention.hpp"

#include <cmath>
#include <vector>

#include <ATen/ATen.h>

namespace dmtrain::models {

torch::Tensor qkv_attention(const torch::Tensor& qkv, int64_t num_heads, bool new_order,
                            bool use_sdpa) {
  TORCH_CHECK(qkv.dim() == 3, "qkv_attention: expected [N, 3C, T], got ", qkv.sizes());
  const int64_t n = qkv.size(0), width = qkv.size(1), length = qkv.size(2);
  TORCH_CHECK(width % (3 * num_heads) == 0, "qkv_attention: width ", width,
              " not divisible by 3 * heads = ", 3 * num_heads);
  const int64_t ch = width / (3 * num_heads);
  // qkv's channels as [N, 3, heads, ch, T] (new order) or [N, heads, 3, ch, T] (legacy): q, k and
  // v are index 0, 1, 2 of dimension `which`.
  const torch::Tensor split = new_order ? qkv.reshape({n, 3, num_heads, ch, length})
                                        : qkv.reshape({n, num_heads, 3, ch, length});
  const int64_t which = new_order ? 1 : 2;
  torch::Tensor a;  // [N, heads, ch, T]
  if (use_sdpa) {
    // softmax(q^T k / sqrt(ch)) v == the references' (q ch^-1/4)^T (k ch^-1/4) form.
    // The fused kernels (flash, memory-efficient, cuDNN) need the head dimension contiguous;
    // given the transposed views, SDPA silently falls back to its math path, which upcasts
    // bf16 to float32 (fp32 GEMMs and softmax: ~15% of the CIFAR10 step). One copy of qkv with
    // T and ch swapped makes q, k, v dense in ch.
    const torch::Tensor packed = split.transpose(-1, -2).contiguous();
    a = at::scaled_dot_product_attention(packed.select(which, 0), packed.select(which, 1),
                                         packed.select(which, 2))
            .transpose(-1, -2);
  } else {
    const torch::Tensor q = split.select(which, 0), k = split.select(which, 1),
                        v = split.select(which, 2);  // [N, heads, ch, T]
    const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(ch)));
    torch::Tensor weight = at::matmul((q * scale).transpose(-1, -2), k * scale);
    weight = at::softmax(weight.to(at::kFloat), -1).to(weight.scalar_type());  // [N,h,T,S]
    a = at::matmul(v, weight.transpose(-1, -2));                               // [N,h,ch,T]
  }
  return a.reshape({n, num_heads * ch, length});
}

AttentionBlockImpl::AttentionBlockImpl(AttentionBlockOptions options_) : options(options_) {
  reset();
}

int64_t AttentionBlockImpl::heads() const {
  return options.num_head_channels() == -1 ? options.num_heads()
                                           : options.channels() / options.num_head_channels();
}

void AttentionBlockImpl::reset() {
  const int64_t c = options.channels();
  TORCH_CHECK(options.num_head_channels() == -1 || c % options.num_head_channels() == 0,
              "AttentionBlock: ", c, " channels not divisible by num_head_channels ",
              options.num_head_channels());
  TORCH_CHECK(heads() > 0 && c % heads() == 0, "AttentionBlock: ", c, " channels not divisible by ",
              heads(), " heads");
  norm = register_module("norm", GroupNorm32(GroupNorm32Options(c).kernels(options.kernels())));
  qkv = register_module("qkv", torch::nn::Conv1d(torch::nn::Conv1dOptions(c, 3 * c, 1)));
  proj_out = register_module("proj_out", torch::nn::Conv1d(torch::nn::Conv1dOptions(c, c, 1)));
  torch::NoGradGuard no_grad;
  for (auto& p : proj_out->parameters()) p.zero_();
}

torch::Tensor AttentionBlockImpl::token_major_attention(const torch::Tensor& normed) {
  const int64_t n = normed.size(0), c = normed.size(1), t = normed.size(2);
  const int64_t h = heads(), ch = c / h;
  // [N, T, C] dense (a no-op for channels-last activations), so that linear folds it into one
  // [N T, C] x [C, 3C] product; a strided batch would take bmm over an expanded weight instead,
  // whose backward sums N per-sample weight gradients.
  const torch::Tensor tokens = normed.transpose(1, 2).contiguous();
  const torch::Tensor qkv_t = at::linear(tokens, qkv->weight.squeeze(-1), qkv->bias);  // [N,T,3C]
  // qkv's channel layouts (see the header) with the tokens first: unbind's backward stacks the
  // three gradients into one buffer (select's would zero-fill one per part).
  const bool new_order = options.use_new_attention_order();
  const std::vector<torch::Tensor> parts =
      (new_order ? qkv_t.view({n, t, 3, h, ch}) : qkv_t.view({n, t, h, 3, ch}))
          .unbind(new_order ? 2 : 3);  // each [N, T, heads, ch]
  const torch::Tensor a = at::scaled_dot_product_attention(
      parts[0].transpose(1, 2), parts[1].transpose(1, 2), parts[2].transpose(1, 2));
  // [N, heads, T, ch] -> [N, T, C] (a view when the kernel wrote it tokens-first, as flash does)
  const torch::Tensor a_t = a.transpose(1, 2).reshape({n, t, c});
  return at::linear(a_t, proj_out->weight.squeeze(-1), proj_out->bias).transpose(1, 2);
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x) {
  const auto sizes = x.sizes().vec();
  const torch::Tensor flat = x.reshape({sizes[0], sizes[1], -1});
  if (options.token_major() && options.use_sdpa()) {
    return (flat + token_major_attention(norm->forward(flat))).reshape(sizes);
  }
  const torch::Tensor h = qkv_attention(qkv->forward(norm->forward(flat)), heads(),
                                        options.use_new_attention_order(), options.use_sdpa());
  return (flat + proj_out->forward(h)).reshape(sizes);
}

}  // namespace dmtrain::models
