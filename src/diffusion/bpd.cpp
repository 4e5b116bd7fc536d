#include "dmtrain/diffusion/bpd.hpp"

#include <ATen/core/grad_mode.h>

#include <vector>

#include "dmtrain/diffusion/losses.hpp"

namespace dmtrain::diffusion {

BpdResult calc_bpd_loop(const GaussianDiffusion& d, const ModelFn& model, const at::Tensor& x_start,
                        const at::Tensor& y, bool clip_denoised, NoiseSource& noise) {
  at::NoGradGuard no_grad;
  const auto t_opts = at::TensorOptions().dtype(at::kLong).device(x_start.device());
  std::vector<at::Tensor> vb, xstart_mse, mse;
  for (int64_t i = d.num_timesteps() - 1; i >= 0; --i) {
    const at::Tensor t = at::full({x_start.size(0)}, i, t_opts);
    const at::Tensor eps = noise.next(x_start.device());
    const at::Tensor x_t = d.q_sample(x_start, t, eps);
    const VbTerms out = d.vb_terms_bpd(model, x_start, x_t, t, clip_denoised, y);
    vb.push_back(out.output);
    xstart_mse.push_back(mean_flat((out.pred_xstart - x_start).pow(2)));
    mse.push_back(mean_flat((d.predict_eps_from_xstart(x_t, t, out.pred_xstart) - eps).pow(2)));
  }
  BpdResult r;
  r.vb = at::stack(vb, 1);
  r.xstart_mse = at::stack(xstart_mse, 1);
  r.mse = at::stack(mse, 1);
  r.prior_bpd = d.prior_bpd(x_start);
  r.total_bpd = r.vb.sum(1) + r.prior_bpd;
  return r;
}

}  // namespace dmtrain::diffusion
