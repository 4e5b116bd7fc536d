// write_sample_grid: the run's fixed-noise progress picture. Samples cfg.sample.count images
// from EMA rate index 0 (a copy of the model, so training state is untouched) with the
// configured sampler and respacing, starting from noise seeded by cfg.sample.seed (the same
// images every time, so grids of a run are comparable), and writes
// <run_dir>/samples/iter_<iteration>.png. Class-conditional models get labels 0, 1, 2, ...
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/train/ema.hpp"

namespace dmtrain::train {

// Returns the PNG's path.
std::string write_sample_grid(const config::RunConfig& cfg, const models::UNetModelImpl& model,
                              const Ema& ema, const diffusion::GaussianDiffusion& diffusion,
                              const at::Device& device, const std::string& run_dir,
                              int64_t iteration);

}  // namespace dmtrain::train
