// SpeedSampler: SpeeD's asymmetric timestep sampling with its change-aware loss weight (Wang et
// al., "A Closer Look at Time Steps is Worthy of Triple Speed-Up for Diffusion Model Training",
// arXiv 2405.17403), as its public code (NUS-HPC-AI-Lab/SpeeD, Speed_IDDPM) computes it; read
// there, written here from the formulas. With T timesteps and abar_t the cumulative alphas:
//
//   tau_T  = round(tau T)                      the start of the "convergence area" of large t
//   p(t)   = k / Z for t < tau_T, 1 / Z else   (Z normalises; k > 1 suppresses the large t)
//   m      = 1 + first t with d/dt sqrt(1 - abar_t) < threshold   ("meaningful steps")
//   dual:  draw B/2 + 1 (integer division) timesteps t_i from p, pair each with t'_i = |m - t_i|
//          (m - t_i below m, t_i - m above; clamped to T - 1), keep the first B of [t, t']
//   w(t)   = c + (1 - 2c) (g_t - min g) / (max g - min g) for t < tau_T, 1 else,
//          g_t = d/dt (1 - abar_t), c = 1 - lambda                  (change-aware weight)
//
// d/dt is numpy.gradient (central differences, one-sided at the ends), as the reference. Two
// readings of ours, because the reference fixes T = 1000:
//  - tau is a fraction of T (the reference's tau = 700 of 1000 is 0.7);
//  - the threshold of m is per unit of normalised time t/T: the reference's 1e-4 per step at
//    T = 1000 is 0.1, i.e. a step's increment must fall below 0.1 / T. At T = 1000 both agree.
// w(t) is a loss weighting, not an importance weight: the draw returns it as `loss_weights`, and
// the trainer applies it to the terms `loss_weight.terms` names; the reference ("the weights act
// on the mse loss") multiplies only the MSE term, which `terms: mse`, the default, reproduces.
// Stateless apart from its kind: the draw is a function of the generator only.
#pragma once
#include <string>

#include "dmtrain/timestep/options.hpp"
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::timestep {

// Throws dmtrain::Error naming `<prefix>.speed.<field>`: tau outside (0, 1], k <= 0, lambda
// outside [0, 1], threshold <= 0.
void validate(const SpeedOptions& options, const std::string& prefix = "timestep");

// numpy.gradient of a 1-D float64 tensor (unit spacing).
at::Tensor numpy_gradient(const at::Tensor& f);

class SpeedSampler : public TimestepSampler {
 public:
  // alphas_cumprod: float64 [T] of the diffusion process the model trains on.
  SpeedSampler(const at::Tensor& alphas_cumprod, const SpeedOptions& options);
  Draw sample(int64_t batch, int64_t iteration, at::Generator& gen) override;
  at::Tensor probabilities(int64_t iteration) const override;  // of the first half (the draws)
  std::string name() const override { return "speed"; }

  int64_t tau_steps() const { return tau_steps_; }
  int64_t meaningful_steps() const { return meaningful_steps_; }
  const at::Tensor& weights() const { return weights_; }  // w(t), float64 [T]

 protected:
  at::Tensor weights_for(const at::Tensor& p, const at::Tensor& t) const override;  // ones
  at::Tensor loss_weights_for(const at::Tensor& t) const override;  // w(t); undefined when off

 private:
  SpeedOptions options_;
  int64_t tau_steps_ = 0;
  int64_t meaningful_steps_ = 0;
  at::Tensor p_;        // float64 [T]
  at::Tensor weights_;  // float64 [T]
};

}  // namespace dmtrain::timestep
