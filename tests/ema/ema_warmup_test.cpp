// The EMA warm-up (train.ema_warmup) against hand-worked values: rate_k = min(rate, (1+k)/(10+k)).
#include <gtest/gtest.h>

#include <torch/nn/modules/linear.h>

#include "dmtrain/ema/ema.hpp"

using dmtrain::ema::Ema;

namespace {

// A module with one scalar parameter, set to `v`.
struct One : torch::nn::Module {
  at::Tensor w;
  One() { w = register_parameter("w", at::zeros({1}, at::kDouble)); }
  void set(double v) {
    at::NoGradGuard g;
    w.fill_(v);
  }
};

}  // namespace

TEST(EmaWarmup, RampsTheRateAndMeetsTheConfiguredOne) {
  One m;
  Ema plain(m, {0.999}), warm(m, {0.999});
  warm.set_warmup(true);
  EXPECT_DOUBLE_EQ(warm.rate_at(0, 0), 0.1);  // 1 / 10
  EXPECT_DOUBLE_EQ(warm.rate_at(0, 1), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(warm.rate_at(0, 9989), 0.999);  // (1 + k) / (10 + k) = 0.999 at k = 8991
  EXPECT_DOUBLE_EQ(plain.rate_at(0, 0), 0.999);
  // The parameter jumps from 0 to 1 and stays: after step 0 the warm EMA is 0.9, after step 1
  // 0.9 * 2/11 + 9/11 = 0.981818..., the plain one 0.001 and 0.001999.
  m.set(1.0);
  warm.update(m, 0);
  plain.update(m, 0);
  EXPECT_NEAR(warm.params(0)[0].item<double>(), 0.9, 1e-15);
  EXPECT_NEAR(plain.params(0)[0].item<double>(), 0.001, 1e-15);
  warm.update(m, 1);
  plain.update(m, 1);
  EXPECT_NEAR(warm.params(0)[0].item<double>(), 0.9 * 2.0 / 11.0 + 9.0 / 11.0, 1e-15);
  EXPECT_NEAR(plain.params(0)[0].item<double>(), 0.001 * 0.999 + 0.001, 1e-15);
}
