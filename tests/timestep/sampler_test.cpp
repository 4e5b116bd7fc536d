// Sampling: empirical frequencies against p_k (chi-square), determinism, weights, factory.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <sstream>

#include "dmtrain/timestep/clts_sampler.hpp"
#include "dmtrain/timestep/factory.hpp"
#include "dmtrain/timestep/uniform_sampler.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::timestep;

namespace {

double chi_square(const at::Tensor& t, const at::Tensor& p) {
  const auto counts = at::bincount(t, {}, p.numel()).to(at::kDouble);
  const auto expected = p * static_cast<double>(t.numel());
  return ((counts - expected).square() / expected).sum().item<double>();
}

}  // namespace

// 10^6 draws from T = 50: chi-square against p_k must stay below the 1e-6 upper quantile of
// chi2(49) (~111.6, Wilson-Hilferty); we use 120. Against the uniform distribution it must be huge,
// so this test can tell the two apart.
TEST(Sampler, CltsEmpiricalFrequenciesMatchChiSquare) {
  CltsSampler s(CltsOptions{50, 0.3, 0.2, 1000, false});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  for (int64_t k : {500, 5000}) {
    const auto draw = s.sample(1000000, k, gen);
    ASSERT_EQ(draw.t.scalar_type(), at::kLong);
    ASSERT_EQ(draw.weights.scalar_type(), at::kFloat);
    ASSERT_EQ(draw.t.numel(), 1000000);
    EXPECT_GE(draw.t.min().item<int64_t>(), 0);
    EXPECT_LT(draw.t.max().item<int64_t>(), 50);
    EXPECT_LT(chi_square(draw.t, s.probabilities(k)), 120.0) << "k=" << k;
    EXPECT_GT(chi_square(draw.t, at::full({50}, 1.0 / 50, at::kDouble)), 1000.0) << "k=" << k;
    EXPECT_TRUE(at::equal(draw.weights, at::ones({1000000}, at::kFloat)));
  }
}

TEST(Sampler, UniformEmpiricalFrequencies) {
  UniformSampler s(50);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto draw = s.sample(1000000, 123, gen);
  EXPECT_LT(chi_square(draw.t, s.probabilities(0)), 120.0);
  EXPECT_TRUE(at::equal(draw.weights, at::ones({1000000}, at::kFloat)));
}

TEST(Sampler, DeterministicGivenGeneratorState) {
  CltsSampler s(CltsOptions{100, 0.3, 1.0, 10, false});
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(42);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(42);
  const auto a = s.sample(64, 5, g1);
  const auto b = s.sample(64, 5, g2);
  EXPECT_TRUE(at::equal(a.t, b.t));
  const auto c = s.sample(64, 5, g1);  // generator advanced: a different draw
  EXPECT_FALSE(at::equal(a.t, c.t));
}

TEST(Sampler, CltsImportanceWeights) {
  CltsSampler s(CltsOptions{10, 0.3, 0.1, 1000, true});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto draw = s.sample(256, 1000, gen);
  const auto p = s.probabilities(1000);
  for (int64_t i = 0; i < 256; ++i) {
    const int64_t t = draw.t[i].item<int64_t>();
    EXPECT_FLOAT_EQ(draw.weights[i].item<float>(),
                    static_cast<float>(1.0 / (10.0 * p[t].item<double>())));
  }
  // At k = 0 the distribution is uniform so every importance weight is 1.
  const auto d0 = s.sample(64, 0, gen);
  EXPECT_TRUE(at::allclose(d0.weights, at::ones({64}, at::kFloat)));
}

TEST(Sampler, FactoryBuildsEachKindAndValidates) {
  TimestepSamplerOptions o;
  o.num_timesteps = 20;
  EXPECT_EQ(make_sampler(o)->name(), "uniform");
  o.kind = "clts";
  o.clts.num_timesteps = 7;  // overridden by num_timesteps
  auto clts = make_sampler(o);
  EXPECT_EQ(clts->name(), "clts");
  EXPECT_EQ(clts->num_timesteps(), 20);
  EXPECT_EQ(clts->probabilities(0).numel(), 20);
  o.kind = "loss-second-moment";
  EXPECT_EQ(make_sampler(o)->name(), "loss-second-moment");

  auto expect_key = [](const TimestepSamplerOptions& bad, const std::string& key) {
    try {
      make_sampler(bad);
      FAIL() << "no error for " << key;
    } catch (const dmtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  TimestepSamplerOptions bad;
  bad.kind = "gaussian";
  expect_key(bad, "timestep.sampler");
  bad = {};
  bad.num_timesteps = 0;
  expect_key(bad, "timestep.num_timesteps");
  bad = {};
  bad.kind = "clts";
  bad.clts.mu = 1.1;
  expect_key(bad, "timestep.clts.mu");
  bad.clts.mu = 0.3;
  bad.clts.sigma = -1;
  expect_key(bad, "timestep.clts.sigma");
  bad.clts.sigma = 1;
  bad.clts.target_iteration = -5;
  expect_key(bad, "timestep.clts.target_iteration");
  bad = {};
  bad.kind = "loss-second-moment";
  bad.loss_second_moment.uniform_prob = 2.0;
  expect_key(bad, "timestep.loss_second_moment.uniform_prob");
  bad.loss_second_moment.uniform_prob = 0.001;
  bad.loss_second_moment.history_per_term = 0;
  expect_key(bad, "timestep.loss_second_moment.history_per_term");
}

TEST(Sampler, LoadRejectsOtherKind) {
  UniformSampler u(10);
  torch::serialize::OutputArchive out;
  u.save(out);
  std::ostringstream os;
  out.save_to(os);
  std::istringstream is(os.str());
  torch::serialize::InputArchive in;
  in.load_from(is);
  CltsSampler c(CltsOptions{10, 0.3, 1.0, 10, false});
  EXPECT_THROW(c.load(in), dmtrain::Error);
  UniformSampler u2(10);
  EXPECT_NO_THROW(u2.load(in));
}
