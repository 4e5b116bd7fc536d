// Options of a GaussianDiffusion, mirroring ID/GD's create_gaussian_diffusion arguments, plus
// v-prediction. Parsers turn the config strings into the enums and throw dmtrain::Error naming
// the bad value and the accepted ones.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace dmtrain::diffusion {

// What the model's (first C) output channels predict.
enum class MeanType {
  kEpsilon,  // the noise eps
  kStartX,   // x0
  kV,        // v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho)
};
// What the variance of p(x_{t-1} | x_t) is.
enum class VarType {
  kFixedSmall,    // posterior variance beta~_t
  kFixedLarge,    // beta_t (beta~_1 at t = 0, for a better decoder likelihood)
  kLearned,       // extra C channels are the log-variance
  kLearnedRange,  // extra C channels v in [-1, 1] interpolate log beta~_t .. log beta_t
};
enum class LossType {
  kMse,          // MSE of the prediction (+ vb when the variance is learned)
  kRescaledMse,  // same, vb scaled by T / 1000 (ID's L_hybrid)
  kKl,           // the variational bound term (bits)
  kRescaledKl,   // the same times T (an estimate of the whole bound)
};

MeanType parse_mean_type(const std::string& s);  // "epsilon" | "x0" | "v"
VarType parse_var_type(
    const std::string& s);  // "fixed_small" | "fixed_large" | "learned" | "learned_range"
LossType parse_loss_type(const std::string& s);  // "mse" | "rescaled_mse" | "kl" | "rescaled_kl"
std::string to_string(MeanType v);
std::string to_string(VarType v);
std::string to_string(LossType v);

struct GaussianDiffusionOptions {
  // The trained process: `betas` (1-D, float64 preferred) when defined, else the named schedule
  // `schedule` over `steps` steps.
  at::Tensor betas;
  std::string schedule = "linear";
  int64_t steps = 1000;
  MeanType mean_type = MeanType::kEpsilon;
  VarType var_type = VarType::kFixedSmall;
  LossType loss_type = LossType::kMse;
  // Model sees t * 1000 / steps (float) instead of the integer t.
  bool rescale_timesteps = false;
  // "" = all steps; else a space_timesteps spec ("250", "ddim25", "10,15,20").
  std::string timestep_respacing;
};

}  // namespace dmtrain::diffusion
