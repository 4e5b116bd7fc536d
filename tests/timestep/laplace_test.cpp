// Laplace log-SNR timestep sampling (timestep/laplace_sampler.hpp) against hand-worked bin masses.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <vector>

#include "dmtrain/timestep/factory.hpp"
#include "dmtrain/timestep/laplace_sampler.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::timestep;

namespace {

// abar_t = sigmoid(lambda_t) for log SNRs lambda = {2, 1, 0, -1, -2}: the bin edges half-way in
// lambda are 1.5, 0.5, -0.5, -1.5 (and +-inf at the ends).
at::Tensor abar_for_lambdas() {
  std::vector<double> a;
  for (const double l : {2.0, 1.0, 0.0, -1.0, -2.0}) a.push_back(1.0 / (1.0 + std::exp(-l)));
  return at::tensor(a, at::kDouble);
}

void expect_near(const at::Tensor& x, const std::vector<double>& want, double tol) {
  ASSERT_EQ(x.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(x[static_cast<int64_t>(i)].item<double>(), want[i], tol) << "t = " << i;
  }
}

}  // namespace

TEST(LaplaceSampler, BinMassesOfTheLaplaceCdf) {
  // mu 0, b 0.5: F(1.5) = 1 - e^-3 / 2, F(0.5) = 1 - e^-1 / 2, F(-0.5) = e^-1 / 2,
  // F(-1.5) = e^-3 / 2; p = {1 - F(1.5), F(1.5) - F(0.5), F(0.5) - F(-0.5), ...}
  const double e1 = std::exp(-1.0), e3 = std::exp(-3.0);
  expect_near(laplace_probabilities(abar_for_lambdas(), 0.0, 0.5),
              {e3 / 2, (e1 - e3) / 2, 1 - e1, (e1 - e3) / 2, e3 / 2}, 1e-12);
  // mu 0.5, b 1: the edge 0.5 sits on mu (F = 1/2); F(1.5) = 1 - e^-1 / 2, F(-0.5) = e^-1 / 2,
  // F(-1.5) = e^-2 / 2
  const double e2 = std::exp(-2.0);
  expect_near(laplace_probabilities(abar_for_lambdas(), 0.5, 1.0),
              {e1 / 2, 0.5 - e1 / 2, 0.5 - e1 / 2, (e1 - e2) / 2, e2 / 2}, 1e-12);
}

TEST(LaplaceSampler, PeaksWhereLogSnrCrossesMuOnTheCosineSchedule) {
  // Cosine schedule, T = 4000 (the study's): p sums to 1, every t is drawable, and the mode is
  // the step whose log SNR is nearest mu = 0, i.e. abar nearest 1/2.
  const int T = 4000;
  const double pi = std::acos(-1.0);
  auto f = [&](double u) { return std::pow(std::cos((u + 0.008) / 1.008 * pi / 2), 2); };
  std::vector<double> abar(T);
  double prod = 1.0;
  for (int i = 0; i < T; ++i) {
    prod *= 1.0 - std::min(1.0 - f((i + 1.0) / T) / f(static_cast<double>(i) / T), 0.999);
    abar[i] = prod;
  }
  const auto ac = at::tensor(abar, at::kDouble);
  const auto p = laplace_probabilities(ac, 0.0, 0.5);
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);
  EXPECT_GT(p.min().item<double>(), 0.0);
  const int64_t mode = p.argmax().item<int64_t>();
  const int64_t half = (ac - 0.5).abs().argmin().item<int64_t>();
  EXPECT_LE(std::abs(mode - half), 1);
  // Under cosine, lambda falls about linearly in t in the middle, so most mass lies near the
  // middle: |lambda| < 1 (two scales b each side) holds 1 - e^-2 = 86.5% of the Laplace mass.
  const auto lambda = (ac / (1.0 - ac)).log();
  const double inner = p.masked_select(lambda.abs() < 1.0).sum().item<double>();
  EXPECT_NEAR(inner, 1.0 - std::exp(-2.0), 0.002);
}

TEST(LaplaceSampler, DrawsFollowProbabilitiesWeighOneAndFactoryValidates) {
  TimestepSamplerOptions o;
  o.kind = "laplace";
  o.num_timesteps = 5;
  o.alphas_cumprod = abar_for_lambdas();
  auto s = make_sampler(o);
  EXPECT_EQ(s->name(), "laplace");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto d = s->sample(200000, 0, gen);
  const auto freq = at::bincount(d.t, {}, 5).to(at::kDouble) / 200000.0;
  const double e1 = std::exp(-1.0), e3 = std::exp(-3.0);
  expect_near(freq, {e3 / 2, (e1 - e3) / 2, 1 - e1, (e1 - e3) / 2, e3 / 2}, 0.004);
  EXPECT_EQ(d.weights.sum().item<float>(), 200000.0f);
  EXPECT_FALSE(d.loss_weights.defined());
  o.laplace.b = 0.0;
  try {
    make_sampler(o);
    FAIL() << "b = 0 accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("timestep.laplace.b"), std::string::npos) << e.what();
  }
}
