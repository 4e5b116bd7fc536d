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

}  // namespace
