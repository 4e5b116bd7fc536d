// Loss landscape: Lanczos on Hessian-vector products against a quadratic with known eigenvalues,
// the HVP of the tiny UNet against finite differences of its gradient (double backward through
// GroupNorm and attention), and the line interpolation's endpoints against the two models' losses.
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "dmtrain/eval/landscape.hpp"
#include "dmtrain/util/error.hpp"
#include "tiny_model.hpp"

namespace {
namespace ev = dmtrain::eval;

// A = Q diag(lambda) Q^T with a random orthogonal Q: the Hessian of 0.5 x^T A x is A.
struct Quadratic {
  at::Tensor a;
  std::vector<at::Tensor> params;  // x split into a [3] and a [2, 2] tensor (7 dimensions)
  at::Tensor loss() const {
    const at::Tensor x = at::cat({params[0].reshape({-1}), params[1].reshape({-1})});
    return 0.5 * at::dot(x, at::mv(a, x));
  }
};

Quadratic make_quadratic(const std::vector<double>& lambda) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t n = static_cast<int64_t>(lambda.size());
  const at::Tensor q = std::get<0>(at::linalg_qr(at::randn({n, n}, g, at::kDouble)));
  Quadratic quad;
  quad.a = at::matmul(q * at::tensor(lambda, at::kDouble).unsqueeze(0), q.t());
  quad.params = {at::randn({3}, g, at::kDouble).requires_grad_(),
                 at::randn({2, 2}, g, at::kDouble).requires_grad_()};
  return quad;
}

TEST(Hessian, LanczosFindsTheTopEigenvaluesOfAQuadratic) {
  const Quadratic quad = make_quadratic({5.0, 3.0, 2.0, 1.0, 0.5, -1.0, -4.0});
  const ev::HvpFn hvp = ev::make_hvp([&] { return quad.loss(); }, quad.params);
  // The HVP is A v.
  const at::Tensor v = at::randn({7}, at::kDouble);
  const auto hv = hvp({v.narrow(0, 0, 3), v.narrow(0, 3, 4).view({2, 2})});
  const at::Tensor hv_flat = at::cat({hv[0].reshape({-1}), hv[1].reshape({-1})});
  EXPECT_TRUE(at::allclose(hv_flat, at::mv(quad.a, v), 1e-12, 1e-12));
  ev::LanczosOptions o;
  o.k = 3;
  o.steps = 7;
  const auto top = ev::top_hessian_eigenvalues(hvp, quad.params, o);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_NEAR(top[0], 5.0, 1e-9);
  EXPECT_NEAR(top[1], 3.0, 1e-9);
  EXPECT_NEAR(top[2], 2.0, 1e-9);
  // A Krylov space of 4 already pins the dominant eigenvalue to a good approximation, never above.
  o.steps = 4;
  o.k = 1;
  const double approx = ev::top_hessian_eigenvalues(hvp, quad.params, o)[0];
  EXPECT_LE(approx, 5.0 + 1e-9);
  EXPECT_GT(approx, 4.0);
}

struct TinySetup {
  dmtrain::models::UNetModel model = ev::testing::tiny_model(1);
  dmtrain::diffusion::GaussianDiffusion diffusion = ev::testing::tiny_diffusion();
  ev::FixedBatch batch;
  TinySetup() {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
    batch = ev::make_fixed_batch(at::randint(0, 256, {2, 8, 8, 3}, g, at::kByte), {},
                                 diffusion.num_timesteps(), 7);
  }
  at::Tensor loss() { return ev::fixed_batch_loss(diffusion, ev::testing::fn_of(model), batch); }
};

TEST(Hessian, TinyUnetHvpMatchesFiniteDifferencesOfTheGradient) {
  TinySetup s;
  const auto params = s.model->parameters();
  const ev::HvpFn hvp = ev::make_hvp([&] { return s.loss(); }, params);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
  std::vector<at::Tensor> u, v;
  for (const auto& p : params) {
    u.push_back(at::randn(p.sizes(), g, at::kFloat));
    v.push_back(at::randn(p.sizes(), g, at::kFloat));
  }
  const auto hv = hvp(v), hu = hvp(u);
  double uhv = 0, vhu = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    uhv += at::dot(u[i].reshape({-1}).to(at::kDouble), hv[i].reshape({-1}).to(at::kDouble))
               .item<double>();
    vhu += at::dot(v[i].reshape({-1}).to(at::kDouble), hu[i].reshape({-1}).to(at::kDouble))
               .item<double>();
  }
  EXPECT_NEAR(uhv, vhu, 1e-3 * std::abs(uhv) + 1e-4);  // the Hessian is symmetric
  ev::LanczosOptions o;
  o.k = 2;
  o.steps = 6;
  const auto top = ev::top_hessian_eigenvalues(hvp, params, o);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_GE(top[0], top[1]);
  EXPECT_TRUE(std::isfinite(top[0]));
  // (The finite differences below move the parameters in place, which invalidates hvp's graph:
  // it must not be used after them.)
  // u . H v against the central difference of u . grad along v (independent: first-order
  // autograd only).
  const double eps = 1e-3;
  auto u_dot_grad = [&](double step) {
    {
      at::NoGradGuard ng;
      for (size_t i = 0; i < params.size(); ++i) params[i].add_(v[i] * step);
    }
    const at::Tensor l = s.loss();
    const auto gr = torch::autograd::grad({l}, params, {}, false, false, true);
    double d = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      if (gr[i].defined())
        d += at::dot(u[i].reshape({-1}).to(at::kDouble), gr[i].reshape({-1}).to(at::kDouble))
                 .item<double>();
    }
    at::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) params[i].sub_(v[i] * step);
    return d;
  };
  const double fd = (u_dot_grad(eps) - u_dot_grad(-eps)) / (2 * eps);
  EXPECT_NEAR(uhv, fd, 0.05 * std::abs(fd) + 1e-3);
}

TEST(Landscape, LineEndpointsAreTheModelsLossesAndParamsAreRestored) {
  TinySetup s;
  auto a = ev::testing::tiny_model(2), b = ev::testing::tiny_model(3);
  const auto batch = s.batch;
  at::NoGradGuard ng;
  const double la = ev::fixed_batch_loss(s.diffusion, ev::testing::fn_of(a), batch).item<double>();
  const double lb = ev::fixed_batch_loss(s.diffusion, ev::testing::fn_of(b), batch).item<double>();
  const double l0 = s.loss().item<double>();
  const auto params = s.model->parameters();
  const auto alphas = ev::linspace(0.0, 1.0, 3);
  EXPECT_EQ(alphas, (std::vector<double>{0.0, 0.5, 1.0}));
  const auto line = ev::loss_along_line(params, a->parameters(), b->parameters(), alphas,
                                        [&] { return s.loss(); });
  ASSERT_EQ(line.size(), 3u);
  EXPECT_EQ(line[0].loss, la);
  EXPECT_EQ(line[2].loss, lb);
  EXPECT_NE(line[1].loss, la);
  EXPECT_EQ(s.loss().item<double>(), l0);  // the evaluated model got its weights back
  EXPECT_THROW(
      ev::loss_along_line(params, {params[0]}, b->parameters(), alphas, [&] { return s.loss(); }),
      dmtrain::Error);
}

}  // namespace
