// write_sample_grids: the run's fixed-noise progress pictures. Samples cfg.sample.count images
// from each EMA and (sample.raw) from the raw weights, each from a copy of the model (training
// state is untouched), with the configured sampler and respacing, every grid starting from the
// same noise seeded by cfg.sample.seed: the grids of one run are a film of it, and the raw and
// EMA grids of one iteration differ only by their weights. Files under <run_dir>/samples/:
//   iter_<k>.png            EMA 0 (the grid the run always wrote)
//   iter_<k>_ema<rate>.png  EMA 1, 2, ...
//   iter_<k>_raw.png        the raw weights
// Class-conditional models get labels 0, 1, 2, ...
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/ema/ema.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/util/progress.hpp"

namespace dmtrain::observe {

struct SampleGrid {
  std::string tag;   // "ema_<rate>" or "raw" (the TensorBoard image tag under samples/)
  std::string path;  // the PNG
};

std::vector<SampleGrid> write_sample_grids(const config::RunConfig& cfg,
                                           const models::UNetModelImpl& model, const ema::Ema& ema,
                                           const diffusion::GaussianDiffusion& diffusion,
                                           const at::Device& device, const std::string& run_dir,
                                           int64_t iteration);

// Due after p: every sample.every iterations, not after the run's last one (the trainer writes
// that grid with the final EMA export, also when the interval does not divide the run).
bool sample_grids_due(const config::RunConfig& cfg, const util::Progress& p);

}  // namespace dmtrain::observe
