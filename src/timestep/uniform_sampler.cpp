#include "dmtrain/timestep/uniform_sampler.hpp"

namespace dmtrain::timestep {

UniformSampler::UniformSampler(int64_t num_timesteps) : TimestepSampler(num_timesteps) {}

at::Tensor UniformSampler::probabilities(int64_t /*iteration*/) const {
  return at::full({num_timesteps()}, 1.0 / static_cast<double>(num_timesteps()), at::kDouble);
}

at::Tensor UniformSampler::weights_for(const at::Tensor& /*p*/, const at::Tensor& t) const {
  return at::ones({t.size(0)}, at::kFloat);
}

}  // namespace dmtrain::timestep
