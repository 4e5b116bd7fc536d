// Per-timestep loss weightings that the paper compares CLTS with (method.md Sec. 4). They are a
// choice separate from (and composable with) the timestep sampler: the trainer multiplies each
// example's loss by sampler weight * loss_weight.
//
//   SNR_t = abar_t / (1 - abar_t)
//   none:    w_t = 1
//   min-snr: w_t = min(SNR_t, gamma) / SNR_t = min(1, gamma / SNR_t)  (Hang et al. 2023, for
//            epsilon prediction; the second form is used so SNR_t = 0 gives 1, not 0/0)
//   p2:      w_t = 1 / (p2_k + SNR_t)^p2_gamma                           (Choi et al. 2022)
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace dmtrain::timestep {

enum class LossWeightingKind { kNone, kMinSnr, kP2 };

struct LossWeightingOptions {
  std::string kind = "none";  // none | min-snr | p2
  double gamma = 5.0;         // min-snr's gamma
  double p2_k = 1.0;          // p2's k
  double p2_gamma = 1.0;      // p2's gamma (paper of Choi et al.: 0.5 or 1)
};

// Parses the kind; throws dmtrain::Error naming `<key>` otherwise.
LossWeightingKind parse_loss_weighting(const std::string& kind,
                                       const std::string& key = "loss_weight.kind");
// Throws dmtrain::Error naming `<prefix>.kind|gamma|p2_k|p2_gamma`: unknown kind, gamma <= 0,
// p2_k <= 0 (would give 1/0 at SNR 0), p2_gamma < 0.
void validate(const LossWeightingOptions& options, const std::string& prefix = "loss_weight");

// SNR_t for every t: float64 [T].
at::Tensor snr(const at::Tensor& alphas_cumprod);

// Weights of timesteps t (int64 [B]) under `options`, given abar (float64 [T]). float32 [B] on
// t's device.
at::Tensor loss_weight(const LossWeightingOptions& options, const at::Tensor& alphas_cumprod,
                       const at::Tensor& t);
at::Tensor loss_weight(LossWeightingKind kind, const at::Tensor& alphas_cumprod,
                       const at::Tensor& t, const LossWeightingOptions& params);

}  // namespace dmtrain::timestep
