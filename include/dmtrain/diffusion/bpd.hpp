// The whole variational bound in bits per dimension (ID's calc_bpd_loop, as scripts/image_nll.py
// reports it): for t = T-1 down to 0, x_t ~ q(x_t | x_0) with the NoiseSource's next draw, the
// bound term L_t (decoder NLL at t = 0), plus the prior term; a dataset's bits/dim is the mean of
// total_bpd over its images.
//
// Columns of the [N, T] tensors follow the loop, as in ID: column j is t = T-1-j.
// Runs without gradients on x_start's device. Noise draws come from `noise` (one per t, shape of
// x_start), so a seeded source reproduces the reference's numbers.
#pragma once
#include <ATen/ATen.h>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/diffusion/model_fn.hpp"
#include "dmtrain/diffusion/noise_source.hpp"

namespace dmtrain::diffusion {

struct BpdResult {
  at::Tensor total_bpd;   // [N] = vb.sum(1) + prior_bpd
  at::Tensor prior_bpd;   // [N]
  at::Tensor vb;          // [N, T] bits/dim per term
  at::Tensor xstart_mse;  // [N, T] mean squared error of the x0 prediction
  at::Tensor mse;         // [N, T] mean squared error of the implied eps
};

BpdResult calc_bpd_loop(const GaussianDiffusion& d, const ModelFn& model, const at::Tensor& x_start,
                        const at::Tensor& y, bool clip_denoised, NoiseSource& noise);

}  // namespace dmtrain::diffusion
