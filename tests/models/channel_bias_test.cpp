// train.fast_conv_bias: a convolution as the bias-free convolution plus add_channel_bias gives the
// module's output and gradients (CPU: the split on ATen ops, which checks the stride, padding and
// dilation handling), and on CUDA the vectorised kernels give ATen's broadcast add and its
// float32 bias gradient, NCHW and channels-last, float32 and bf16, packed and scalar paths.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dmtrain/models/channel_bias.hpp"

namespace dm = dmtrain::models;

namespace {

float max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat).cpu() - b.to(torch::kFloat).cpu()).abs().max().item<float>();
}

TEST(FastConvBias, SplitConvolutionEqualsTheModuleOnTheCpu) {
  torch::manual_seed(8);
  for (const auto& opts :
       {torch::nn::Conv2dOptions(6, 10, 3).padding(1),
        torch::nn::Conv2dOptions(6, 10, 3).stride(2).padding(1), torch::nn::Conv2dOptions(6, 10, 1),
        torch::nn::Conv2dOptions(6, 10, 3).padding(2).dilation(2)}) {
    torch::nn::Conv2d conv(opts);
    {
      torch::NoGradGuard no_grad;
      conv->bias.normal_();  // a bias far from zero: the test sees whether it is added
    }
    const torch::Tensor x = torch::randn({2, 6, 9, 8}, torch::requires_grad());
    const torch::Tensor probe = torch::randn_like(conv->forward(x));
    const auto pass = [&](bool fast) {
      for (auto& p : conv->parameters()) p.mutable_grad() = torch::Tensor();
      x.mutable_grad() = torch::Tensor();
      const torch::Tensor y = dm::conv2d_forward(*conv, x, fast);
      (y * probe).sum().backward();
      return std::vector<torch::Tensor>{y.detach(), x.grad(), conv->weight.grad(),
                                        conv->bias.grad()};
    };
    const auto plain = pass(false), fast = pass(true);
    for (size_t i = 0; i < plain.size(); ++i) EXPECT_LT(max_diff(plain[i], fast[i]), 1e-5) << i;
    EXPECT_GT(plain[3].abs().max().item<float>(), 1e-2);  // the bias has a real gradient
  }
}

TEST(FastConvBias, KernelsEqualAtenOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  torch::manual_seed(9);
  struct Case {
    std::vector<int64_t> shape;
    bool channels_last;
  };
  // packed (HW or C a multiple of the pack) and scalar paths (5x5 pixels, 6 channels), a wide
  // channels-last row (2048 channels: 256 bf16 packs, the widest taken; in float32 more than
  // 256 packs, so ATen sums the gradient)
  for (const Case& c : std::vector<Case>{{{4, 64, 16, 16}, false},
                                         {{3, 6, 5, 5}, false},
                                         {{4, 64, 16, 16}, true},
                                         {{3, 6, 5, 5}, true},
                                         {{2, 2048, 2, 2}, true}}) {
    for (const auto type : {torch::kFloat, torch::kBFloat16}) {
      torch::Tensor y = torch::randn(c.shape, torch::kCUDA).to(type);
      if (c.channels_last) y = y.contiguous(at::MemoryFormat::ChannelsLast);
      const torch::Tensor bias = torch::randn({c.shape[1]}, torch::kCUDA).requires_grad_(true);
      const torch::Tensor yv = y.detach().requires_grad_(true);
      const torch::Tensor out = dm::add_channel_bias(yv, bias);
      const torch::Tensor g = torch::randn_like(out);
      out.backward(g);
      const torch::Tensor want = y + bias.detach().to(type).view({1, -1, 1, 1});
      const std::string what = "shape C=" + std::to_string(c.shape[1]) +
                               (c.channels_last ? " channels-last " : " NCHW ") +
                               (type == torch::kFloat ? "f32" : "bf16");
      EXPECT_EQ(out.scalar_type(), type) << what;
      EXPECT_EQ(out.strides(), y.strides()) << what;  // the layout is kept
      EXPECT_EQ(max_diff(out, want), 0.f) << what;    // one rounding of the same float sum
      EXPECT_TRUE(torch::equal(yv.grad(), g)) << what;
      const torch::Tensor want_db = g.to(torch::kDouble).sum({0, 2, 3});
      EXPECT_LT(max_diff(bias.grad(), want_db), 1e-4 * want_db.abs().max().item<double>() + 1e-4)
          << what;
    }
  }
}

}  // namespace
