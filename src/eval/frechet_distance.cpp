#include "dmtrain/eval/frechet_distance.hpp"

#include <ATen/core/grad_mode.h>

namespace dmtrain::eval {
namespace {

at::Tensor f64(const at::Tensor& t) {
  return t.detach().to(at::kCPU, at::kDouble);
}

// Symmetrises away round-off asymmetry (eigh reads one triangle only, so an asymmetric input
// would silently drop the other).
at::Tensor sym(const at::Tensor& a) {
  return (a + a.transpose(0, 1)) * 0.5;
}

}  // namespace

double trace_sqrt_product(const at::Tensor& sigma1, const at::Tensor& sigma2) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(sigma1.dim() == 2 && sigma1.size(0) == sigma1.size(1),
              "trace_sqrt_product: sigma1 must be square, got ", sigma1.sizes());
  TORCH_CHECK(sigma2.sizes() == sigma1.sizes(), "trace_sqrt_product: sigma2 has shape ",
              sigma2.sizes(), ", sigma1 ", sigma1.sizes());
  const at::Tensor s1 = sym(f64(sigma1)), s2 = sym(f64(sigma2));
  auto [w1, v1] = at::linalg_eigh(s1);
  const at::Tensor root1 =
      at::matmul(v1 * w1.clamp_min(0.0).sqrt().unsqueeze(0), v1.transpose(0, 1));
  const at::Tensor m = sym(at::matmul(at::matmul(root1, s2), root1));
  const at::Tensor w = at::linalg_eigvalsh(m);
  return w.clamp_min(0.0).sqrt().sum().item<double>();
}

double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(mu1.dim() == 1 && mu2.sizes() == mu1.sizes(),
              "frechet_distance: mu1 and mu2 must be [D] vectors of one size, got ", mu1.sizes(),
              " and ", mu2.sizes());
  const int64_t d = mu1.size(0);
  TORCH_CHECK(sigma1.dim() == 2 && sigma1.size(0) == d && sigma1.size(1) == d,
              "frechet_distance: sigma1 has shape ", sigma1.sizes(), ", mu has ", d, " entries");
  TORCH_CHECK(sigma2.sizes() == sigma1.sizes(), "frechet_distance: sigma2 has shape ",
              sigma2.sizes(), ", sigma1 ", sigma1.sizes());
  const double mean_term = (f64(mu1) - f64(mu2)).square().sum().item<double>();
  const double traces = f64(sigma1).trace().item<double>() + f64(sigma2).trace().item<double>();
  return mean_term + traces - 2.0 * trace_sqrt_product(sigma1, sigma2);
}

}  // namespace dmtrain::eval
