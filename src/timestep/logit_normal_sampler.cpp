#include "dmtrain/timestep/logit_normal_sampler.hpp"

#include <c10/util/StringUtil.h>

#include <cmath>
#include <limits>

#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

void validate(const LogitNormalOptions& o, const std::string& prefix) {
  if (!std::isfinite(o.mean)) {
    throw Error(c10::str(prefix, ".logit_normal.mean = ", o.mean, ": expected a finite value"));
  }
  if (!(o.std > 0.0) || !std::isfinite(o.std)) {
    throw Error(c10::str(prefix, ".logit_normal.std = ", o.std, ": expected a finite value > 0"));
  }
}

at::Tensor logit_normal_probabilities(int64_t num_timesteps, double mean, double std) {
  TORCH_CHECK(num_timesteps >= 1, "logit_normal_probabilities: T must be >= 1");
  const double T = static_cast<double>(num_timesteps);
  // Phi at the bin edge u = i / T; the ends are exact 0 and 1.
  auto cdf = [&](int64_t i) {
    if (i <= 0) return 0.0;
    if (i >= num_timesteps) return 1.0;
    const double u = static_cast<double>(i) / T;
    const double z = (std::log(u / (1.0 - u)) - mean) / std;
    return 0.5 * std::erfc(-z / std::sqrt(2.0));
  };
  at::Tensor p = at::empty({num_timesteps}, at::kDouble);
  auto a = p.accessor<double, 1>();
  double lo = cdf(0);
  for (int64_t t = 0; t < num_timesteps; ++t) {
    const double hi = cdf(t + 1);
    // A bin far in a tail can round to 0; keep every t drawable, as the other samplers do.
    a[t] = std::max(hi - lo, std::numeric_limits<double>::min());
    lo = hi;
  }
  return p / p.sum();
}

LogitNormalSampler::LogitNormalSampler(int64_t num_timesteps, const LogitNormalOptions& options)
    : TimestepSampler(num_timesteps) {
  validate(options);
  p_ = logit_normal_probabilities(num_timesteps, options.mean, options.std);
}

at::Tensor LogitNormalSampler::weights_for(const at::Tensor& /*p*/, const at::Tensor& t) const {
  return at::ones({t.size(0)}, at::kFloat);
}

}  // namespace dmtrain::timestep
