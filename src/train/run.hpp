// The training loop's internals, shared by trainer.cpp (building the run, the loop) and
// train_step.cpp (one optimizer iteration): Run, everything one run is made of, and the stop
// signal the loop and the step both read. Not a public header: include/dmtrain/train/trainer.hpp
// is the interface.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/data/image_set.hpp"
#include "dmtrain/data/loader.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/dist/bucketed_all_reduce.hpp"
#include "dmtrain/dist/context.hpp"
#include "dmtrain/dist/gradient_reducer.hpp"
#include "dmtrain/dist/process_group.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/optim/flat_update.hpp"
#include "dmtrain/optim/mdlrc_adam.hpp"
#include "dmtrain/timestep/loss_weighting.hpp"
#include "dmtrain/timestep/sampler.hpp"
#include "dmtrain/train/ema.hpp"
#include "dmtrain/train/loss_scaler.hpp"
#include "dmtrain/train/train_state.hpp"

namespace dmtrain::train::detail {

// Everything one run is made of, built in this order from the config.
struct Run {
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  // Built in this order from the config (trainer.cpp).
  Run(const config::RunConfig& c, const dist::Context& context, bool single_rank_group);

  const config::RunConfig& cfg;
  const dist::Context ctx;
  const int64_t local_batch;
  const std::filesystem::path run_dir;
  const at::Device device;
  const dist::ProcessGroup group;
  const at::ScalarType precision;
  models::UNetModel model;
  std::vector<at::Tensor> params;
  diffusion::GaussianDiffusion diffusion;
  std::unique_ptr<timestep::TimestepSampler> sampler;
  timestep::LossWeightingOptions weighting;
  std::unique_ptr<optim::MdlrcAdam> optimizer;
  Ema ema;
  LossScaler scaler;
  std::shared_ptr<const data::ImageSet> images;
  data::Loader loader;
  TrainState state;
  // The data-parallel gradient averaging (build_gradient_averaging), built after the resume: it
  // hooks the parameters. c10d's Reducer, or with dist.graph_step the bucketed all-reduce of the
  // flat gradient buffer that `flat_step` made (flattened first: the hooks check the views).
  std::unique_ptr<dist::GradientReducer> reducer;
  std::unique_ptr<optim::FlatOptimizerStep> flat_step;
  std::unique_ptr<dist::BucketedAllReduce> bucketed;

  bool main_rank() const { return ctx.is_main(); }
  std::string checkpoint_root() const { return (run_dir / "checkpoints").string(); }
  int64_t iteration() const { return state.counters.iteration; }
};

// The last SIGINT, SIGTERM or SIGUSR1 the process received since the previous call (0: none),
// cleared by the call. The handler only sets it; the loop acts at the next iteration boundary.
int take_signal();

}  // namespace dmtrain::train::detail
