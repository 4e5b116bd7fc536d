#include "dmtrain/timestep/factory.hpp"

#include <c10/util/StringUtil.h>

#include "dmtrain/timestep/clts_sampler.hpp"
#include "dmtrain/timestep/uniform_sampler.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

void validate(const TimestepSamplerOptions& o, const std::string& prefix) {
  if (o.num_timesteps < 1) {
    throw Error(c10::str(prefix, ".num_timesteps = ", o.num_timesteps, ": expected >= 1"));
  }
  if (o.kind == "uniform") return;
  if (o.kind == "clts") {
    CltsOptions c = o.clts;
    c.num_timesteps = o.num_timesteps;
    validate(c, prefix);
    return;
  }
  if (o.kind == "loss-second-moment") {
    validate(o.loss_second_moment, prefix);
    return;
  }
  if (o.kind == "speed") {
    validate(o.speed, prefix);
    return;
  }
  if (o.kind == "logit-normal") {
    validate(o.logit_normal, prefix);
    return;
  }
  if (o.kind == "laplace") {
    validate(o.laplace, prefix);
    return;
  }
  throw Error(c10::str(
      prefix, ".sampler = '", o.kind,
      "': expected one of uniform, clts, loss-second-moment, speed, logit-normal, laplace"));
}

std::unique_ptr<TimestepSampler> make_sampler(const TimestepSamplerOptions& o) {
  validate(o);
  if (o.kind == "clts") {
    CltsOptions c = o.clts;
    c.num_timesteps = o.num_timesteps;
    return std::make_unique<CltsSampler>(c);
  }
  if (o.kind == "loss-second-moment") {
    return std::make_unique<LossSecondMomentSampler>(o.num_timesteps, o.loss_second_moment);
  }
  if (o.kind == "speed") {
    TORCH_CHECK(o.alphas_cumprod.defined() && o.alphas_cumprod.numel() == o.num_timesteps,
                "make_sampler: 'speed' needs alphas_cumprod of length num_timesteps");
    return std::make_unique<SpeedSampler>(o.alphas_cumprod, o.speed);
  }
  if (o.kind == "logit-normal") {
    return std::make_unique<LogitNormalSampler>(o.num_timesteps, o.logit_normal);
  }
  if (o.kind == "laplace") {
    TORCH_CHECK(o.alphas_cumprod.defined() && o.alphas_cumprod.numel() == o.num_timesteps,
                "make_sampler: 'laplace' needs alphas_cumprod of length num_timesteps");
    return std::make_unique<LaplaceSampler>(o.alphas_cumprod, o.laplace);
  }
  return std::make_unique<UniformSampler>(o.num_timesteps);
}

}  // namespace dmtrain::timestep
