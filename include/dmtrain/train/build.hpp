// Builders: the one place where config sections become component options. Each returns what
// the component's own validation accepts, or throws dmtrain::Error naming the config key.
#pragma once
#include <torch/optim/optimizer.h>

#include <memory>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/data/image_set.hpp"
#include "dmtrain/diffusion/options.hpp"
#include "dmtrain/models/unet_options.hpp"
#include "dmtrain/timestep/factory.hpp"
#include "dmtrain/timestep/loss_weighting.hpp"

namespace dmtrain::train {

models::UNetOptions unet_options(const config::RunConfig& cfg);
diffusion::GaussianDiffusionOptions diffusion_options(const config::RunConfig& cfg);
timestep::TimestepSamplerOptions sampler_options(const config::RunConfig& cfg);
timestep::LossWeightingOptions weighting_options(const config::RunConfig& cfg);
// The whole data set of cfg.data, with the model's channel count.
std::shared_ptr<const data::ImageSet> open_data(const config::RunConfig& cfg);
// MDLRC Adam(W) over `params`, driven by cfg.optim and K = cfg.train.iterations.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> params,
                                                        const config::RunConfig& cfg);
// Current (beta1, lr) of an optimizer made by make_optimizer.
std::pair<double, double> optimizer_beta1_lr(const torch::optim::Optimizer& opt);
// Puts the optimizer's schedule at iteration k (the trainer's count, which also advances over
// skipped non-finite steps).
void set_optimizer_iteration(torch::optim::Optimizer& opt, int64_t k);

}  // namespace dmtrain::train
