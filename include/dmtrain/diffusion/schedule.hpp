// The precomputed float64 tables of a Gaussian diffusion with betas beta_0..beta_{T-1}, named and
// computed as in ID's GaussianDiffusion.__init__ (same formulas, float64), plus the few derived
// tables the reference builds on the fly (1 - abar, log beta, the fixed-large variance) so that a
// lookup casts the same float64 value to float32 as the reference does.
//
// Contract: every table is a 1-D float64 CPU tensor of length T, immutable after construction.
// `extract` gathers table[t] in float64, casts to float32 and reshapes to [N, 1, ..., 1] (ndim
// dims) for broadcasting, like ID's _extract_into_tensor; it runs on t's device.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace dmtrain::diffusion {

struct Schedule {
  at::Tensor betas;
  at::Tensor alphas_cumprod;
  at::Tensor alphas_cumprod_prev;  // [1, abar_0, ..., abar_{T-2}]
  at::Tensor alphas_cumprod_next;  // [abar_1, ..., abar_{T-1}, 0]
  at::Tensor sqrt_alphas_cumprod;
  at::Tensor sqrt_one_minus_alphas_cumprod;
  at::Tensor one_minus_alphas_cumprod;
  at::Tensor log_one_minus_alphas_cumprod;
  at::Tensor sqrt_recip_alphas_cumprod;
  at::Tensor sqrt_recipm1_alphas_cumprod;
  at::Tensor posterior_variance;              // beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
  at::Tensor posterior_log_variance_clipped;  // log beta~_t, with beta~_0 replaced by beta~_1
  at::Tensor posterior_mean_coef1;            // of x0
  at::Tensor posterior_mean_coef2;            // of x_t
  at::Tensor log_betas;
  at::Tensor fixed_large_variance;  // [beta~_1, beta_1, ..., beta_{T-1}]
  at::Tensor fixed_large_log_variance;

  // Throws dmtrain::Error unless betas is 1-D, non-empty, with every value in (0, 1].
  static Schedule from_betas(const at::Tensor& betas);
  int64_t num_timesteps() const { return betas.size(0); }
};

at::Tensor extract(const at::Tensor& table, const at::Tensor& t, int64_t ndim);
// `table` on `device`: the table itself when it is there already, else a copy made once per
// (table, device) and cached for the life of the process (refreshed if the table is modified).
at::Tensor on_device(const at::Tensor& table, const at::Device& device);

}  // namespace dmtrain::diffusion
