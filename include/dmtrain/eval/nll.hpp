// image_nll: a data set's negative log-likelihood in bits per dimension under a diffusion model,
// as improved-diffusion's scripts/image_nll.py: every image goes through the whole variational
// bound (diffusion::calc_bpd_loop over all T steps of the given process) and the data set's
// bits/dim is the mean of total_bpd over the images.
//
// Images come as the data area holds them (uint8 N,H,W,C) and are mapped to the model's [-1, 1]
// range with x / 127.5 - 1 (the Loader's mapping; no flip). Batches are consecutive images
// [b * batch, (b + 1) * batch). Noise: batch b draws from a diffusion::NoiseSource of the batch's
// shape seeded with `seed + b`, so a (seed, batch) pair reproduces every number; a different
// batch size gives a different (equally valid) Monte-Carlo estimate, as in the reference, whose
// randn_like also depends on the batching.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <ostream>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/diffusion/model_fn.hpp"

namespace dmtrain::eval {

struct NllOptions {
  int64_t batch = 16;
  uint64_t seed = 0;
  bool clip_denoised = true;  // as image_nll.py
  at::Device device = at::kCPU;
  // Called after each batch with (images done, total images).
  std::function<void(int64_t, int64_t)> progress;
};

struct NllResult {
  at::Tensor total_bpd;   // float64 [N], CPU
  at::Tensor prior_bpd;   // float64 [N]
  at::Tensor vb_bpd;      // float64 [N]: the sum of the T bound terms
  at::Tensor labels;      // int64 [N] or undefined
  double mean_bpd = 0.0;  // mean of total_bpd
};

// images: uint8 [N, H, W, C] (CPU); labels: int64 [N] for class-conditional models, else
// undefined. Throws dmtrain::Error on an empty set or bad shapes.
NllResult image_nll(const diffusion::GaussianDiffusion& diffusion, const diffusion::ModelFn& model,
                    const at::Tensor& images, const at::Tensor& labels, const NllOptions& options);

// CSV: header `index,label,total_bpd,prior_bpd,vb_bpd` and one row per image (label -1 when
// unconditional), doubles with 17 significant digits.
void write_nll_csv(std::ostream& os, const NllResult& result);

}  // namespace dmtrain::eval
