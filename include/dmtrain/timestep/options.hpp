// The options of the timestep samplers and loss weightings, as plain structs without LibTorch:
// the config's timestep.* and loss_weight sections hold them directly (config/run_config.hpp),
// so each option has one home, here; the sampler and weighting headers document what they mean
// and validate them.
#pragma once
#include <cstdint>
#include <string>

namespace dmtrain::timestep {

// clts.hpp
struct CltsOptions {
  int64_t num_timesteps = 1000;       // T
  double mu = 0.3;                    // centre of the Gaussian in normalised time t/T [paper]
  double sigma = 1.0;                 // its width in normalised time [reading]
  int64_t target_iteration = 100000;  // K_target: iteration at which p is fully Gaussian [paper]
  // Weight each sampled loss by 1/(T p_k(t)) so the objective stays the uniform-t objective's
  // unbiased estimate. Off by default: CLTS means to train easy timesteps less [reading].
  bool importance_weighting = false;
};

// loss_second_moment_sampler.hpp
struct LossSecondMomentOptions {
  int64_t history_per_term = 10;
  double uniform_prob = 0.001;
};

// speed_sampler.hpp
struct SpeedOptions {
  double tau = 0.7;     // boundary of the suppressed large-t area, fraction of T [SpeeD: 700/1000]
  double k = 5.0;       // how much more likely t < tau_T is than t >= tau_T [SpeeD configs: 5]
  double lambda = 0.6;  // change-aware weight's lambda [SpeeD configs: 0.6]
  bool dual = true;     // pair each draw with its dual |m - t| [SpeeD: on]
  bool weighting = true;   // change-aware weight on (off: weight 1)
  double threshold = 0.1;  // m's threshold on d sqrt(1-abar) / d(t/T) (speed_sampler.hpp)
};

// logit_normal_sampler.hpp
struct LogitNormalOptions {
  double mean = 0.0;
  double std = 1.0;
};

// laplace_sampler.hpp
struct LaplaceOptions {
  double mu = 0.0;  // location of log SNR
  double b = 0.5;   // scale of log SNR
};

// loss_weighting.hpp
struct LossWeightingOptions {
  std::string kind = "none";  // none | min-snr | p2
  double gamma = 5.0;         // min-snr's gamma
  double p2_k = 1.0;          // p2's k
  double p2_gamma = 1.0;      // p2's gamma (paper of Choi et al.: 0.5 or 1)
  std::string terms = "mse";  // mse | all: the loss terms it multiplies (loss_weighting.hpp)
};

}  // namespace dmtrain::timestep
