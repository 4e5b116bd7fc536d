// GaussianDiffusion: the forward process q, the model's reverse process p, and the training
// losses, numerically as ID's/GD's GaussianDiffusion + SpacedDiffusion (float64 tables, every
// per-timestep value looked up in float64 and cast to float32, float32 arithmetic in the same
// order as the reference).
//
// Every instance is a (possibly respaced) process: with timestep_respacing "" it keeps all
// `steps` steps and timestep_map is the identity. Indices t passed to the methods are in the
// respaced process, [0, num_timesteps()); the model is called with model_timesteps(t).
// Immutable after construction; methods are const and thread-compatible. The diffusion never
// owns the model: it is a ModelFn passed to each call.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dmtrain/diffusion/model_fn.hpp"
#include "dmtrain/diffusion/options.hpp"
#include "dmtrain/diffusion/schedule.hpp"

namespace dmtrain::diffusion {

struct MeanVariance {
  at::Tensor mean, variance, log_variance;
};

struct PMeanVariance {
  at::Tensor mean, variance, log_variance, pred_xstart;
};

// Per-sample [N] terms. `loss` always; `mse` for the mse loss types; `vb` (bits, rescaled as the
// loss uses it) when the loss includes the variational bound. Absent terms are undefined tensors.
struct TrainingLosses {
  at::Tensor loss, mse, vb;
};

struct VbTerms {
  at::Tensor output;       // [N] bits: decoder NLL at t == 0, KL(q || p) otherwise
  at::Tensor pred_xstart;  // x0 predictions
};

class GaussianDiffusion {
 public:
  // Throws dmtrain::Error on an unknown schedule, bad betas or a bad respacing spec.
  explicit GaussianDiffusion(GaussianDiffusionOptions options);

  // The same trained process respaced with `spec` ("" = all steps): how samplers get 250 steps
  // out of a model trained on 4000.
  GaussianDiffusion respaced(const std::string& spec) const;

  const GaussianDiffusionOptions& options() const { return options_; }
  int64_t num_timesteps() const { return schedule_.num_timesteps(); }
  int64_t original_num_timesteps() const { return original_num_timesteps_; }
  const Schedule& schedule() const { return schedule_; }
  const at::Tensor& alphas_cumprod() const { return schedule_.alphas_cumprod; }
  const std::vector<int64_t>& timestep_map() const { return timestep_map_; }

  // What the model sees for respaced indices t: timestep_map[t], times 1000 / T_original as
  // float32 when rescale_timesteps (int64 otherwise).
  at::Tensor model_timesteps(const at::Tensor& t) const;

  // q(x_t | x_0).
  MeanVariance q_mean_variance(const at::Tensor& x_start, const at::Tensor& t) const;
  at::Tensor q_sample(const at::Tensor& x_start, const at::Tensor& t,
                      const at::Tensor& noise) const;
  // q(x_{t-1} | x_t, x_0); log_variance is the clipped one.
  MeanVariance q_posterior_mean_variance(const at::Tensor& x_start, const at::Tensor& x_t,
                                         const at::Tensor& t) const;

  // p(x_{t-1} | x_t) from the model: calls model(x, model_timesteps(t), y).
  PMeanVariance p_mean_variance(const ModelFn& model, const at::Tensor& x, const at::Tensor& t,
                                bool clip_denoised, const at::Tensor& y) const;
  // The same from an already computed model output (what training reuses).
  PMeanVariance p_mean_variance_from_output(const at::Tensor& model_output, const at::Tensor& x,
                                            const at::Tensor& t, bool clip_denoised) const;

  at::Tensor predict_xstart_from_eps(const at::Tensor& x_t, const at::Tensor& t,
                                     const at::Tensor& eps) const;
  at::Tensor predict_eps_from_xstart(const at::Tensor& x_t, const at::Tensor& t,
                                     const at::Tensor& pred_xstart) const;
  at::Tensor predict_xstart_from_v(const at::Tensor& x_t, const at::Tensor& t,
                                   const at::Tensor& v) const;
  // v = sqrt(abar) eps - sqrt(1 - abar) x0: the v-prediction target.
  at::Tensor v_target(const at::Tensor& x_start, const at::Tensor& t,
                      const at::Tensor& noise) const;

  // One term of the variational bound in bits per dimension (ID's _vb_terms_bpd).
  VbTerms vb_terms_bpd(const ModelFn& model, const at::Tensor& x_start, const at::Tensor& x_t,
                       const at::Tensor& t, bool clip_denoised, const at::Tensor& y) const;
  VbTerms vb_terms_bpd_from_output(const at::Tensor& model_output, const at::Tensor& x_start,
                                   const at::Tensor& x_t, const at::Tensor& t,
                                   bool clip_denoised) const;

  // Losses for one timestep per sample (ID's training_losses). `noise` undefined = drawn with
  // randn_like. With a learned variance under the mse losses, the vb term sees the mean output
  // detached, so it trains only the variance.
  TrainingLosses training_losses(const ModelFn& model, const at::Tensor& x_start,
                                 const at::Tensor& t, const at::Tensor& noise,
                                 const at::Tensor& y) const;

  // KL(q(x_{T-1} | x_0) || N(0, I)) in bits per dimension, [N].
  at::Tensor prior_bpd(const at::Tensor& x_start) const;

 private:
  GaussianDiffusionOptions options_;
  at::Tensor base_betas_;  // the trained (un-respaced) process, for respaced()
  int64_t original_num_timesteps_ = 0;
  Schedule schedule_;
  std::vector<int64_t> timestep_map_;
  at::Tensor timestep_map_tensor_;  // int64 CPU
};

}  // namespace dmtrain::diffusion
