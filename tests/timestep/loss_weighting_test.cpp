// Min-SNR and P2 weights against hand-worked values and closed forms on linear/cosine schedules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dmtrain/timestep/loss_weighting.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::timestep;

namespace {

// Schedules written here from their definitions (Ho et al. linear, scaled as in improved-diffusion
// by 1000/T; Nichol & Dhariwal cosine with s = 0.008 and betas clipped at 0.999), independent of
// the diffusion area.
std::vector<double> linear_abar(int T) {
  const double scale = 1000.0 / T, b0 = scale * 1e-4, b1 = scale * 0.02;
  std::vector<double> abar(T);
  double prod = 1.0;
  for (int i = 0; i < T; ++i) {
    const double beta = b0 + (b1 - b0) * i / (T - 1);
    prod *= 1.0 - beta;
    abar[i] = prod;
  }
  return abar;
}

std::vector<double> cosine_abar(int T) {
  const double pi = std::acos(-1.0);
  auto f = [&](double u) { return std::pow(std::cos((u + 0.008) / 1.008 * pi / 2), 2); };
  std::vector<double> abar(T);
  double prod = 1.0;
  for (int i = 0; i < T; ++i) {
    const double beta = std::min(1.0 - f((i + 1.0) / T) / f(static_cast<double>(i) / T), 0.999);
    prod *= 1.0 - beta;
    abar[i] = prod;
  }
  return abar;
}

void check_closed_forms(const std::vector<double>& abar) {
  const int64_t T = static_cast<int64_t>(abar.size());
  const auto ac = at::tensor(abar, at::kDouble);
  const auto t = at::arange(T, at::kLong);
  LossWeightingOptions ms{"min-snr", 5.0, 1.0, 1.0};
  LossWeightingOptions p2a{"p2", 5.0, 1.0, 1.0};
  LossWeightingOptions p2b{"p2", 5.0, 1.0, 0.5};
  const auto w_ms = loss_weight(ms, ac, t);
  const auto w_p2a = loss_weight(p2a, ac, t);
  const auto w_p2b = loss_weight(p2b, ac, t);
  const auto w_none = loss_weight(LossWeightingOptions{}, ac, t);
  ASSERT_EQ(w_ms.scalar_type(), at::kFloat);
  for (int64_t i = 0; i < T; ++i) {
    const double snr = abar[i] / (1.0 - abar[i]);
    EXPECT_FLOAT_EQ(w_ms[i].item<float>(), static_cast<float>(std::min(snr, 5.0) / snr)) << i;
    EXPECT_FLOAT_EQ(w_p2a[i].item<float>(), static_cast<float>(1.0 / (1.0 + snr))) << i;
    EXPECT_FLOAT_EQ(w_p2b[i].item<float>(), static_cast<float>(1.0 / std::sqrt(1.0 + snr))) << i;
    EXPECT_EQ(w_none[i].item<float>(), 1.0f);
  }
  // Min-SNR must actually clip somewhere (early t, high SNR) and leave late t alone.
  EXPECT_LT(w_ms[0].item<float>(), 0.1f);
  EXPECT_EQ(w_ms[T - 1].item<float>(), 1.0f);
}

}  // namespace

TEST(LossWeighting, HandWorked) {
  // SNR = {1, 9, 99, 0.25}
  const auto ac = at::tensor(std::vector<double>{0.5, 0.9, 0.99, 0.2}, at::kDouble);
  const auto t = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 1}, at::kLong);
  const auto ms = loss_weight(LossWeightingOptions{"min-snr", 5.0, 1.0, 1.0}, ac, t);
  const float ms_expected[5] = {1.0f, 5.0f / 9, 5.0f / 99, 1.0f, 5.0f / 9};
  const auto p2 = loss_weight(LossWeightingOptions{"p2", 5.0, 1.0, 1.0}, ac, t);
  const float p2_expected[5] = {0.5f, 0.1f, 0.01f, 0.8f, 0.1f};
  for (int i = 0; i < 5; ++i) {
    EXPECT_FLOAT_EQ(ms[i].item<float>(), ms_expected[i]);
    EXPECT_FLOAT_EQ(p2[i].item<float>(), p2_expected[i]);
  }
  // abar = 0 (SNR 0): Min-SNR gives weight 1, not NaN.
  const auto w0 = loss_weight(LossWeightingOptions{"min-snr", 5.0, 1.0, 1.0},
                              at::zeros({1}, at::kDouble), at::zeros({1}, at::kLong));
  EXPECT_EQ(w0[0].item<float>(), 1.0f);
}

TEST(LossWeighting, LinearScheduleClosedForms) {
  check_closed_forms(linear_abar(1000));
}
TEST(LossWeighting, CosineScheduleClosedForms) {
  check_closed_forms(cosine_abar(4000));
}

TEST(LossWeighting, ValidationNamesKey) {
  auto expect_key = [](const LossWeightingOptions& o, const std::string& key) {
    try {
      validate(o);
      FAIL() << "no error for " << key;
    } catch (const dmtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_key({"snr", 5, 1, 1}, "loss_weight.kind");
  expect_key({"min-snr", 0, 1, 1}, "loss_weight.gamma");
  expect_key({"p2", 5, 0, 1}, "loss_weight.p2_k");
  expect_key({"p2", 5, 1, -1}, "loss_weight.p2_gamma");
  EXPECT_NO_THROW(validate(LossWeightingOptions{"p2", 5, 1, 0.5}));
  EXPECT_EQ(parse_loss_weighting("min-snr"), LossWeightingKind::kMinSnr);
}

TEST(LossWeighting, TermsIsValidatedByKey) {
  LossWeightingOptions o{"min-snr", 5, 1, 1, "vb"};
  try {
    validate(o);
    FAIL() << "terms 'vb' accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("loss_weight.terms"), std::string::npos) << e.what();
  }
  EXPECT_EQ(LossWeightingOptions{}.terms, "mse");  // the authors' code: the weight on MSE only
}

// Which weights go where: importance weights always on the whole loss, the loss weighting (and a
// sampler's own, SpeeD's) on the MSE term under terms = mse and on the whole loss under all.
TEST(LossWeighting, SplitWeightsByTerms) {
  // SNR = {1, 9, 99}: Min-SNR-5 weights {1, 5/9, 5/99}
  const auto ac = at::tensor(std::vector<double>{0.5, 0.9, 0.99}, at::kDouble);
  TimestepSampler::Draw draw;
  draw.t = at::tensor(std::vector<int64_t>{0, 1, 2}, at::kLong);
  draw.weights = at::tensor(std::vector<float>{2.0f, 1.0f, 0.5f});  // importance weights

  // No weighting: the whole loss times the importance weights, nothing on the MSE term.
  auto none = split_weights(LossWeightingOptions{}, ac, draw);
  EXPECT_FALSE(none.mse.defined());
  EXPECT_TRUE(at::equal(none.whole, draw.weights));

  LossWeightingOptions ms{"min-snr", 5.0, 1.0, 1.0, "mse"};
  auto on_mse = split_weights(ms, ac, draw);
  EXPECT_TRUE(at::equal(on_mse.whole, draw.weights));
  ASSERT_TRUE(on_mse.mse.defined());
  EXPECT_FLOAT_EQ(on_mse.mse[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(on_mse.mse[1].item<float>(), 5.0f / 9);
  EXPECT_FLOAT_EQ(on_mse.mse[2].item<float>(), 5.0f / 99);

  ms.terms = "all";
  auto on_all = split_weights(ms, ac, draw);
  EXPECT_FALSE(on_all.mse.defined());
  EXPECT_FLOAT_EQ(on_all.whole[0].item<float>(), 2.0f);
  EXPECT_FLOAT_EQ(on_all.whole[1].item<float>(), 5.0f / 9);
  EXPECT_FLOAT_EQ(on_all.whole[2].item<float>(), 0.5f * 5.0f / 99);

  // A sampler's own loss weighting (SpeeD's w(t)) is a loss weighting too: with no
  // loss_weight.kind it goes to the MSE term alone, and multiplies Min-SNR's where both are on.
  draw.loss_weights = at::tensor(std::vector<float>{0.5f, 0.25f, 1.0f});
  auto speed_only = split_weights(LossWeightingOptions{}, ac, draw);
  ASSERT_TRUE(speed_only.mse.defined());
  EXPECT_TRUE(at::equal(speed_only.mse, draw.loss_weights));
  EXPECT_TRUE(at::equal(speed_only.whole, draw.weights));
  ms.terms = "mse";
  auto both = split_weights(ms, ac, draw);
  EXPECT_FLOAT_EQ(both.mse[1].item<float>(), 0.25f * 5.0f / 9);
}

// weighted_objective against the hand-worked sums of the two readings.
TEST(LossWeighting, WeightedObjectiveHandWorked) {
  const auto mse = at::tensor(std::vector<float>{0.2f, 0.4f});
  const auto vb = at::tensor(std::vector<float>{1.0f, 3.0f});
  const auto loss = mse + vb;
  const auto whole = at::tensor(std::vector<float>{1.0f, 0.5f});
  const auto w = at::tensor(std::vector<float>{0.1f, 0.5f});
  // no MSE weight: whole * loss = {1.2, 1.7}
  auto a = weighted_objective(loss, mse, vb, whole, {});
  EXPECT_FLOAT_EQ(a[0].item<float>(), 1.2f);
  EXPECT_FLOAT_EQ(a[1].item<float>(), 1.7f);
  // terms = mse: whole * (w mse + vb) = {1 * (0.02 + 1), 0.5 * (0.2 + 3)} = {1.02, 1.6}
  auto b = weighted_objective(loss, mse, vb, whole, w);
  EXPECT_FLOAT_EQ(b[0].item<float>(), 1.02f);
  EXPECT_FLOAT_EQ(b[1].item<float>(), 1.6f);
  // no vb term (fixed variance): whole * w * mse = {1 * 0.1 * 0.2, 0.5 * 0.5 * 0.4} = {0.02, 0.1}
  auto c = weighted_objective(mse, mse, {}, whole, w);
  EXPECT_FLOAT_EQ(c[0].item<float>(), 0.02f);
  EXPECT_FLOAT_EQ(c[1].item<float>(), 0.1f);
}
