// Builds a TimestepSampler from its options (the config's `timestep` section).
#pragma once
#include <memory>
#include <string>

#include "dmtrain/timestep/clts.hpp"
#include "dmtrain/timestep/laplace_sampler.hpp"
#include "dmtrain/timestep/logit_normal_sampler.hpp"
#include "dmtrain/timestep/loss_second_moment_sampler.hpp"
#include "dmtrain/timestep/sampler.hpp"
#include "dmtrain/timestep/speed_sampler.hpp"

namespace dmtrain::timestep {

struct TimestepSamplerOptions {
  // uniform | clts | loss-second-moment | speed | logit-normal | laplace
  std::string kind = "uniform";
  int64_t num_timesteps = 1000;  // T; overrides clts.num_timesteps
  CltsOptions clts;
  LossSecondMomentOptions loss_second_moment;
  SpeedOptions speed;
  LogitNormalOptions logit_normal;
  LaplaceOptions laplace;
  // abar_t of the diffusion process, float64 [T]: needed by "speed" (its weights and m) and
  // "laplace" (log SNR) only.
  at::Tensor alphas_cumprod;
};

// Throws dmtrain::Error naming the key (`timestep.sampler`, `timestep.num_timesteps`,
// `timestep.clts.mu`, ...). Only the options of the chosen kind are checked.
void validate(const TimestepSamplerOptions& options, const std::string& prefix = "timestep");

std::unique_ptr<TimestepSampler> make_sampler(const TimestepSamplerOptions& options);

}  // namespace dmtrain::timestep
