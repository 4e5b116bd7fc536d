// A tiny UNet with every weight drawn from a seeded generator (the real init zeroes the output
// conv, which would make every sample equal to the mean and hide noise-handling bugs), plus a
// short diffusion, for the eval tests. (Linear schedules need T > 20: at T = 20 the last beta
// is 0.02 * 1000 / 20 = 1 and alphas_cumprod reaches 0.)
#pragma once
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/models/unet.hpp"

namespace dmtrain::eval::testing {

inline models::UNetOptions tiny_options(int64_t num_classes = 0, int64_t channels = 3) {
  models::UNetOptions o;
  o.image_size(8).in_channels(channels).model_channels(32).num_res_blocks(1);
  o.learn_sigma(true);
  o.attention_resolutions({2}).channel_mult({1, 2}).num_heads(2).num_classes(num_classes);
  return o;
}

inline models::UNetModel tiny_model(uint64_t seed, int64_t num_classes = 0, int64_t channels = 3) {
  models::UNetModel m(tiny_options(num_classes, channels));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.05, gen);
  m->eval();
  return m;
}

inline diffusion::GaussianDiffusion tiny_diffusion(int64_t steps = 40) {
  diffusion::GaussianDiffusionOptions o;
  o.schedule = "linear";
  o.steps = steps;
  o.var_type = diffusion::VarType::kLearnedRange;
  o.rescale_timesteps = true;
  return diffusion::GaussianDiffusion(o);
}

inline diffusion::ModelFn fn_of(models::UNetModel& m) {
  return [&m](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    return m->forward(x, t, y);
  };
}

}  // namespace dmtrain::eval::testing
