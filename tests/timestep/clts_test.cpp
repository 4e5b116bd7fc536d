// CLTS probabilities against independently computed values, and validation.
#include <gtest/gtest.h>

#include <vector>

#include "dmtrain/timestep/clts.hpp"
#include "dmtrain/timestep/clts_sampler.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::timestep;

namespace {

// Expected values printed by tests/fixtures/timestep/clts_reference.py (Python standard library
// only, written straight from Eq. 7-8):
//
//   def p(T, k, mu, sigma, K):
//       g = [math.exp(-((t / T - mu) ** 2) / (2 * sigma ** 2)) for t in range(T)]
//       s = math.fsum(g)
//       lam = min(1.0, k / K)
//       return [(1 - lam) / T + lam * gi / s for gi in g]
const std::vector<double> kSigma1Half = {
    0.10029818107886554, 0.10157148559503656, 0.10235088878916297, 0.10261329871122683,
    0.10235088878916297, 0.10157148559503656, 0.10029818107886554, 0.0985681960776564,
    0.09643107314741577, 0.09394632113757084};
const std::vector<double> kSigma1Full = {
    0.10059636215773107, 0.10314297119007311, 0.10470177757832594, 0.10522659742245366,
    0.10470177757832594, 0.10314297119007311, 0.10059636215773107, 0.0971363921553128,
    0.09286214629483153, 0.08789264227514168};
const std::vector<double> kSigma01Half = {
    0.052216224100292266, 0.07699913671737602, 0.17100173593482718,  0.24949813582738956,
    0.1710017359348271,   0.076999136717376,   0.052216224100292266, 0.05006692416890631,
    0.05000074346036071,  0.05000000303835257};
const std::vector<double> kSigma01Full = {
    0.004432448200584532,   0.053998273434752025, 0.24200347186965435,  0.3989962716547791,
    0.2420034718696542,     0.05399827343475199,  0.004432448200584532, 0.00013384833781261704,
    1.4869207214098483e-06, 6.076705135518144e-09};

void expect_probs(const at::Tensor& p, const std::vector<double>& expected) {
  ASSERT_EQ(p.scalar_type(), at::kDouble);
  ASSERT_EQ(p.numel(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(p[i].item<double>(), expected[i], 1e-15 + 1e-12 * expected[i]) << "t=" << i;
  }
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);
}

}  // namespace

TEST(Clts, LambdaRampsAndSaturates) {
  EXPECT_EQ(clts_lambda(0, 100), 0.0);
  EXPECT_DOUBLE_EQ(clts_lambda(25, 100), 0.25);
  EXPECT_EQ(clts_lambda(100, 100), 1.0);
  EXPECT_EQ(clts_lambda(1000, 100), 1.0);
}

TEST(Clts, ProbabilitiesMatchReferenceSigma1) {
  const std::vector<double> uniform(10, 0.1);
  expect_probs(clts_probabilities(10, 0, 0.3, 1.0, 100000), uniform);
  expect_probs(clts_probabilities(10, 50000, 0.3, 1.0, 100000), kSigma1Half);
  expect_probs(clts_probabilities(10, 100000, 0.3, 1.0, 100000), kSigma1Full);
  expect_probs(clts_probabilities(10, 300000, 0.3, 1.0, 100000), kSigma1Full);
}

TEST(Clts, ProbabilitiesMatchReferenceNarrowGaussian) {
  expect_probs(clts_probabilities(10, 0, 0.3, 0.1, 1000), std::vector<double>(10, 0.1));
  expect_probs(clts_probabilities(10, 500, 0.3, 0.1, 1000), kSigma01Half);
  expect_probs(clts_probabilities(10, 1000, 0.3, 0.1, 1000), kSigma01Full);
  expect_probs(clts_probabilities(10, 3000, 0.3, 0.1, 1000), kSigma01Full);
}

TEST(Clts, SamplerProbabilitiesEqualPureFunction) {
  CltsSampler s(CltsOptions{10, 0.3, 0.1, 1000, false});
  expect_probs(s.probabilities(500), kSigma01Half);
  EXPECT_EQ(s.name(), "clts");
}

TEST(Clts, LargeTSumsToOneAndPeaksAtMu) {
  const auto p = clts_probabilities(4000, 100000, 0.3, 1.0, 100000);
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);
  EXPECT_EQ(p.argmax().item<int64_t>(), 1200);
  EXPECT_GT(p.min().item<double>(), 0.0);
}

TEST(Clts, ValidationNamesKey) {
  auto expect_key = [](CltsOptions o, const std::string& key) {
    try {
      validate(o);
      FAIL() << "no error for " << key;
    } catch (const dmtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  CltsOptions o;
  o.mu = 1.5;
  expect_key(o, "timestep.clts.mu");
  o = {};
  o.mu = -0.1;
  expect_key(o, "timestep.clts.mu");
  o = {};
  o.sigma = 0.0;
  expect_key(o, "timestep.clts.sigma");
  o = {};
  o.target_iteration = 0;
  expect_key(o, "timestep.clts.target_iteration");
  o = {};
  o.num_timesteps = 0;
  expect_key(o, "timestep.num_timesteps");
  EXPECT_NO_THROW(validate(CltsOptions{}));
  EXPECT_THROW(CltsSampler(CltsOptions{10, 2.0, 1.0, 10, false}), dmtrain::Error);
}
