#include "dmtrain/timestep/clts_sampler.hpp"

namespace dmtrain::timestep {

namespace {
const CltsOptions& validated(const CltsOptions& o) {
  validate(o);
  return o;
}
}  // namespace

CltsSampler::CltsSampler(const CltsOptions& options)
    : TimestepSampler(validated(options).num_timesteps),
      options_(options),
      gaussian_(clts_gaussian(options.num_timesteps, options.mu, options.sigma)) {}

at::Tensor CltsSampler::probabilities(int64_t iteration) const {
  const double lam = clts_lambda(iteration, options_.target_iteration);
  return gaussian_ * lam + (1.0 - lam) / static_cast<double>(num_timesteps());
}

at::Tensor CltsSampler::weights_for(const at::Tensor& p, const at::Tensor& t) const {
  if (options_.importance_weighting) return importance_weights(p, t);
  return at::ones({t.size(0)}, at::kFloat);
}

}  // namespace dmtrain::timestep
