// Consistency: PSNR against its closed form on hand-made images, the pairwise table, the grid
// layout, and the paper's experiment on tiny models (same seed -> same noise for every model).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "dmtrain/eval/consistency.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/util/error.hpp"
#include "tiny_model.hpp"

namespace {
namespace ev = dmtrain::eval;

TEST(Psnr, ClosedForms) {
  const at::Tensor a = at::full({2, 4, 4, 3}, 100, at::kByte);
  EXPECT_EQ(ev::psnr(a, a), std::numeric_limits<double>::infinity());
  for (int d : {1, 5, 50}) {
    // A constant offset d: MSE = d^2, PSNR = 20 log10(255 / d).
    EXPECT_NEAR(ev::psnr(a, a + d), 20.0 * std::log10(255.0 / d), 1e-12) << d;
  }
  // Half the pixels off by 10, half equal: MSE = 50, PSNR = 10 log10(255^2 / 50).
  at::Tensor b = a.clone();
  b.narrow(0, 0, 1).add_(10);
  EXPECT_NEAR(ev::psnr(a, b), 10.0 * std::log10(255.0 * 255.0 / 50.0), 1e-12);
  // uint8 arithmetic must not wrap: 0 vs 255 everywhere is MSE 255^2, 0 dB.
  EXPECT_NEAR(ev::psnr(at::zeros({3}, at::kByte), at::full({3}, 255, at::kByte)), 0.0, 1e-12);
}

TEST(Psnr, PairwiseTableAndMean) {
  const at::Tensor a = at::full({1, 2, 2, 1}, 50, at::kByte);
  const auto r = ev::pairwise_psnr({a, a + 1, a + 3});
  const double p01 = 20 * std::log10(255.0), p02 = 20 * std::log10(255.0 / 3),
               p12 = 20 * std::log10(255.0 / 2);
  EXPECT_NEAR(r.table[0][1].item<double>(), p01, 1e-12);
  EXPECT_NEAR(r.table[2][0].item<double>(), p02, 1e-12);
  EXPECT_NEAR(r.table[1][2].item<double>(), p12, 1e-12);
  EXPECT_TRUE(std::isinf(r.table[1][1].item<double>()));
  EXPECT_NEAR(r.mean, (p01 + p02 + p12) / 3, 1e-12);
  EXPECT_THROW(ev::pairwise_psnr({a}), dmtrain::Error);
  EXPECT_THROW(ev::pairwise_psnr({a, at::zeros({1, 2, 3, 1}, at::kByte)}), dmtrain::Error);
}

TEST(ConsistencyGrid, OneRowPerModel) {
  const at::Tensor a = at::randint(0, 256, {3, 4, 5, 3}, at::kByte);
  const at::Tensor b = at::randint(0, 256, {3, 4, 5, 3}, at::kByte);
  const at::Tensor g = ev::consistency_grid({a, b}, 2);
  EXPECT_EQ(g.sizes(), at::IntArrayRef({2 * (4 + 2) + 2, 3 * (5 + 2) + 2, 3}));
  // Model 1, image 2 sits in row 1, column 2 exactly (bin-centre mapping is lossless).
  EXPECT_TRUE(at::equal(g.narrow(0, 2 + 6, 4).narrow(1, 2 + 2 * 7, 5), b[2]));
  EXPECT_TRUE(at::equal(g.narrow(0, 2, 4).narrow(1, 2, 5), a[0]));
}

TEST(Consistency, TinyModelsSameNoise) {
  const auto diffusion = ev::testing::tiny_diffusion().respaced("8");
  auto m1 = ev::testing::tiny_model(1), m1b = ev::testing::tiny_model(1),
       m2 = ev::testing::tiny_model(2);
  ev::SampleImagesOptions o;
  o.n = 4;
  o.image_shape = {3, 8, 8};
  o.seed = 9;
  o.sampler = "ddpm";  // per-step noise too: it must be shared as well
  const auto s1 = ev::sample_images(diffusion, ev::testing::fn_of(m1), o).images;
  const auto s1b = ev::sample_images(diffusion, ev::testing::fn_of(m1b), o).images;
  const auto s2 = ev::sample_images(diffusion, ev::testing::fn_of(m2), o).images;
  const auto same = ev::pairwise_psnr({s1, s1b});
  EXPECT_TRUE(std::isinf(same.mean));
  const auto diff = ev::pairwise_psnr({s1, s2});
  EXPECT_TRUE(std::isfinite(diff.mean));
  EXPECT_GT(diff.mean, 0.0);
  // A different seed for the same model changes the noise: finite PSNR as well.
  o.seed = 10;
  const auto s1c = ev::sample_images(diffusion, ev::testing::fn_of(m1), o).images;
  EXPECT_TRUE(std::isfinite(ev::psnr(s1, s1c)));
}

}  // namespace
