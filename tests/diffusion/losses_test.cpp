// losses.hpp: hand-worked values, then ID's losses.py on random inputs (fixtures.npz).
#include <gtest/gtest.h>

#include <cmath>

#include "dmtrain/diffusion/losses.hpp"
#include "fixtures.hpp"

namespace dd = dmtrain::diffusion;
using dd::testing::fx;

namespace {
at::Tensor s(double v) {
  return at::full({1}, v, at::kFloat);
}
double v(const at::Tensor& t) {
  return t.item<double>();
}
}  // namespace

TEST(Losses, NormalKlHandValues) {
  EXPECT_NEAR(v(dd::normal_kl(s(0), s(0), s(0), s(0))), 0.0, 1e-7);
  EXPECT_NEAR(v(dd::normal_kl(s(1), s(0), s(0), s(0))), 0.5, 1e-7);
  // KL(N(0,4) || N(0,1)) = 0.5 (4 - 1 - log 4)
  EXPECT_NEAR(v(dd::normal_kl(s(0), s(std::log(4.0)), s(0), s(0))), 0.5 * (3 - std::log(4.0)),
              1e-6);
  // KL(N(1,2) || N(-1,0.5)) = 0.5 (-1 + log .5 - log 2 + 2/.5 + 4/.5)
  EXPECT_NEAR(v(dd::normal_kl(s(1), s(std::log(2.0)), s(-1), s(std::log(0.5)))),
              0.5 * (-1 + std::log(0.25) + 4 + 8), 1e-5);
}

TEST(Losses, ApproxCdfIsCloseToPhi) {
  for (double x : {-3.0, -1.0, 0.0, 0.5, 1.96}) {
    const double phi = 0.5 * std::erfc(-x / std::sqrt(2.0));
    EXPECT_NEAR(v(dd::approx_standard_normal_cdf(s(x))), phi, 5e-4) << x;
  }
  EXPECT_EQ(v(dd::approx_standard_normal_cdf(s(0))), 0.5);
}

TEST(Losses, DiscretizedLikelihoodHandValues) {
  // sigma = 1/255 makes the bin [x - 1/255, x + 1/255] span +-1 sigma around the mean.
  auto cdf = [](double u) {
    return 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * (u + 0.044715 * u * u * u)));
  };
  const at::Tensor x = at::tensor({0.0f, -1.0f, 1.0f, 0.5f});
  const at::Tensor mean = at::tensor({0.0f, -1.0f, 1.0f, 0.5f - 2.0f / 255});
  const at::Tensor log_scale = at::full({4}, std::log(1.0 / 255), at::kFloat);
  const at::Tensor lp = dd::discretized_gaussian_log_likelihood(x, mean, log_scale);
  EXPECT_NEAR(lp[0].item<double>(), std::log(cdf(1) - cdf(-1)), 1e-5);  // ~log 0.6827
  EXPECT_NEAR(lp[0].item<double>(), std::log(0.682689), 2e-3);
  EXPECT_NEAR(lp[1].item<double>(), std::log(cdf(1)), 1e-5);       // lowest bin: (-inf, x+1/255]
  EXPECT_NEAR(lp[2].item<double>(), std::log(1 - cdf(-1)), 1e-5);  // highest bin: [x-1/255, inf)
  EXPECT_NEAR(lp[3].item<double>(), std::log(cdf(3) - cdf(1)), 1e-4);
  // far outside the bin: clamped at 1e-12
  const at::Tensor far = dd::discretized_gaussian_log_likelihood(s(0), s(0.9), s(std::log(1e-3)));
  EXPECT_NEAR(v(far), std::log(1e-12), 1e-4);
}

TEST(Losses, MatchReferenceOnRandomInputs) {
  const at::Tensor kl =
      dd::normal_kl(fx("helpers/a"), fx("helpers/lv1"), fx("helpers/b"), fx("helpers/lv2"));
  EXPECT_LT(dd::testing::max_rel_err(kl, fx("helpers/normal_kl")), 1e-6);
  const at::Tensor ll = dd::discretized_gaussian_log_likelihood(
      fx("helpers/x"), fx("helpers/a") * 0.5, fx("helpers/lv1") * 0.5 - 2);
  EXPECT_LT(dd::testing::max_rel_err(ll, fx("helpers/dgll")), 1e-6);
}

TEST(Losses, MeanFlat) {
  const at::Tensor x = at::arange(24, at::kFloat).view({2, 3, 4});
  const at::Tensor m = dd::mean_flat(x);
  ASSERT_EQ(m.sizes(), (at::IntArrayRef{2}));
  EXPECT_FLOAT_EQ(m[0].item<float>(), 5.5f);
  EXPECT_FLOAT_EQ(m[1].item<float>(), 17.5f);
}
