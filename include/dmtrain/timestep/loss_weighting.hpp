// Per-timestep loss weightings that the paper compares CLTS with (method.md Sec. 4). They are a
// choice separate from (and composable with) the timestep sampler: the trainer multiplies each
// example's loss by sampler weight * loss_weight.
//
//   SNR_t = abar_t / (1 - abar_t)
//   none:    w_t = 1
//   min-snr: w_t = min(SNR_t, gamma) / SNR_t = min(1, gamma / SNR_t)  (Hang et al. 2023, for
//            epsilon prediction; the second form is used so SNR_t = 0 gives 1, not 0/0)
//   p2:      w_t = 1 / (p2_k + SNR_t)^p2_gamma                           (Choi et al. 2022)
//
// Which terms of the loss a weighting multiplies (`terms`): with L_hybrid the per-example loss is
// mse + vb (the learned variance's VLB term). The authors' code of Min-SNR
// (TiankaiHang/Min-SNR-Diffusion-Training, gaussian_diffusion.py training_losses: loss =
// w * mse + vb) and of SpeeD multiply the MSE term only, so `mse` is the default:
//   terms = mse:  loss_i = iw_i (w_i mse_i + vb_i)
//   terms = all:  loss_i = iw_i w_i (mse_i + vb_i)
// where iw are the sampler's importance weights (always on the whole loss, as ID's non-uniform
// samplers) and w = (the sampler's own loss weighting, e.g. SpeeD's) x (this weighting). Near
// t = 0 Min-SNR-5's w is about 5e-5 on the cosine schedule: `all` starves the vb term there.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "dmtrain/timestep/options.hpp"
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::timestep {

enum class LossWeightingKind { kNone, kMinSnr, kP2 };

// Parses the kind; throws dmtrain::Error naming `<key>` otherwise.
LossWeightingKind parse_loss_weighting(const std::string& kind,
                                       const std::string& key = "loss_weight.kind");
// Throws dmtrain::Error naming `<prefix>.kind|terms|gamma|p2_k|p2_gamma`: unknown kind or terms,
// gamma <= 0, p2_k <= 0 (would give 1/0 at SNR 0), p2_gamma < 0.
void validate(const LossWeightingOptions& options, const std::string& prefix = "loss_weight");

// SNR_t for every t: float64 [T].
at::Tensor snr(const at::Tensor& alphas_cumprod);

// Weights of timesteps t (int64 [B]) under `options`, given abar (float64 [T]). float32 [B] on
// t's device.
at::Tensor loss_weight(const LossWeightingOptions& options, const at::Tensor& alphas_cumprod,
                       const at::Tensor& t);
at::Tensor loss_weight(LossWeightingKind kind, const at::Tensor& alphas_cumprod,
                       const at::Tensor& t, const LossWeightingOptions& params);

// A draw's weights split by the loss terms they multiply: `whole` the whole per-example loss,
// `mse` the MSE term alone (undefined when no weight goes there: then the objective is exactly
// whole * loss). Both float32 [B] on the CPU, like the draw.
struct TermWeights {
  at::Tensor whole, mse;
};
TermWeights split_weights(const LossWeightingOptions& options, const at::Tensor& alphas_cumprod,
                          const TimestepSampler::Draw& draw);

// The per-example objective from the diffusion's terms (float32 [B]): whole * loss when `mse` is
// undefined, else whole * (mse_weight * mse + vb) (vb undefined: whole * mse_weight * mse).
at::Tensor weighted_objective(const at::Tensor& loss, const at::Tensor& mse, const at::Tensor& vb,
                              const at::Tensor& whole, const at::Tensor& mse_weight);

}  // namespace dmtrain::timestep
