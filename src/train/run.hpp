// The training loop's internals, shared by trainer.cpp (building the run, the loop), bench.cpp,
// step_plan.cpp, step.cpp and train_step.cpp (one optimizer iteration): Run, everything one run is
// made of, and the stop signal the loop and the step both read. Not a public header:
// include/dmtrain/train/trainer.hpp is the interface.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/config/run_config.hpp"
#include "dmtrain/data/image_set.hpp"
#include "dmtrain/data/loader.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/dist/bucketed_all_reduce.hpp"
#include "dmtrain/dist/context.hpp"
#include "dmtrain/dist/gradient_reducer.hpp"
#include "dmtrain/dist/process_group.hpp"
#include "dmtrain/ema/ema.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/optim/flat_update.hpp"
#include "dmtrain/optim/loss_scaler.hpp"
#include "dmtrain/optim/mdlrc_adam.hpp"
#include "dmtrain/timestep/loss_weighting.hpp"
#include "dmtrain/timestep/sampler.hpp"

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
  ema::Ema ema;
  optim::LossScaler scaler;
  std::shared_ptr<const data::ImageSet> images;
  data::Loader loader;
  checkpoint::TrainState state;
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

// The EMA copies, one list per rate (as the flat update takes them).
inline std::vector<std::vector<at::Tensor>> ema_copies(const ema::Ema& ema) {
  std::vector<std::vector<at::Tensor>> out;
  for (size_t i = 0; i < ema.rates().size(); ++i) out.push_back(ema.params(i));
  return out;
}

// The last SIGINT, SIGTERM or SIGUSR1 the process received since the previous call (0: none),
// cleared by the call. The handler only sets it; the loop acts at the next iteration boundary.
int take_signal();

// While it lives, SIGINT, SIGTERM and SIGUSR1 only set the flag take_signal() reads.
struct SignalScope {
  SignalScope();
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
};

// CPU intra-op threads: train.threads, else OMP_NUM_THREADS, else the cores the load leaves free.
void set_cpu_threads(const config::RunConfig& cfg);
// Peak GPU memory allocated by tensors since the last reset, in GiB (0 on the CPU).
double peak_gpu_gib(const at::Device& device);
void synchronize(const at::Device& device);
// Dropout draws from the default generators: rank 0 keeps the run's seed stream (a single process
// is rank 0), other ranks get their own, derived from (seed, rank, iteration) so that a resume
// gives them fresh, reproducible masks.
void seed_rank_dropout(const dist::Context& ctx, uint64_t seed, int64_t iteration);
// The metrics log of a run that stops after iteration `stop`.
observe::MetricsLog::Options metrics_options(const Run& r, int64_t stop);
// Ends the metrics interval at the run's iteration (every rank: the quartiles are summed).
void flush_metrics(Run& r, observe::MetricsLog& metrics);
// The run in one line: parameters, device, precision, data, batch, iterations, run dir.
std::string describe(const Run& r, int64_t stop);

}  // namespace dmtrain::train::detail
