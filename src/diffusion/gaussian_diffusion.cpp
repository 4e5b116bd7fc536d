#include "dmtrain/diffusion/gaussian_diffusion.hpp"

#include <cmath>
#include <utility>

#include "dmtrain/diffusion/beta_schedule.hpp"
#include "dmtrain/diffusion/losses.hpp"
#include "dmtrain/diffusion/respace.hpp"

namespace dmtrain::diffusion {
namespace {

bool learns_variance(VarType v) {
  return v == VarType::kLearned || v == VarType::kLearnedRange;
}

}  // namespace

GaussianDiffusion::GaussianDiffusion(GaussianDiffusionOptions options)
    : options_(std::move(options)) {
  base_betas_ = options_.betas.defined() ? Schedule::from_betas(options_.betas).betas
                                         : named_beta_schedule(options_.schedule, options_.steps);
  original_num_timesteps_ = base_betas_.size(0);
  if (options_.timestep_respacing.empty()) {
    schedule_ = Schedule::from_betas(base_betas_);
    for (int64_t i = 0; i < original_num_timesteps_; ++i) timestep_map_.push_back(i);
  } else {
    // Like ID's SpacedDiffusion, which create_gaussian_diffusion always builds: the respaced
    // betas come from the base process's float64 alphas_cumprod at the kept steps.
    Respacing r = respace_betas(
        base_betas_, space_timesteps(original_num_timesteps_, options_.timestep_respacing));
    schedule_ = Schedule::from_betas(r.betas);
    timestep_map_ = std::move(r.timestep_map);
  }
  timestep_map_tensor_ = at::tensor(at::ArrayRef<int64_t>(timestep_map_), at::kLong);
}

GaussianDiffusion GaussianDiffusion::respaced(const std::string& spec) const {
  GaussianDiffusionOptions o = options_;
  o.betas = base_betas_;
  o.timestep_respacing = spec;
  return GaussianDiffusion(o);
}

at::Tensor GaussianDiffusion::model_timesteps(const at::Tensor& t) const {
  at::Tensor mapped = on_device(timestep_map_tensor_, t.device()).index_select(0, t.to(at::kLong));
  if (options_.rescale_timesteps) {
    return mapped.to(at::kFloat) * (1000.0 / static_cast<double>(original_num_timesteps_));
  }
  return mapped;
}

MeanVariance GaussianDiffusion::q_mean_variance(const at::Tensor& x_start,
                                                const at::Tensor& t) const {
  const int64_t nd = x_start.dim();
  return {extract(schedule_.sqrt_alphas_cumprod, t, nd) * x_start,
          extract(schedule_.one_minus_alphas_cumprod, t, nd).expand_as(x_start),
          extract(schedule_.log_one_minus_alphas_cumprod, t, nd).expand_as(x_start)};
}

at::Tensor GaussianDiffusion::q_sample(const at::Tensor& x_start, const at::Tensor& t,
                                       const at::Tensor& noise) const {
  TORCH_CHECK(noise.sizes() == x_start.sizes(), "q_sample: noise and x_start shapes differ");
  const int64_t nd = x_start.dim();
  return extract(schedule_.sqrt_alphas_cumprod, t, nd) * x_start +
         extract(schedule_.sqrt_one_minus_alphas_cumprod, t, nd) * noise;
}

MeanVariance GaussianDiffusion::q_posterior_mean_variance(const at::Tensor& x_start,
                                                          const at::Tensor& x_t,
                                                          const at::Tensor& t) const {
  TORCH_CHECK(x_start.sizes() == x_t.sizes(), "q_posterior: x_start and x_t shapes differ");
  const int64_t nd = x_t.dim();
  return {extract(schedule_.posterior_mean_coef1, t, nd) * x_start +
              extract(schedule_.posterior_mean_coef2, t, nd) * x_t,
          extract(schedule_.posterior_variance, t, nd).expand_as(x_t),
          extract(schedule_.posterior_log_variance_clipped, t, nd).expand_as(x_t)};
}

PMeanVariance GaussianDiffusion::p_mean_variance(const ModelFn& model, const at::Tensor& x,
                                                 const at::Tensor& t, bool clip_denoised,
                                                 const at::Tensor& y) const {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == x.size(0), "p_mean_variance: t must be [N]");
  return p_mean_variance_from_output(model(x, model_timesteps(t), y), x, t, clip_denoised);
}

PMeanVariance GaussianDiffusion::p_mean_variance_from_output(const at::Tensor& model_output,
                                                             const at::Tensor& x,
                                                             const at::Tensor& t,
                                                             bool clip_denoised) const {
  const int64_t nd = x.dim();
  const int64_t c = x.size(1);
  PMeanVariance out;
  at::Tensor mean_output = model_output;
  if (learns_variance(options_.var_type)) {
    TORCH_CHECK(model_output.size(1) == 2 * c, "p_mean_variance: a learned variance needs ", 2 * c,
                " output channels, got ", model_output.sizes());
    mean_output = model_output.slice(1, 0, c);
    const at::Tensor var_values = model_output.slice(1, c, 2 * c);
    if (options_.var_type == VarType::kLearned) {
      out.log_variance = var_values;
    } else {
      const at::Tensor min_log = extract(schedule_.posterior_log_variance_clipped, t, nd);
      const at::Tensor max_log = extract(schedule_.log_betas, t, nd);
      const at::Tensor frac = (var_values + 1) / 2;  // [-1, 1] -> [min_var, max_var]
      out.log_variance = frac * max_log + (1 - frac) * min_log;
    }
    out.variance = at::exp(out.log_variance);
  } else {
    const bool large = options_.var_type == VarType::kFixedLarge;
    out.variance =
        extract(large ? schedule_.fixed_large_variance : schedule_.posterior_variance, t, nd)
            .expand_as(x);
    out.log_variance = extract(large ? schedule_.fixed_large_log_variance
                                     : schedule_.posterior_log_variance_clipped,
                               t, nd)
                           .expand_as(x);
  }
  TORCH_CHECK(mean_output.sizes() == x.sizes(), "p_mean_variance: model output ",
              model_output.sizes(), " does not fit x ", x.sizes());
  at::Tensor pred;
  switch (options_.mean_type) {
    case MeanType::kEpsilon:
      pred = predict_xstart_from_eps(x, t, mean_output);
      break;
    case MeanType::kStartX:
      pred = mean_output;
      break;
    case MeanType::kV:
      pred = predict_xstart_from_v(x, t, mean_output);
      break;
  }
  out.pred_xstart = clip_denoised ? pred.clamp(-1, 1) : pred;
  out.mean = q_posterior_mean_variance(out.pred_xstart, x, t).mean;
  return out;
}

at::Tensor GaussianDiffusion::predict_xstart_from_eps(const at::Tensor& x_t, const at::Tensor& t,
                                                      const at::Tensor& eps) const {
  const int64_t nd = x_t.dim();
  return extract(schedule_.sqrt_recip_alphas_cumprod, t, nd) * x_t -
         extract(schedule_.sqrt_recipm1_alphas_cumprod, t, nd) * eps;
}

at::Tensor GaussianDiffusion::predict_eps_from_xstart(const at::Tensor& x_t, const at::Tensor& t,
                                                      const at::Tensor& pred_xstart) const {
  const int64_t nd = x_t.dim();
  return (extract(schedule_.sqrt_recip_alphas_cumprod, t, nd) * x_t - pred_xstart) /
         extract(schedule_.sqrt_recipm1_alphas_cumprod, t, nd);
}

at::Tensor GaussianDiffusion::predict_xstart_from_v(const at::Tensor& x_t, const at::Tensor& t,
                                                    const at::Tensor& v) const {
  // sqrt(abar) x_t - sqrt(1 - abar) v = x0, since x_t = sqrt(abar) x0 + sqrt(1 - abar) eps.
  const int64_t nd = x_t.dim();
  return extract(schedule_.sqrt_alphas_cumprod, t, nd) * x_t -
         extract(schedule_.sqrt_one_minus_alphas_cumprod, t, nd) * v;
}

at::Tensor GaussianDiffusion::v_target(const at::Tensor& x_start, const at::Tensor& t,
                                       const at::Tensor& noise) const {
  const int64_t nd = x_start.dim();
  return extract(schedule_.sqrt_alphas_cumprod, t, nd) * noise -
         extract(schedule_.sqrt_one_minus_alphas_cumprod, t, nd) * x_start;
}

VbTerms GaussianDiffusion::vb_terms_bpd(const ModelFn& model, const at::Tensor& x_start,
                                        const at::Tensor& x_t, const at::Tensor& t,
                                        bool clip_denoised, const at::Tensor& y) const {
  return vb_terms_bpd_from_output(model(x_t, model_timesteps(t), y), x_start, x_t, t,
                                  clip_denoised);
}

VbTerms GaussianDiffusion::vb_terms_bpd_from_output(const at::Tensor& model_output,
                                                    const at::Tensor& x_start,
                                                    const at::Tensor& x_t, const at::Tensor& t,
                                                    bool clip_denoised) const {
  const MeanVariance q = q_posterior_mean_variance(x_start, x_t, t);
  const PMeanVariance p = p_mean_variance_from_output(model_output, x_t, t, clip_denoised);
  const double ln2 = std::log(2.0);
  const at::Tensor kl = mean_flat(normal_kl(q.mean, q.log_variance, p.mean, p.log_variance)) / ln2;
  const at::Tensor decoder_nll =
      mean_flat(-discretized_gaussian_log_likelihood(x_start, p.mean, 0.5 * p.log_variance)) / ln2;
  return {at::where(t.eq(0), decoder_nll, kl), p.pred_xstart};
}

TrainingLosses GaussianDiffusion::training_losses(const ModelFn& model, const at::Tensor& x_start,
                                                  const at::Tensor& t, const at::Tensor& noise_in,
                                                  const at::Tensor& y) const {
  const at::Tensor noise = noise_in.defined() ? noise_in : at::randn_like(x_start);
  const at::Tensor x_t = q_sample(x_start, t, noise);
  TrainingLosses terms;
  const LossType lt = options_.loss_type;
  if (lt == LossType::kKl || lt == LossType::kRescaledKl) {
    terms.loss = vb_terms_bpd(model, x_start, x_t, t, /*clip_denoised=*/false, y).output;
    if (lt == LossType::kRescaledKl) terms.loss = terms.loss * static_cast<double>(num_timesteps());
    terms.vb = terms.loss;
    return terms;
  }
  at::Tensor model_output = model(x_t, model_timesteps(t), y);
  if (learns_variance(options_.var_type)) {
    const int64_t c = x_t.size(1);
    TORCH_CHECK(model_output.size(1) == 2 * c, "training_losses: a learned variance needs ", 2 * c,
                " output channels, got ", model_output.sizes());
    const at::Tensor var_values = model_output.slice(1, c, 2 * c);
    model_output = model_output.slice(1, 0, c);
    // The vb term trains the variance only: the mean it sees is frozen.
    const at::Tensor frozen = at::cat({model_output.detach(), var_values}, 1);
    terms.vb = vb_terms_bpd_from_output(frozen, x_start, x_t, t, /*clip_denoised=*/false).output;
    if (lt == LossType::kRescaledMse) {
      // ID: "Divide by 1000 for equivalence with initial implementation."
      terms.vb = terms.vb * (static_cast<double>(num_timesteps()) / 1000.0);
    }
  }
  at::Tensor target;
  switch (options_.mean_type) {
    case MeanType::kEpsilon:
      target = noise;
      break;
    case MeanType::kStartX:
      target = x_start;
      break;
    case MeanType::kV:
      target = v_target(x_start, t, noise);
      break;
  }
  TORCH_CHECK(model_output.sizes() == target.sizes(), "training_losses: model output ",
              model_output.sizes(), " does not fit x ", target.sizes());
  terms.mse = mean_flat((target - model_output).pow(2));
  terms.loss = terms.vb.defined() ? terms.mse + terms.vb : terms.mse;
  return terms;
}

at::Tensor GaussianDiffusion::prior_bpd(const at::Tensor& x_start) const {
  const at::Tensor t = at::full({x_start.size(0)}, num_timesteps() - 1,
                                at::TensorOptions().dtype(at::kLong).device(x_start.device()));
  const MeanVariance q = q_mean_variance(x_start, t);
  const at::Tensor zero = at::zeros({}, q.mean.options());
  return mean_flat(normal_kl(q.mean, q.log_variance, zero, zero)) / std::log(2.0);
}

}  // namespace dmtrain::diffusion
