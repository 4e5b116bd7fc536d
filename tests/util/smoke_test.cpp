#include <gtest/gtest.h>
#include <torch/torch.h>

TEST(Smoke, TensorArithmetic) { EXPECT_EQ((torch::ones({2, 2}) * 3).sum().item<float>(), 12.f); }
