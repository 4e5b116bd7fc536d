// calc_bpd_loop against improved-diffusion's calc_bpd_loop (fixtures.npz, make_fixtures.py), with
// the same noise drawn from a seeded generator; plus the prior term's closed form.
#include <gtest/gtest.h>

#include <cmath>

#include "dmtrain/diffusion/bpd.hpp"
#include "fixtures.hpp"

namespace dd = dmtrain::diffusion;
using dd::testing::fx;

TEST(Bpd, MatchesImprovedDiffusion) {
  struct Case {
    const char* name;
    const char* schedule;
    int64_t steps;
    const char* var;
    bool rescale, clip;
    uint64_t seed;
  };
  // Must equal BPD_CASES of make_fixtures.py.
  const Case cases[] = {{"linear50_lr", "linear", 50, "learned_range", true, true, 21},
                        {"cosine20_fl", "cosine", 20, "fixed_large", false, false, 22}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    dd::GaussianDiffusionOptions o;
    o.schedule = c.schedule;
    o.steps = c.steps;
    o.var_type = dd::parse_var_type(c.var);
    o.rescale_timesteps = c.rescale;
    const dd::GaussianDiffusion d(o);
    const at::Tensor x0 = fx("x0");
    dd::NoiseSource noise(c.seed, x0.sizes().vec());
    const bool learned = o.var_type == dd::VarType::kLearnedRange;
    const dd::BpdResult r =
        dd::calc_bpd_loop(d, dd::testing::toy_model(learned ? 6 : 3), x0, {}, c.clip, noise);
    const std::string k = std::string("bpd/") + c.name + "/";
    ASSERT_EQ(r.vb.sizes(), fx(k + "vb").sizes());
    const double err = dd::testing::max_rel_err(r.total_bpd, fx(k + "total_bpd"));
    RecordProperty(std::string(c.name) + "_max_rel_err", c10::str(err));
    EXPECT_LT(err, 1e-3);
    EXPECT_LT((r.total_bpd - fx(k + "total_bpd")).abs().max().item<double>(),
              1e-3 * fx(k + "total_bpd").abs().max().item<double>());
    EXPECT_LT(dd::testing::max_rel_err(r.vb, fx(k + "vb"), 1e-4), 1e-3);
    EXPECT_LT(dd::testing::max_rel_err(r.prior_bpd, fx(k + "prior_bpd"), 1e-6), 1e-3);
    EXPECT_LT(dd::testing::max_rel_err(r.xstart_mse, fx(k + "xstart_mse")), 1e-3);
    EXPECT_LT(dd::testing::max_rel_err(r.mse, fx(k + "mse"), 1e-4), 1e-3);
  }
}

TEST(Bpd, PriorIsKlToStandardNormalInBits) {
  dd::GaussianDiffusionOptions o;
  o.betas = at::tensor({0.5, 0.5}, at::kDouble);  // abar_1 = 0.25
  const dd::GaussianDiffusion d(o);
  const at::Tensor x0 = at::full({1, 1, 1, 1}, 0.8f);
  // KL(N(0.5*0.8, 0.75) || N(0,1)) = 0.5 (0.75 + 0.16 - 1 - log 0.75), in bits
  const double want = 0.5 * (0.75 + 0.16 - 1 - std::log(0.75)) / std::log(2.0);
  EXPECT_NEAR(d.prior_bpd(x0).item<double>(), want, 1e-6);
}
