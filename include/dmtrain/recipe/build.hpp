// Builders: the one place where config sections become component options. Each returns what
// the component's own validation accepts, or throws dmtrain::Error naming the config key.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/data/image_set.hpp"
#include "dmtrain/diffusion/options.hpp"
#include "dmtrain/models/unet_options.hpp"
#include "dmtrain/optim/mdlrc_adam.hpp"
#include "dmtrain/timestep/factory.hpp"
#include "dmtrain/timestep/loss_weighting.hpp"

namespace dmtrain::recipe {

// CPU intra-op threads when neither train.threads nor OMP_NUM_THREADS says: the cores that the
// machine's load leaves free, at least one. Why: OpenMP spin-waits at every parallel region, so
// one thread per core on a busy machine waits for descheduled threads (measured on 2 cores with
// 2 busy processes: 107 img/s with 2 threads, 192 with 1; unloaded 470 and 317).
int auto_cpu_threads(int cores, double load_average);
// The device to run on: "cpu", "cuda" (an error naming `what` when none is visible) or "auto";
// a CUDA device is cuda:<local_rank> (one GPU per process of a node).
at::Device pick_device(const std::string& want, const std::string& what, int local_rank = 0);
models::UNetOptions unet_options(const config::RunConfig& cfg);
diffusion::GaussianDiffusionOptions diffusion_options(const config::RunConfig& cfg);
timestep::TimestepSamplerOptions sampler_options(const config::RunConfig& cfg);
timestep::LossWeightingOptions weighting_options(const config::RunConfig& cfg);
// The whole data set of cfg.data, with the model's channel count. A train.batch_size whose batch
// cannot fit in memory is refused here (data::check_batch_fits).
std::shared_ptr<const data::ImageSet> open_data(const config::RunConfig& cfg);
// Images of data.format synthetic: four batches (at least 1024), at most 1/16 of ram_bytes.
int64_t synthetic_image_count(const config::RunConfig& cfg, double ram_bytes);
// MDLRC Adam(W) over `params`, driven by cfg.optim and K = cfg.train.iterations.
optim::MdlrcAdamOptions optimizer_options(const config::RunConfig& cfg);
std::unique_ptr<optim::MdlrcAdam> make_optimizer(std::vector<at::Tensor> params,
                                                 const config::RunConfig& cfg);

// What a run builds from cfg before its first step, built (or checked) without data, weights or
// training, so that `--dry-run` and the start of a run refuse what would otherwise fail later: the
// UNet options, the diffusion process, the respacings of sample.steps (the grids) and eval.steps
// (when eval.fid_every is on), the timestep sampler, the loss weighting, the optimizer's options
// and the final EMA file names. Throws dmtrain::Error naming the key. Returns the warnings it also
// logs: model.attention_resolutions the net never reaches, with the resolutions it has.
std::vector<std::string> check_run_config(const config::RunConfig& cfg);

}  // namespace dmtrain::recipe
