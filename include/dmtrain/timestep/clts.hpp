// CLTS, the curriculum-learning timestep schedule (paper Sec. 4.1, method.md Sec. 1), as pure
// functions of the optimizer iteration k.
//
//   G(t)    = exp(-(t/T - mu)^2 / (2 sigma^2))      t in {0..T-1}, normalised time t/T   (Eq. 7)
//   Ghat(t) = G(t) / sum_s G(s)
//   lam_k   = min(1, k / K_target)                                                       (Eq. 8)
//   p_k(t)  = (1 - lam_k) / T + lam_k Ghat(t)
//
// Invariants: p_k is float64 [T], every entry > 0, sums to 1 (up to rounding); p_0 is uniform and
// p_k is constant for k >= K_target. Nothing here holds state: a CLTS run's only sampler state is
// k, which the trainer owns.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "dmtrain/timestep/options.hpp"

namespace dmtrain::timestep {

// Throws dmtrain::Error naming `<prefix>.num_timesteps`, `<prefix>.clts.mu`, `<prefix>.clts.sigma`
// or `<prefix>.clts.target_iteration` when T < 1, mu outside [0, 1], sigma <= 0 or K_target <= 0.
void validate(const CltsOptions& options, const std::string& prefix = "timestep");

// lam_k = min(1, k / K_target). Requires k >= 0, K_target > 0.
double clts_lambda(int64_t iteration, int64_t target_iteration);

// The normalised Gaussian Ghat over {0..T-1}, float64 [T].
at::Tensor clts_gaussian(int64_t num_timesteps, double mu, double sigma);

// p_k(t), float64 [T] on the CPU.
at::Tensor clts_probabilities(int64_t num_timesteps, int64_t iteration, double mu, double sigma,
                              int64_t target_iteration);

}  // namespace dmtrain::timestep
