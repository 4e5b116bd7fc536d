// KID: the unbiased MMD^2 against numpy's computation of the same formula
// (tests/fixtures/eval/make_feature_metrics_fixture.py, in the general form and in torch-fidelity's
// mmd2 form), a hand-worked 1-D case, the closed form for identical sets, and the subset
// estimator's invariants (subsets as large as the sets are permutations of them; the subset mean
// estimates the full-set value).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "dmtrain/eval/kid.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/npy.hpp"

namespace {
namespace ev = dmtrain::eval;

std::map<std::string, at::Tensor> fixture() {
  const auto arrays =
      dmtrain::util::read_npz(std::string(DMTRAIN_FIXTURES_DIR) + "/eval/feature_metrics.npz");
  return {arrays.begin(), arrays.end()};
}

double scalar(const at::Tensor& t) {
  return t.reshape({-1})[0].item<double>();
}

TEST(Kid, Mmd2MatchesNumpyFixtureForAnyBlocking) {
  const auto f = fixture();
  const at::Tensor x = f.at("x"), y = f.at("y");  // [60, 8] and [45, 8], float64
  const double want = scalar(f.at("mmd2_xy"));
  for (int64_t block : {4096, 7, 1}) {
    ev::KidOptions o;
    o.block = block;
    EXPECT_NEAR(ev::mmd2_unbiased(x, y, o), want, 1e-12 * std::abs(want)) << block;
  }
  // Equal sizes: torch-fidelity's mmd2(K_XX, K_XY, K_YY), unbiased.
  const double equal = scalar(f.at("mmd2_equal"));
  EXPECT_NEAR(ev::mmd2_unbiased(x.narrow(0, 0, 45), y), equal, 1e-12 * std::abs(equal));
  // float32 inputs are computed in float64 too: only the inputs' rounding differs.
  EXPECT_NEAR(ev::mmd2_unbiased(x.to(at::kFloat), y.to(at::kFloat)), want, 1e-5 * want);
}

TEST(Kid, HandWorkedOneDimensional) {
  // d = 1, k(a, b) = (a b + 1)^3. X = {1, -1}: k(1, -1) = 0, so the X term is 0. Y = {2, 0}:
  // k(2, 0) = 1, the Y term 2 / (2 * 1) = 1. Cross: k(1,2) = 27, k(1,0) = 1, k(-1,2) = -1,
  // k(-1,0) = 1, sum 28, term 2 * 28 / 4 = 14. MMD^2_u = 0 + 1 - 14 = -13.
  const at::Tensor x = at::tensor({1.0, -1.0}, at::kDouble).view({2, 1});
  const at::Tensor y = at::tensor({2.0, 0.0}, at::kDouble).view({2, 1});
  EXPECT_DOUBLE_EQ(ev::mmd2_unbiased(x, y), -13.0);
  EXPECT_DOUBLE_EQ(ev::mmd2_unbiased(y, x), -13.0);
  // Subsets of 2 out of 2: every subset is the whole set.
  const ev::Kid k = ev::kid(x, y, {});
  EXPECT_DOUBLE_EQ(k.mean, -13.0);
  EXPECT_DOUBLE_EQ(k.std, 0.0);
  EXPECT_EQ(k.subset_size, 2);
}

TEST(Kid, IdenticalSetsGiveTheUnbiasedClosedFormNearZero) {
  // X = Y: MMD^2_u = (2 / n) (mean_{i != j} k(x_i, x_j) - mean_i k(x_i, x_i)), O(1 / n).
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor x = at::rand({400, 16}, g, at::kDouble);
  const at::Tensor k = (at::matmul(x, x.t()) / 16.0 + 1.0).pow(3);
  const double n = 400, diag = k.diagonal().sum().item<double>();
  const double off = (k.sum().item<double>() - diag) / (n * (n - 1));
  const double want = 2.0 / n * (off - diag / n);
  EXPECT_NEAR(ev::mmd2_unbiased(x, x), want, 1e-12 * std::abs(want));
  // Near 0 against a real difference: a shift of 0.5 in every coordinate.
  const double shifted = ev::mmd2_unbiased(x, x + 0.5);
  EXPECT_LT(std::abs(want), 1e-3 * shifted);
  // Two independent draws of one distribution: KID within a few subset std of 0.
  const at::Tensor x2 = at::rand({400, 16}, g, at::kDouble);
  ev::KidOptions o;
  o.subset_size = 100;
  const ev::Kid same = ev::kid(x, x2, o), apart = ev::kid(x, x2 + 0.5, o);
  EXPECT_LT(std::abs(same.mean), 4.0 * same.std);
  EXPECT_GT(apart.mean, 10.0 * std::abs(same.mean));
}

TEST(Kid, SubsetsOfTheWholeSetsGiveTheFullSetValue) {
  const auto f = fixture();
  const at::Tensor x = f.at("x").narrow(0, 0, 45), y = f.at("y");
  ev::KidOptions o;
  o.subsets = 5;  // subset_size 1000 caps at 45: each subset is a permutation of its set
  const ev::Kid k = ev::kid(x, y, o);
  const double want = scalar(f.at("mmd2_equal"));
  EXPECT_EQ(k.subset_size, 45);
  EXPECT_EQ(k.subsets, 5);
  EXPECT_NEAR(k.mean, want, 1e-12 * std::abs(want));
  EXPECT_NEAR(k.std, 0.0, 1e-12 * std::abs(want));
}

TEST(Kid, SubsetMeanEstimatesTheFullSetValue) {
  // MMD^2_u is a U-statistic: over random subsets its expectation is the full sets' MMD^2_u
  // (sizes 60 and 45 here, the fixture's value), so the mean of many subsets lands within a few
  // standard errors of it.
  const auto f = fixture();
  ev::KidOptions o;
  o.subsets = 400;
  o.subset_size = 20;
  const ev::Kid k = ev::kid(f.at("x"), f.at("y"), o);
  const double want = scalar(f.at("mmd2_xy"));
  EXPECT_EQ(k.subset_size, 20);
  EXPECT_GT(k.std, 0.0);
  EXPECT_NEAR(k.mean, want, 4.0 * k.std / std::sqrt(400.0));
  // The draws are seeded: the same seed repeats the value, another one moves it.
  EXPECT_EQ(ev::kid(f.at("x"), f.at("y"), o).mean, k.mean);
  o.seed = 1;
  EXPECT_NE(ev::kid(f.at("x"), f.at("y"), o).mean, k.mean);
}

TEST(Kid, BadInputIsAnError) {
  const at::Tensor a = at::rand({5, 4}), one = at::rand({1, 4}), other = at::rand({5, 3});
  EXPECT_THROW(ev::mmd2_unbiased(a, one), dmtrain::Error);
  EXPECT_THROW(ev::mmd2_unbiased(a, other), dmtrain::Error);
  EXPECT_THROW(ev::kid(a, other), dmtrain::Error);
  ev::KidOptions o;
  o.subsets = 0;
  EXPECT_THROW(ev::kid(a, a, o), dmtrain::Error);
}

}  // namespace
