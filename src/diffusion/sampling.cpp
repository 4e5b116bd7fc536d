#include "dmtrain/diffusion/sampling.hpp"

#include <ATen/core/grad_mode.h>

namespace dmtrain::diffusion {
namespace {

// 1 where t != 0, as [N, 1, ..., 1]: ID adds no noise on the last step.
at::Tensor nonzero_mask(const at::Tensor& t, int64_t ndim) {
  std::vector<int64_t> shape(static_cast<size_t>(ndim), 1);
  shape[0] = t.size(0);
  return t.ne(0).to(at::kFloat).view(shape);
}

at::Tensor y_on(const SampleOptions& o) {
  return o.y.defined() ? o.y.to(o.device) : o.y;
}

template <typename Step>
at::Tensor run_loop(const GaussianDiffusion& d, NoiseSource& noise, const SampleOptions& o,
                    bool step_noise, Step step) {
  at::NoGradGuard no_grad;
  at::Tensor x = noise.next(o.device);
  const int64_t steps = d.num_timesteps();
  const auto t_opts = at::TensorOptions().dtype(at::kLong).device(o.device);
  for (int64_t i = steps - 1; i >= 0; --i) {
    const at::Tensor t = at::full({x.size(0)}, i, t_opts);
    const at::Tensor z = step_noise ? noise.next(o.device) : at::Tensor();
    x = step(x, t, z);
    if (o.progress) o.progress(steps - i, steps);
  }
  return x;
}

}  // namespace

at::Tensor p_sample(const GaussianDiffusion& d, const ModelFn& model, const at::Tensor& x,
                    const at::Tensor& t, const at::Tensor& noise, const SampleOptions& o) {
  const PMeanVariance out = d.p_mean_variance(model, x, t, o.clip_denoised, y_on(o));
  return out.mean + nonzero_mask(t, x.dim()) * at::exp(0.5 * out.log_variance) * noise;
}

at::Tensor ddim_sample(const GaussianDiffusion& d, const ModelFn& model, const at::Tensor& x,
                       const at::Tensor& t, const at::Tensor& noise, double eta,
                       const SampleOptions& o) {
  const PMeanVariance out = d.p_mean_variance(model, x, t, o.clip_denoised, y_on(o));
  // Re-derived from x0 so that x0 and v predictions take the same path.
  const at::Tensor eps = d.predict_eps_from_xstart(x, t, out.pred_xstart);
  const at::Tensor abar = extract(d.schedule().alphas_cumprod, t, x.dim());
  const at::Tensor abar_prev = extract(d.schedule().alphas_cumprod_prev, t, x.dim());
  const at::Tensor sigma =
      eta * at::sqrt((1 - abar_prev) / (1 - abar)) * at::sqrt(1 - abar / abar_prev);
  const at::Tensor mean_pred =
      out.pred_xstart * at::sqrt(abar_prev) + at::sqrt(1 - abar_prev - sigma.pow(2)) * eps;
  if (!noise.defined()) return mean_pred;  // eta == 0: sigma is 0
  return mean_pred + nonzero_mask(t, x.dim()) * sigma * noise;
}

at::Tensor p_sample_loop(const GaussianDiffusion& d, const ModelFn& model, NoiseSource& noise,
                         const SampleOptions& o) {
  return run_loop(d, noise, o, /*step_noise=*/true,
                  [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& z) {
                    return p_sample(d, model, x, t, z, o);
                  });
}

at::Tensor ddim_sample_loop(const GaussianDiffusion& d, const ModelFn& model, NoiseSource& noise,
                            double eta, const SampleOptions& o) {
  return run_loop(d, noise, o, /*step_noise=*/eta != 0.0,
                  [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& z) {
                    return ddim_sample(d, model, x, t, z, eta, o);
                  });
}

}  // namespace dmtrain::diffusion
