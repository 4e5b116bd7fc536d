// GaussianDiffusion: q / posterior / v-prediction closed forms, and training losses against
// improved-diffusion's training_losses on the toy model (fixtures.npz, see make_fixtures.py).
#include <gtest/gtest.h>

#include <cmath>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/util/error.hpp"
#include "fixtures.hpp"

namespace dd = dmtrain::diffusion;
using dd::testing::fx;

namespace {

dd::GaussianDiffusion three_step(dd::MeanType mean = dd::MeanType::kEpsilon) {
  dd::GaussianDiffusionOptions o;
  o.betas = at::tensor({0.1, 0.2, 0.3}, at::kDouble);
  o.mean_type = mean;
  return dd::GaussianDiffusion(o);
}

}  // namespace

TEST(GaussianDiffusion, QSampleAndQMeanVarianceClosedForm) {
  const dd::GaussianDiffusion d = three_step();
  const at::Tensor x0 = at::full({2, 1, 1, 1}, 0.5f);
  const at::Tensor eps = at::tensor({1.0f, -2.0f}).view({2, 1, 1, 1});
  const at::Tensor t = at::tensor({1, 2}, at::kLong);
  const double abar1 = 0.9 * 0.8, abar2 = 0.9 * 0.8 * 0.7;
  const at::Tensor xt = d.q_sample(x0, t, eps);
  EXPECT_NEAR(xt[0].item<double>(), std::sqrt(abar1) * 0.5 + std::sqrt(1 - abar1) * 1.0, 1e-6);
  EXPECT_NEAR(xt[1].item<double>(), std::sqrt(abar2) * 0.5 - std::sqrt(1 - abar2) * 2.0, 1e-6);
  const dd::MeanVariance q = d.q_mean_variance(x0, t);
  EXPECT_NEAR(q.variance[1].item<double>(), 1 - abar2, 1e-7);
  EXPECT_NEAR(q.log_variance[0].item<double>(), std::log(1 - abar1), 1e-6);
}

TEST(GaussianDiffusion, PosteriorIsBayesOfTheTwoGaussians) {
  // q(x_{t-1}|x_t,x0) ∝ N(x_t; sqrt(1-b_t) x_{t-1}, b_t) N(x_{t-1}; sqrt(abar_{t-1}) x0,
  // 1-abar_{t-1})
  const dd::GaussianDiffusion d = three_step();
  const double b = 0.3, a_prev = 0.9 * 0.8;
  const double x0 = 0.7, xt = -0.4;
  const double prec = (1 - b) / b + 1 / (1 - a_prev);
  const double mean = (std::sqrt(1 - b) * xt / b + std::sqrt(a_prev) * x0 / (1 - a_prev)) / prec;
  const dd::MeanVariance q =
      d.q_posterior_mean_variance(at::full({1, 1}, x0, at::kFloat),
                                  at::full({1, 1}, xt, at::kFloat), at::tensor({2}, at::kLong));
  EXPECT_NEAR(q.mean.item<double>(), mean, 1e-6);
  EXPECT_NEAR(q.variance.item<double>(), 1 / prec, 1e-7);
  EXPECT_NEAR(q.log_variance.item<double>(), std::log(1 / prec), 1e-6);
}

TEST(GaussianDiffusion, EpsAndVPredictionsInvert) {
  const dd::GaussianDiffusion d = three_step(dd::MeanType::kV);
  const at::Tensor x0 = at::rand({3, 2, 2, 2}) * 2 - 1;
  const at::Tensor eps = at::randn({3, 2, 2, 2});
  const at::Tensor t = at::tensor({0, 1, 2}, at::kLong);
  const at::Tensor xt = d.q_sample(x0, t, eps);
  EXPECT_TRUE(at::allclose(d.predict_xstart_from_eps(xt, t, eps), x0, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(d.predict_eps_from_xstart(xt, t, x0), eps, 1e-3, 1e-4));
  const at::Tensor v = d.v_target(x0, t, eps);
  EXPECT_TRUE(at::allclose(d.predict_xstart_from_v(xt, t, v), x0, 1e-5, 1e-5));
  // v = sqrt(abar) eps - sqrt(1 - abar) x0 at t = 1 by hand
  const double ab = 0.72;
  EXPECT_NEAR(v[1][0][0][0].item<double>(),
              std::sqrt(ab) * eps[1][0][0][0].item<double>() -
                  std::sqrt(1 - ab) * x0[1][0][0][0].item<double>(),
              1e-6);
  // A model that outputs the true v has zero mse loss and predicts x0 exactly.
  const dd::ModelFn oracle = [&](const at::Tensor&, const at::Tensor&, const at::Tensor&) {
    return v;
  };
  const dd::TrainingLosses l = d.training_losses(oracle, x0, t, eps, at::Tensor());
  EXPECT_LT(l.loss.abs().max().item<double>(), 1e-10);
  EXPECT_FALSE(l.vb.defined());
  EXPECT_TRUE(at::allclose(d.p_mean_variance(oracle, xt, t, false, at::Tensor()).pred_xstart, x0,
                           1e-5, 1e-5));
}

TEST(GaussianDiffusion, ModelTimestepsMapAndRescale) {
  dd::GaussianDiffusionOptions o;
  o.schedule = "linear";
  o.steps = 1000;
  o.timestep_respacing = "ddim25";
  o.rescale_timesteps = true;
  const dd::GaussianDiffusion d(o);
  EXPECT_EQ(d.num_timesteps(), 25);
  EXPECT_EQ(d.original_num_timesteps(), 1000);
  const at::Tensor mt = d.model_timesteps(at::tensor({0, 1, 24}, at::kLong));
  EXPECT_EQ(mt.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(mt[2].item<float>(), 960.0f);
  const dd::GaussianDiffusion r = d.respaced("");
  EXPECT_EQ(r.num_timesteps(), 1000);
  const at::Tensor mi =
      dd::GaussianDiffusion(o).respaced("10").model_timesteps(at::tensor({9}, at::kLong));
  EXPECT_FLOAT_EQ(mi.item<float>(), 999.0f);
  o.rescale_timesteps = false;
  EXPECT_EQ(dd::GaussianDiffusion(o).model_timesteps(at::tensor({1}, at::kLong)).item<int64_t>(),
            40);
  o.timestep_respacing = "ddim37";
  EXPECT_THROW(dd::GaussianDiffusion{o}, dmtrain::Error);
  EXPECT_THROW(dd::parse_var_type("learned-range"), dmtrain::Error);
}

namespace {

struct LossCase {
  const char* name;
  const char* schedule;
  int64_t steps;
  const char* mean;
  const char* var;
  const char* loss;
  bool rescale;
  const char* respacing;
  bool labels;
};

// Must equal LOSS_CASES of make_fixtures.py.
const LossCase kLossCases[] = {
    {"mse_linear", "linear", 1000, "epsilon", "fixed_small", "mse", false, "", false},
    {"rmse_cosine_lr", "cosine", 4000, "epsilon", "learned_range", "rescaled_mse", true, "", false},
    {"kl_linear_lr_y", "linear", 1000, "epsilon", "learned_range", "kl", false, "", true},
    {"rkl_cosine_fl", "cosine", 100, "epsilon", "fixed_large", "rescaled_kl", true, "", false},
    {"mse_x0_learned_y", "linear", 1000, "x0", "learned", "mse", false, "", true},
    {"rmse_cosine_lr_spaced", "cosine", 1000, "epsilon", "learned_range", "rescaled_mse", true,
     "100", false},
};

}  // namespace

TEST(GaussianDiffusion, TrainingLossesMatchImprovedDiffusion) {
  for (const LossCase& c : kLossCases) {
    SCOPED_TRACE(c.name);
    dd::GaussianDiffusionOptions o;
    o.schedule = c.schedule;
    o.steps = c.steps;
    o.mean_type = dd::parse_mean_type(c.mean);
    o.var_type = dd::parse_var_type(c.var);
    o.loss_type = dd::parse_loss_type(c.loss);
    o.rescale_timesteps = c.rescale;
    o.timestep_respacing = c.respacing;
    const dd::GaussianDiffusion d(o);
    const bool learned =
        o.var_type == dd::VarType::kLearned || o.var_type == dd::VarType::kLearnedRange;
    const std::string key = std::string("loss/") + c.name + "/";
    const at::Tensor y = c.labels ? fx("y") : at::Tensor();
    const dd::TrainingLosses l = d.training_losses(dd::testing::toy_model(learned ? 6 : 3),
                                                   fx("x0"), fx(key + "t"), fx("loss_noise"), y);
    const double err = dd::testing::max_rel_err(l.loss, fx(key + "loss"));
    RecordProperty(std::string(c.name) + "_max_rel_err", c10::str(err));
    EXPECT_LT(err, 1e-4);
    // ID returns mse only for the mse losses and vb only with a learned variance under them.
    if (dd::testing::fixtures_has(key + "mse")) {
      EXPECT_LT(dd::testing::max_rel_err(l.mse, fx(key + "mse")), 1e-4);
    }
    if (dd::testing::fixtures_has(key + "vb")) {
      EXPECT_LT(dd::testing::max_rel_err(l.vb, fx(key + "vb")), 1e-4);
    }
  }
}

TEST(GaussianDiffusion, HybridVbTermDoesNotTrainTheMean) {
  dd::GaussianDiffusionOptions o;
  o.steps = 50;
  o.var_type = dd::VarType::kLearnedRange;
  o.loss_type = dd::LossType::kRescaledMse;
  const dd::GaussianDiffusion d(o);
  const at::Tensor out = at::randn({2, 6, 2, 2}).requires_grad_(true);
  const dd::ModelFn model = [&](const at::Tensor&, const at::Tensor&, const at::Tensor&) {
    return out;
  };
  const at::Tensor x0 = at::rand({2, 3, 2, 2}) * 2 - 1;
  const dd::TrainingLosses l =
      d.training_losses(model, x0, at::tensor({3, 20}, at::kLong), at::randn_like(x0), {});
  l.vb.sum().backward();
  EXPECT_EQ(out.grad().slice(1, 0, 3).abs().max().item<float>(), 0.0f);
  EXPECT_GT(out.grad().slice(1, 3, 6).abs().max().item<float>(), 0.0f);
}
