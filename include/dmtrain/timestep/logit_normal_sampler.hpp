// LogitNormalSampler: Stable Diffusion 3's logit-normal timestep density (Esser et al. 2024,
// "Scaling Rectified Flow Transformers", sec. 3.1), over normalised time u = t/T:
//
//   u = sigmoid(n), n ~ N(mean, std^2)       (continuous; SD3: mean 0, std 1)
//   p(t) = Phi((logit((t+1)/T) - mean) / std) - Phi((logit(t/T) - mean) / std)
//
// i.e. the exact probability that floor(T u) = t, so the discrete draw is the continuous one
// binned onto {0..T-1} (logit(0) = -inf, logit(1) = +inf: the ends hold the tails). Mapping SD3's
// rectified-flow time onto the diffusion's t/T is our reading: both run from data (0) to noise
// (1). Weight 1; stateless apart from its kind.
#pragma once
#include <string>

#include "dmtrain/timestep/options.hpp"
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::timestep {

// Throws dmtrain::Error naming `<prefix>.logit_normal.mean` (not finite) or `.std` (<= 0).
void validate(const LogitNormalOptions& options, const std::string& prefix = "timestep");

// p(t) above, float64 [T].
at::Tensor logit_normal_probabilities(int64_t num_timesteps, double mean, double std);

class LogitNormalSampler : public TimestepSampler {
 public:
  LogitNormalSampler(int64_t num_timesteps, const LogitNormalOptions& options);
  at::Tensor probabilities(int64_t /*iteration*/) const override { return p_; }
  std::string name() const override { return "logit-normal"; }

 protected:
  at::Tensor weights_for(const at::Tensor& p, const at::Tensor& t) const override;

 private:
  at::Tensor p_;
};

}  // namespace dmtrain::timestep
