// avg_pool2x with train.fast_avg_pool: the gradient taken as an upsampling equals ATen's
// avg_pool2d backward to the bit (float32 and bf16, NCHW and channels-last, CPU and CUDA) and a
// hand-worked gradient (each pixel gets a quarter of its window's dL/dy).
// upsample_nearest2x under CUDA autocast: it stays in the input's dtype (autocast would run it in
// float32) and gives the float32 path's numbers exactly, forward and backward. The CPU test
// checks the values against a hand-built nearest upsampling.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include "dmtrain/models/resample.hpp"

namespace dm = dmtrain::models;

namespace {

TEST(UpsampleNearest2x, RepeatsEachPixelTwiceInBothDirections) {
  const torch::Tensor x = torch::arange(2 * 3 * 2 * 3, torch::kFloat).reshape({2, 3, 2, 3});
  const torch::Tensor expected = x.repeat_interleave(2, 2).repeat_interleave(2, 3);
  EXPECT_TRUE(torch::equal(dm::upsample_nearest2x(x), expected));
}

TEST(UpsampleNearest2x, StaysBf16UnderCudaAutocastWithTheFloat32Numbers) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({4, 8, 6, 5}, torch::kCUDA).to(torch::kBFloat16);
  const torch::Tensor g = torch::randn({4, 8, 12, 10}, torch::kCUDA).to(torch::kBFloat16);
  // float32 reference: what autocast did before (upsample in float32, gradient rounded once)
  torch::Tensor xf = x.detach().clone().requires_grad_(true);
  const torch::Tensor yf = at::upsample_nearest2d(xf.to(torch::kFloat), {12, 10});
  yf.backward(g.to(torch::kFloat));
  // under autocast
  torch::Tensor xb = x.detach().clone().requires_grad_(true);
  torch::Tensor yb;
  {
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    yb = dm::upsample_nearest2x(xb);
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  yb.backward(g);
  EXPECT_TRUE(torch::equal(yb.to(torch::kFloat), yf));
  EXPECT_TRUE(torch::equal(xb.grad(), xf.grad())) << "both gradients are bf16 roundings of "
                                                     "the same float32 sums";
}

// The gradient of avg_pool2x(x) against dL/dy = g with the switch as given, and the output.
std::pair<torch::Tensor, torch::Tensor> pool_and_grad(const torch::Tensor& x,
                                                      const torch::Tensor& g, bool fast) {
  torch::Tensor leaf = x.detach().clone().requires_grad_(true);
  const torch::Tensor y = dm::avg_pool2x(leaf, fast);
  y.backward(g);
  return {y.detach(), leaf.grad()};
}

void expect_same_as_aten(const torch::Device& device) {
  torch::manual_seed(3);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      for (const int64_t h : {8, 7}) {  // 7: odd, the ATen path (a row dropped) either way
        SCOPED_TRACE(testing::Message() << dtype << " " << format << " H=" << h);
        const torch::Tensor x = torch::randn({3, 16, h, 6}, device).to(dtype).contiguous(format);
        // small and large magnitudes: the quarter must round exactly as ATen's division does
        const torch::Tensor g =
            (torch::randn({3, 16, h / 2, 3}, device) *
             torch::pow(10.0, torch::randint(-30, 30, {3, 16, h / 2, 3},
                                             torch::TensorOptions(device).dtype(torch::kFloat))))
                .to(dtype)
                .contiguous(format);
        const auto [y_fast, dx_fast] = pool_and_grad(x, g, true);
        const auto [y_aten, dx_aten] = pool_and_grad(x, g, false);
        EXPECT_TRUE(torch::equal(y_fast, y_aten));
        EXPECT_EQ(dx_fast.scalar_type(), dtype);
        EXPECT_TRUE(torch::equal(dx_fast, dx_aten));
        EXPECT_EQ(dx_fast.is_contiguous(format), true) << "the gradient keeps x's layout";
      }
    }
  }
}

TEST(AvgPool2x, UpsampledGradientIsAtensBackwardToTheBitOnTheCpu) {
  expect_same_as_aten(torch::kCPU);
}

TEST(AvgPool2x, UpsampledGradientIsAtensBackwardToTheBitOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  expect_same_as_aten(torch::kCUDA);
}

TEST(AvgPool2x, EachPixelGetsAQuarterOfItsWindowsGradient) {
  const torch::Tensor x = torch::arange(16, torch::kFloat).reshape({1, 1, 4, 4});
  const torch::Tensor g = torch::tensor({1.0F, 2.0F, 3.0F, 4.0F}).reshape({1, 1, 2, 2});
  const auto [y, dx] = pool_and_grad(x, g, true);
  // windows {0,1,4,5} {2,3,6,7} {8,9,12,13} {10,11,14,15}: means 2.5 4.5 10.5 12.5
  EXPECT_TRUE(torch::equal(y, torch::tensor({2.5F, 4.5F, 10.5F, 12.5F}).reshape({1, 1, 2, 2})));
  const torch::Tensor expected = torch::tensor({0.25F, 0.25F, 0.5F, 0.5F,  //
                                                0.25F, 0.25F, 0.5F, 0.5F,  //
                                                0.75F, 0.75F, 1.0F, 1.0F,  //
                                                0.75F, 0.75F, 1.0F, 1.0F})
                                     .reshape({1, 1, 4, 4});
  EXPECT_TRUE(torch::equal(dx, expected));
}

}  // namespace
