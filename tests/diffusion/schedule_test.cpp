// Closed-form checks of the beta schedules, the float64 tables and respacing, worked by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "dmtrain/diffusion/beta_schedule.hpp"
#include "dmtrain/diffusion/respace.hpp"
#include "dmtrain/diffusion/schedule.hpp"
#include "dmtrain/util/error.hpp"

namespace dd = dmtrain::diffusion;

namespace {
double at_(const at::Tensor& v, int64_t i) {
  return v[i].item<double>();
}
}  // namespace

TEST(BetaSchedule, LinearEndpointsAndScale) {
  const at::Tensor b = dd::named_beta_schedule("linear", 1000);
  ASSERT_EQ(b.scalar_type(), at::kDouble);
  ASSERT_EQ(b.size(0), 1000);
  EXPECT_DOUBLE_EQ(at_(b, 0), 1e-4);
  EXPECT_DOUBLE_EQ(at_(b, 999), 0.02);
  EXPECT_NEAR(at_(b, 500), 1e-4 + 500 * (0.02 - 1e-4) / 999, 1e-15);
  // T = 4000: scaled by 1000/T, so the ends are 2.5e-5 and 5e-3.
  const at::Tensor b4 = dd::named_beta_schedule("linear", 4000);
  EXPECT_DOUBLE_EQ(at_(b4, 0), 2.5e-5);
  EXPECT_DOUBLE_EQ(at_(b4, 3999), 5e-3);
}

TEST(BetaSchedule, LinearAlphasCumprodByHand) {
  // abar_t = prod_{s<=t} (1 - beta_s), with beta_s = 1e-4 + s * (0.02 - 1e-4) / 999.
  const dd::Schedule s = dd::Schedule::from_betas(dd::named_beta_schedule("linear", 1000));
  for (int64_t t : {0, 1, 10, 499, 999}) {
    double prod = 1.0;
    for (int64_t k = 0; k <= t; ++k) prod *= 1.0 - (1e-4 + k * (0.02 - 1e-4) / 999);
    EXPECT_NEAR(at_(s.alphas_cumprod, t), prod, 1e-12 * std::max(prod, 1e-3)) << "t=" << t;
  }
  EXPECT_NEAR(at_(s.alphas_cumprod, 999), 4.035829e-05, 1e-10);  // the well-known abar_T
}

TEST(BetaSchedule, CosineAlphasCumprodIsTheClosedForm) {
  // Before the 0.999 cap bites, abar_t = f((t+1)/T) / f(0) with f(s) = cos((s+.008)/1.008 pi/2)^2.
  const int64_t T = 100;
  const dd::Schedule s = dd::Schedule::from_betas(dd::named_beta_schedule("cosine", T));
  auto f = [](double u) { return std::pow(std::cos((u + 0.008) / 1.008 * M_PI / 2), 2); };
  for (int64_t t : {0, 1, 50, 90}) {
    EXPECT_NEAR(at_(s.alphas_cumprod, t), f((t + 1.0) / T) / f(0), 1e-12) << "t=" << t;
  }
  // The last beta is capped: 1 - f(1)/f(0.99) > 0.999.
  EXPECT_DOUBLE_EQ(at_(s.betas, T - 1), 0.999);
}

TEST(BetaSchedule, UnknownNameThrows) {
  EXPECT_THROW(dd::named_beta_schedule("quadratic", 10), dmtrain::Error);
  EXPECT_THROW(dd::named_beta_schedule("linear", 0), dmtrain::Error);
}

TEST(Schedule, PosteriorTablesByHand) {
  const at::Tensor betas = at::tensor({0.1, 0.2, 0.3}, at::kDouble);
  const dd::Schedule s = dd::Schedule::from_betas(betas);
  const double a0 = 0.9, a1 = 0.9 * 0.8, a2 = 0.9 * 0.8 * 0.7;
  EXPECT_DOUBLE_EQ(at_(s.alphas_cumprod, 2), a2);
  EXPECT_DOUBLE_EQ(at_(s.alphas_cumprod_prev, 0), 1.0);
  EXPECT_DOUBLE_EQ(at_(s.alphas_cumprod_next, 2), 0.0);
  // beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
  EXPECT_DOUBLE_EQ(at_(s.posterior_variance, 0), 0.0);
  EXPECT_NEAR(at_(s.posterior_variance, 1), 0.2 * (1 - a0) / (1 - a1), 1e-15);
  EXPECT_NEAR(at_(s.posterior_variance, 2), 0.3 * (1 - a1) / (1 - a2), 1e-15);
  // log clipped: beta~_0 borrows beta~_1
  EXPECT_NEAR(at_(s.posterior_log_variance_clipped, 0), std::log(0.2 * (1 - a0) / (1 - a1)), 1e-15);
  EXPECT_NEAR(at_(s.posterior_mean_coef1, 2), 0.3 * std::sqrt(a1) / (1 - a2), 1e-15);
  EXPECT_NEAR(at_(s.posterior_mean_coef2, 2), (1 - a1) * std::sqrt(0.7) / (1 - a2), 1e-15);
  EXPECT_NEAR(at_(s.posterior_mean_coef1, 0), 1.0, 1e-15);  // t = 0: mean is x0
  EXPECT_NEAR(at_(s.posterior_mean_coef2, 0), 0.0, 1e-15);
  EXPECT_NEAR(at_(s.fixed_large_variance, 0), at_(s.posterior_variance, 1), 0);
  EXPECT_NEAR(at_(s.fixed_large_variance, 2), 0.3, 0);
  EXPECT_THROW(dd::Schedule::from_betas(at::tensor({0.1, 0.0}, at::kDouble)), dmtrain::Error);
}

TEST(Schedule, ExtractCastsToFloatAndBroadcasts) {
  const at::Tensor table = at::tensor({0.1, 0.2, 0.3}, at::kDouble);
  const at::Tensor v = dd::extract(table, at::tensor({2, 0}, at::kLong), 4);
  ASSERT_EQ(v.sizes(), (at::IntArrayRef{2, 1, 1, 1}));
  EXPECT_EQ(v.scalar_type(), at::kFloat);
  EXPECT_EQ(v[0].item<float>(), static_cast<float>(0.3));
  EXPECT_EQ(v[1].item<float>(), static_cast<float>(0.1));
}

TEST(Respace, Ddim25On1000IsStride40) {
  const std::set<int64_t> s = dd::space_timesteps(1000, "ddim25");
  std::set<int64_t> want;
  for (int64_t i = 0; i < 1000; i += 40) want.insert(i);
  EXPECT_EQ(s, want);
  EXPECT_THROW(dd::space_timesteps(1000, "ddim37"), dmtrain::Error);  // ceil(1000/i) never 37
  EXPECT_THROW(dd::space_timesteps(1000, "ddim"), dmtrain::Error);
}

TEST(Respace, SectionCountsOn300) {
  // Sections [0,100) x10 stride 11, [100,200) x15 stride 99/14, [200,300) x20 stride 99/19,
  // each rounded half-to-even like Python's round().
  const std::set<int64_t> s = dd::space_timesteps(300, "10,15,20");
  std::set<int64_t> want;
  for (int k = 0; k < 10; ++k) want.insert(11 * k);
  double cur = 0;
  for (int k = 0; k < 15; ++k, cur += 99.0 / 14) want.insert(100 + std::llround(cur));
  cur = 0;
  for (int k = 0; k < 20; ++k, cur += 99.0 / 19) want.insert(200 + std::llround(cur));
  EXPECT_EQ(s.size(), 45u);
  EXPECT_EQ(s, want);
  EXPECT_EQ(*s.rbegin(), 299);
  EXPECT_TRUE(s.count(114));  // 100 + round(2 * 7.0714) = 114
  // the spec's numbers, hand-checked at the section starts and ends
  for (int64_t v : {0, 99, 100, 199, 200, 299}) EXPECT_TRUE(s.count(v)) << v;
}

TEST(Respace, SingleCountAndErrors) {
  const std::set<int64_t> s = dd::space_timesteps(10, "4");  // stride 3: 0, 3, 6, 9
  EXPECT_EQ(s, (std::set<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(dd::space_timesteps(10, "10").size(), 10u);
  EXPECT_EQ(dd::space_timesteps(10, "1"), (std::set<int64_t>{0}));
  EXPECT_THROW(dd::space_timesteps(10, "11"), dmtrain::Error);
  EXPECT_THROW(dd::space_timesteps(10, "abc"), dmtrain::Error);
  EXPECT_THROW(dd::space_timesteps(10, "3,,4"), dmtrain::Error);
  EXPECT_THROW(dd::space_timesteps(10, "0"), dmtrain::Error);
}

TEST(Respace, BetasKeepAlphasCumprodAtKeptSteps) {
  const at::Tensor base = dd::named_beta_schedule("cosine", 100);
  const dd::Schedule full = dd::Schedule::from_betas(base);
  const dd::Respacing r = dd::respace_betas(base, dd::space_timesteps(100, "10"));
  ASSERT_EQ(r.timestep_map.size(), 10u);
  const dd::Schedule sub = dd::Schedule::from_betas(r.betas);
  for (size_t k = 0; k < r.timestep_map.size(); ++k) {
    EXPECT_NEAR(at_(sub.alphas_cumprod, k), at_(full.alphas_cumprod, r.timestep_map[k]), 1e-14);
  }
  EXPECT_EQ(r.timestep_map.front(), 0);
  EXPECT_EQ(r.timestep_map.back(), 99);
}
