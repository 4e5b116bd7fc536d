#include "dmtrain/timestep/laplace_sampler.hpp"

#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

void validate(const LaplaceOptions& o, const std::string& prefix) {
  if (!std::isfinite(o.mu)) {
    throw Error(c10::str(prefix, ".laplace.mu = ", o.mu, ": expected a finite value"));
  }
  if (!(o.b > 0.0) || !std::isfinite(o.b)) {
    throw Error(c10::str(prefix, ".laplace.b = ", o.b, ": expected a finite value > 0"));
  }
}

at::Tensor laplace_probabilities(const at::Tensor& alphas_cumprod, double mu, double b) {
  TORCH_CHECK(alphas_cumprod.dim() == 1 && alphas_cumprod.numel() >= 1,
              "laplace_probabilities: expects a 1-D abar");
  const at::Tensor abar = alphas_cumprod.to(at::kCPU, at::kDouble).contiguous();
  const int64_t T = abar.numel();
  const auto a = abar.accessor<double, 1>();
  const auto lambda = [&](int64_t t) { return std::log(a[t] / (1.0 - a[t])); };
  const auto cdf = [&](double l) {  // also right at +-inf (abar exactly 1 or 0)
    const double z = (l - mu) / b;
    return z < 0 ? 0.5 * std::exp(z) : 1.0 - 0.5 * std::exp(-z);
  };
  at::Tensor p = at::empty({T}, at::kDouble);
  auto out = p.accessor<double, 1>();
  double upper = 1.0;  // F(e_0) = F(+inf)
  for (int64_t t = 0; t < T; ++t) {
    const double lower =
        t + 1 < T ? cdf(0.5 * (lambda(t) + lambda(t + 1))) : 0.0;  // F(e_{t+1}); e_T = -inf
    // A bin far in a tail can round to 0; keep every t drawable, as the other samplers do.
    out[t] = std::max(upper - lower, std::numeric_limits<double>::min());
    upper = lower;
  }
  return p / p.sum();
}

LaplaceSampler::LaplaceSampler(const at::Tensor& alphas_cumprod, const LaplaceOptions& options)
    : TimestepSampler(alphas_cumprod.numel()) {
  validate(options);
  p_ = laplace_probabilities(alphas_cumprod, options.mu, options.b);
}

at::Tensor LaplaceSampler::weights_for(const at::Tensor& /*p*/, const at::Tensor& t) const {
  return at::ones({t.size(0)}, at::kFloat);
}

}  // namespace dmtrain::timestep
