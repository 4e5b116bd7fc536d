// The attention block's token-major form (AttentionBlockOptions::token_major) against its
// channel-major form: the same output, input gradient and parameter gradients from the same
// weights, in both qkv layouts and both activation layouts, and the output in the input's
// layout. (The reference implementations' numbers for whole UNets: reference_test.cpp.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dmtrain/models/attention.hpp"

namespace dm = dmtrain::models;

namespace {

struct Pass {
  torch::Tensor out, grad_x;
  std::vector<torch::Tensor> grad_params;
};

// Forward and backward of a block with the weights of `from` (random, proj_out included, which
// starts at zero) on x, with the loss sum(out * probe).
Pass run(bool token_major, bool new_order, const torch::Tensor& x, const torch::Tensor& probe,
         dm::AttentionBlock& from) {
  dm::AttentionBlock block(dm::AttentionBlockOptions(x.size(1))
                               .num_heads(4)
                               .use_new_attention_order(new_order)
                               .token_major(token_major));
  {
    torch::NoGradGuard no_grad;
    const auto src = from->parameters(), dst = block->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  torch::Tensor xi = x.detach().clone().requires_grad_(true);
  if (!x.is_contiguous())
    xi = x.detach().clone(at::MemoryFormat::ChannelsLast).requires_grad_(true);
  Pass p;
  p.out = block->forward(xi);
  (p.out * probe).sum().backward();
  p.grad_x = xi.grad();
  for (const auto& w : block->parameters()) p.grad_params.push_back(w.grad());
  return p;
}

float max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<float>();
}

TEST(AttentionTokenMajor, SameOutputAndGradientsAsChannelMajor) {
  torch::manual_seed(3);
  dm::AttentionBlock weights(dm::AttentionBlockOptions(64).num_heads(4));
  {
    torch::NoGradGuard no_grad;
    for (auto& w : weights->parameters()) w.copy_(torch::randn_like(w) * 0.2);
  }
  const torch::Tensor nchw = torch::randn({2, 64, 6, 5});
  const torch::Tensor probe = torch::randn({2, 64, 6, 5});
  for (const bool new_order : {false, true}) {
    for (const bool channels_last : {false, true}) {
      const torch::Tensor x =
          channels_last ? nchw.contiguous(at::MemoryFormat::ChannelsLast) : nchw;
      const Pass a = run(false, new_order, x, probe, weights);
      const Pass b = run(true, new_order, x, probe, weights);
      const std::string what = std::string("new_order=") + (new_order ? "1" : "0") +
                               " channels_last=" + (channels_last ? "1" : "0");
      EXPECT_LT(max_diff(a.out, b.out), 1e-5) << what;
      EXPECT_LT(max_diff(a.grad_x, b.grad_x), 1e-5) << what;
      ASSERT_EQ(a.grad_params.size(), b.grad_params.size());
      for (size_t i = 0; i < a.grad_params.size(); ++i) {
        EXPECT_LT(max_diff(a.grad_params[i], b.grad_params[i]), 1e-4) << what << " param " << i;
      }
      // The attention is not the identity here (proj_out is not zero): the test has teeth.
      EXPECT_GT(max_diff(b.out, x), 1e-2) << what;
      // The output keeps the activations' layout, so a channels-last network stays one.
      EXPECT_EQ(b.out.is_contiguous(at::MemoryFormat::ChannelsLast) && !b.out.is_contiguous(),
                channels_last)
          << what;
    }
  }
}

TEST(AttentionTokenMajor, OnlyWithSdpa) {
  // token_major changes how the fused path runs; the explicit reference form stays as it was.
  torch::manual_seed(4);
  dm::AttentionBlock explicit_form(
      dm::AttentionBlockOptions(32).num_heads(2).use_sdpa(false).token_major(true));
  {
    torch::NoGradGuard no_grad;
    for (auto& w : explicit_form->parameters()) w.copy_(torch::randn_like(w) * 0.2);
  }
  dm::AttentionBlock plain(dm::AttentionBlockOptions(32).num_heads(2).use_sdpa(false));
  {
    torch::NoGradGuard no_grad;
    const auto src = explicit_form->parameters(), dst = plain->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  const torch::Tensor x = torch::randn({1, 32, 4, 4});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(explicit_form->forward(x), plain->forward(x)));
}

}  // namespace
