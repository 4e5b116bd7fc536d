// SpeeD and logit-normal timestep samplers against values computed independently from the
// reference formulas (tests/fixtures/timestep/speed_logit_normal_reference.py, standard library
// only).
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <vector>

#include "dmtrain/timestep/factory.hpp"
#include "dmtrain/timestep/logit_normal_sampler.hpp"
#include "dmtrain/timestep/speed_sampler.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::timestep;

namespace {

const std::vector<double> kAbar = {0.99, 0.95, 0.88, 0.75, 0.55, 0.35, 0.2, 0.1, 0.09, 0.088};
const std::vector<double> kSpeedW = {0.43838383838383843,
                                     0.4535353535353535,
                                     0.498989898989899,
                                     0.5646464646464646,
                                     0.6,
                                     0.5747474747474748,
                                     0.5242424242424242,
                                     1.0,
                                     1.0,
                                     1.0};
const std::vector<double> kLogitNormal01 = {
    0.025832766804592122, 0.11013584083683231, 0.1687679748688073,  0.19526341748976828,
    0.19526341748976828,  0.16876797486880735, 0.11013584083683226, 0.025832766804592122};
const std::vector<double> kLogitNormal0507 = {
    0.00023778031432469815, 0.010955867459819524, 0.06317069161826083, 0.1631609226345715,
    0.2686442049478831,     0.29759935865380027,  0.1767973771930793,  0.01943379717826077};

at::Tensor abar() {
  return at::tensor(kAbar, at::kDouble);
}

void expect_near(const at::Tensor& x, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(x.numel(), static_cast<int64_t>(want.size()));
  const auto c = x.to(at::kDouble).contiguous();
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(c[static_cast<int64_t>(i)].item<double>(), want[i], tol) << "t = " << i;
  }
}

}  // namespace

TEST(NumpyGradient, CentralInsideOneSidedAtTheEnds) {
  expect_near(numpy_gradient(at::tensor(std::vector<double>{1, 2, 4, 7, 11}, at::kDouble)),
              {1, 1.5, 2.5, 3.5, 4});
}

TEST(SpeedSampler, ProbabilitiesMeaningfulStepAndWeightsMatchTheReference) {
  SpeedSampler s(abar(), SpeedOptions{});  // tau 0.7 -> 7 of 10 steps, k 5, lambda 0.6
  EXPECT_EQ(s.tau_steps(), 7);
  EXPECT_EQ(s.meaningful_steps(), 9);
  std::vector<double> p(10, 5.0 / 38.0);
  for (int i = 7; i < 10; ++i) p[i] = 1.0 / 38.0;
  expect_near(s.probabilities(0), p);
  expect_near(s.probabilities(123456), p);  // independent of the iteration
  expect_near(s.weights(), kSpeedW);
}

TEST(SpeedSampler, SecondHalfOfTheBatchIsTheDualOfTheFirst) {
  SpeedSampler s(abar(), SpeedOptions{});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t B = 9;  // draws B/2 + 1 = 5, keeps 4 of their duals
  const auto d = s.sample(B, 0, gen);
  ASSERT_EQ(d.t.numel(), B);
  const int64_t m = s.meaningful_steps();
  for (int64_t i = 0; i < B - 5; ++i) {
    const int64_t t = d.t[i].item<int64_t>();
    EXPECT_EQ(d.t[5 + i].item<int64_t>(), t < m ? m - t : t - m) << i;
  }
  // w(t) is a loss weighting (applied to loss_weight.terms), not an importance weight.
  ASSERT_TRUE(d.loss_weights.defined());
  for (int64_t i = 0; i < B; ++i) {
    EXPECT_FLOAT_EQ(d.loss_weights[i].item<float>(),
                    static_cast<float>(kSpeedW[static_cast<size_t>(d.t[i].item<int64_t>())]));
    EXPECT_EQ(d.weights[i].item<float>(), 1.0f);
  }
}

TEST(SpeedSampler, FirstHalfFollowsTheAsymmetricDistribution) {
  SpeedOptions o;
  o.dual = false;
  o.weighting = false;
  SpeedSampler s(abar(), o);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto d = s.sample(200000, 0, gen);
  const double low = (d.t < 7).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(low, 35.0 / 38.0, 0.003);                 // 7 steps of weight 5 against 3 of weight 1
  EXPECT_EQ(d.weights.sum().item<float>(), 200000.0f);  // weighting off: all ones
  EXPECT_FALSE(d.loss_weights.defined());               // and no loss weighting
}

TEST(SpeedSampler, FactoryBuildsItAndValidatesByKey) {
  TimestepSamplerOptions o;
  o.kind = "speed";
  o.num_timesteps = 10;
  o.alphas_cumprod = abar();
  EXPECT_EQ(make_sampler(o)->name(), "speed");
  o.speed.tau = 0.0;
  try {
    make_sampler(o);
    FAIL() << "tau = 0 accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("timestep.speed.tau"), std::string::npos) << e.what();
  }
}

TEST(LogitNormalSampler, BinsTheContinuousDensityExactly) {
  expect_near(logit_normal_probabilities(8, 0.0, 1.0), kLogitNormal01, 1e-14);
  expect_near(logit_normal_probabilities(8, 0.5, 0.7), kLogitNormal0507, 1e-14);
  const auto p = logit_normal_probabilities(4000, 0.0, 1.0);
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);
  // mean 0: symmetric about the middle of [0, 1]
  EXPECT_TRUE(at::allclose(p, p.flip(0), 0, 1e-15));
  EXPECT_GT(p.min().item<double>(), 0.0);
}

TEST(LogitNormalSampler, DrawsFollowProbabilitiesAndWeighOne) {
  LogitNormalSampler s(8, LogitNormalOptions{0.5, 0.7});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto d = s.sample(100000, 5, gen);
  const auto counts = at::bincount(d.t, {}, 8).to(at::kDouble) / 100000.0;
  expect_near(counts, kLogitNormal0507, 0.005);
  EXPECT_EQ(d.weights.sum().item<float>(), 100000.0f);
  TimestepSamplerOptions o;
  o.kind = "logit-normal";
  o.num_timesteps = 8;
  o.logit_normal.std = -1;
  EXPECT_THROW(make_sampler(o), dmtrain::Error);
}
