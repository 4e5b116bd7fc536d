// Beta schedules of the forward diffusion process, as named by improved-diffusion (ID) and
// guided-diffusion (GD): "linear" (Ho et al., scaled by 1000/T so any T keeps the same shape) and
// "cosine" (Nichol & Dhariwal, alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2, betas capped
// at 0.999 to avoid the singularity at s = 1).
//
// Contract: every function returns a new 1-D float64 CPU tensor of length T whose values are
// bit-for-bit those of the reference numpy code (same formulas, same evaluation order, computed in
// double). The caller owns the result.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>

namespace dmtrain::diffusion {

// "linear" | "cosine"; anything else (or T < 1) throws dmtrain::Error naming the value.
at::Tensor named_beta_schedule(const std::string& name, int64_t num_timesteps);

// Betas that discretise a cumulative alpha_bar(s), s in [0, 1]:
// beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta).
at::Tensor betas_for_alpha_bar(int64_t num_timesteps,
                               const std::function<double(double)>& alpha_bar,
                               double max_beta = 0.999);

}  // namespace dmtrain::diffusion
