// LossSecondMomentSampler: warm-up, probabilities from known losses, history shifting, state.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <sstream>

#include "dmtrain/timestep/loss_second_moment_sampler.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::timestep;

namespace {

void feed(LossSecondMomentSampler& s, std::vector<int64_t> t, std::vector<double> l) {
  s.update_with_losses(at::tensor(t, at::kLong), at::tensor(l, at::kDouble));
}

}  // namespace

TEST(LossSecondMoment, WarmUpThenRootMeanSquare) {
  LossSecondMomentSampler s(3, /*history_per_term=*/2, /*uniform_prob=*/0.1);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const auto uniform = at::full({3}, 1.0 / 3, at::kDouble);
  EXPECT_TRUE(at::allclose(s.probabilities(0), uniform));
  feed(s, {0, 1, 0, 1, 2}, {1.0, 2.0, 3.0, 2.0, 4.0});
  // t = 2 has one loss of two: still uniform, weights 1.
  EXPECT_FALSE(s.warmed_up());
  EXPECT_TRUE(at::allclose(s.probabilities(0), uniform));
  auto d = s.sample(16, 0, gen);
  EXPECT_TRUE(at::allclose(d.weights, at::ones({16}, at::kFloat)));
  // Fill t = 2 ([4, 0]), then one more shifts out the 4: history of t = 2 is [0, 6].
  feed(s, {2, 2}, {0.0, 6.0});
  EXPECT_TRUE(s.warmed_up());
  // Hand-worked: w = {sqrt((1+9)/2), sqrt((4+4)/2), sqrt((0+36)/2)} = {sqrt 5, 2, sqrt 18};
  // p = 0.9 w / sum(w) + 0.1 / 3.
  const double w0 = std::sqrt(5.0), w1 = 2.0, w2 = std::sqrt(18.0), sw = w0 + w1 + w2;
  const double p_expected[3] = {0.9 * w0 / sw + 0.1 / 3, 0.9 * w1 / sw + 0.1 / 3,
                                0.9 * w2 / sw + 0.1 / 3};
  const auto p = s.probabilities(12345);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(p[i].item<double>(), p_expected[i], 1e-14);
  EXPECT_NEAR(s.loss_history()[2][0].item<double>(), 0.0, 0.0);
  EXPECT_EQ(s.loss_history()[2][1].item<double>(), 6.0);
  // Draws carry the importance weight 1 / (T p(t)).
  d = s.sample(64, 0, gen);
  for (int64_t i = 0; i < 64; ++i) {
    const int64_t t = d.t[i].item<int64_t>();
    EXPECT_FLOAT_EQ(d.weights[i].item<float>(), static_cast<float>(1.0 / (3 * p_expected[t])));
  }
}

TEST(LossSecondMoment, StateRoundTrip) {
  LossSecondMomentSampler a(5, 3, 0.01);
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  for (int i = 0; i < 6; ++i) {
    const auto t = at::arange(5, at::kLong);
    a.update_with_losses(t, at::rand({5}, g, at::kDouble));
  }
  ASSERT_TRUE(a.warmed_up());
  torch::serialize::OutputArchive out;
  a.save(out);
  std::ostringstream os;
  out.save_to(os);
  std::istringstream is(os.str());
  torch::serialize::InputArchive in;
  in.load_from(is);
  LossSecondMomentSampler b(5, 3, 0.01);
  EXPECT_FALSE(b.warmed_up());
  b.load(in);
  EXPECT_TRUE(b.warmed_up());
  EXPECT_TRUE(at::equal(a.loss_history(), b.loss_history()));
  EXPECT_TRUE(at::equal(a.loss_counts(), b.loss_counts()));
  EXPECT_TRUE(at::equal(a.probabilities(0), b.probabilities(0)));
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(5);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto da = a.sample(32, 0, g1);
  const auto db = b.sample(32, 0, g2);
  EXPECT_TRUE(at::equal(da.t, db.t));
  EXPECT_TRUE(at::equal(da.weights, db.weights));
  // A sampler with another history length cannot take this state.
  LossSecondMomentSampler c(5, 4, 0.01);
  std::istringstream is2(os.str());
  torch::serialize::InputArchive in2;
  in2.load_from(is2);
  EXPECT_THROW(c.load(in2), dmtrain::Error);
}
