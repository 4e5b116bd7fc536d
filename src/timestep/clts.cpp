#include "dmtrain/timestep/clts.hpp"

#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>

#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

void validate(const CltsOptions& o, const std::string& prefix) {
  if (o.num_timesteps < 1) {
    throw Error(c10::str(prefix, ".num_timesteps = ", o.num_timesteps, ": expected >= 1"));
  }
  if (!(o.mu >= 0.0 && o.mu <= 1.0)) {
    throw Error(c10::str(prefix, ".clts.mu = ", o.mu, ": expected a value in [0, 1]"));
  }
  if (!(o.sigma > 0.0) || !std::isfinite(o.sigma)) {
    throw Error(c10::str(prefix, ".clts.sigma = ", o.sigma, ": expected a finite value > 0"));
  }
  if (o.target_iteration < 1) {
    throw Error(
        c10::str(prefix, ".clts.target_iteration = ", o.target_iteration, ": expected > 0"));
  }
}

double clts_lambda(int64_t iteration, int64_t target_iteration) {
  TORCH_CHECK(iteration >= 0, "clts_lambda: iteration must be >= 0, got ", iteration);
  TORCH_CHECK(target_iteration > 0, "clts_lambda: target_iteration must be > 0");
  if (iteration >= target_iteration) return 1.0;
  return static_cast<double>(iteration) / static_cast<double>(target_iteration);
}

at::Tensor clts_gaussian(int64_t num_timesteps, double mu, double sigma) {
  TORCH_CHECK(num_timesteps >= 1 && sigma > 0.0, "clts_gaussian: bad T or sigma");
  const auto x = at::arange(num_timesteps, at::kDouble) / static_cast<double>(num_timesteps);
  const auto g = at::exp(-(x - mu).square() / (2.0 * sigma * sigma));
  return g / g.sum();
}

at::Tensor clts_probabilities(int64_t num_timesteps, int64_t iteration, double mu, double sigma,
                              int64_t target_iteration) {
  const double lam = clts_lambda(iteration, target_iteration);
  const auto ghat = clts_gaussian(num_timesteps, mu, sigma);
  return ghat * lam + (1.0 - lam) / static_cast<double>(num_timesteps);
}

}  // namespace dmtrain::timestep
