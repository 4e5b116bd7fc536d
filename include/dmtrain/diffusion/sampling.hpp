// Samplers over a (typically respaced) GaussianDiffusion: DDPM ancestral sampling (ID's
// p_sample_loop) and DDIM (ID's ddim_sample_loop, with eta), step for step the reference's
// float32 arithmetic.
//
// Noise: draw 0 of the NoiseSource is x_T, then each step takes one draw (ID adds none at t == 0
// but draws it all the same). DDIM with eta == 0 is deterministic and takes no step draws. Draws
// are moved to `device`, where the whole loop runs. No gradients are recorded.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/diffusion/model_fn.hpp"
#include "dmtrain/diffusion/noise_source.hpp"

namespace dmtrain::diffusion {

struct SampleOptions {
  bool clip_denoised = true;  // clamp the x0 prediction to [-1, 1]
  at::Tensor y;               // class labels [N] or undefined
  at::Device device = at::kCPU;
  // Called after each step with (steps done, total steps).
  std::function<void(int64_t, int64_t)> progress;
};

// One reverse step each, exposed for tests and custom loops; `noise` has x's shape.
at::Tensor p_sample(const GaussianDiffusion& d, const ModelFn& model, const at::Tensor& x,
                    const at::Tensor& t, const at::Tensor& noise, const SampleOptions& o);
at::Tensor ddim_sample(const GaussianDiffusion& d, const ModelFn& model, const at::Tensor& x,
                       const at::Tensor& t, const at::Tensor& noise, double eta,
                       const SampleOptions& o);

// x_0 samples of noise.shape(), from t = T-1 down to 0.
at::Tensor p_sample_loop(const GaussianDiffusion& d, const ModelFn& model, NoiseSource& noise,
                         const SampleOptions& o = {});
at::Tensor ddim_sample_loop(const GaussianDiffusion& d, const ModelFn& model, NoiseSource& noise,
                            double eta = 0.0, const SampleOptions& o = {});

}  // namespace dmtrain::diffusion
