// UniformSampler: p(t) = 1/T for every t and every iteration, weight 1 (the baseline, ID's
// "uniform"). Stateless apart from its kind.
#pragma once
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::timestep {

class UniformSampler : public TimestepSampler {
 public:
  explicit UniformSampler(int64_t num_timesteps);
  at::Tensor probabilities(int64_t iteration) const override;
  std::string name() const override { return "uniform"; }

 protected:
  at::Tensor weights_for(const at::Tensor& p, const at::Tensor& t) const override;
};

}  // namespace dmtrain::timestep
