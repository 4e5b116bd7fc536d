#include "dmtrain/diffusion/losses.hpp"

#include <cmath>
#include <numeric>
#include <vector>

namespace dmtrain::diffusion {

at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2) {
  return 0.5 * ((((-1.0 + logvar2) - logvar1) + at::exp(logvar1 - logvar2)) +
                (mean1 - mean2).pow(2) * at::exp(-logvar2));
}

at::Tensor approx_standard_normal_cdf(const at::Tensor& x) {
  return 0.5 * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3))));
}

at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales) {
  TORCH_CHECK(x.sizes() == means.sizes() && x.sizes() == log_scales.sizes(),
              "discretized_gaussian_log_likelihood: x, means and log_scales must share a shape");
  const at::Tensor centered = x - means;
  const at::Tensor inv_stdv = at::exp(-log_scales);
  const at::Tensor cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0));
  const at::Tensor cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0));
  const at::Tensor log_cdf_plus = at::log(cdf_plus.clamp_min(1e-12));
  const at::Tensor log_one_minus_cdf_min = at::log((1.0 - cdf_min).clamp_min(1e-12));
  const at::Tensor log_cdf_delta = at::log((cdf_plus - cdf_min).clamp_min(1e-12));
  return at::where(x < -0.999, log_cdf_plus,
                   at::where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta));
}

at::Tensor mean_flat(const at::Tensor& x) {
  // mean({}) would reduce everything, so a 1-D batch is already "flat".
  if (x.dim() <= 1) return x;
  std::vector<int64_t> dims(static_cast<size_t>(x.dim() - 1));
  std::iota(dims.begin(), dims.end(), 1);
  return x.mean(dims);
}

}  // namespace dmtrain::diffusion
