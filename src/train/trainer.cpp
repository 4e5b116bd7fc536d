// The training loop. train() reads top to bottom as a run happens: build the run, resume, then
// per iteration one train_step() and what is due after it (metrics, checkpoint, samples, FID).
// train_step() is one optimizer iteration; the forward + backward inside it is a ForwardBackward,
// eager or wrapped into a CUDA graph. See trainer.hpp for the contract.
#include "dmtrain/train/trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

#ifdef DMTRAIN_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include <ATen/Parallel.h>

#include "dmtrain/config/load.hpp"
#include "dmtrain/data/loader.hpp"
#include "dmtrain/data/shuffle.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/dist/bucketed_all_reduce.hpp"
#include "dmtrain/dist/context.hpp"
#include "dmtrain/dist/gradient_reducer.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/dist/process_group.hpp"
#include "dmtrain/dist/shard.hpp"
#include "dmtrain/models/group_norm_act.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/optim/flat_update.hpp"
#include "dmtrain/train/build.hpp"
#include "dmtrain/train/checkpoint.hpp"
#include "dmtrain/train/cuda_graph_step.hpp"
#include "dmtrain/train/ema.hpp"
#include "dmtrain/train/kernel_profile.hpp"
#include "dmtrain/train/loss_scaler.hpp"
#include "dmtrain/train/metrics_log.hpp"
#include "dmtrain/train/periodic_fid.hpp"
#include "dmtrain/train/posthoc_ema.hpp"
#include "dmtrain/train/run_dir.hpp"
#include "dmtrain/train/run_dir_lock.hpp"
#include "dmtrain/train/sample_grid.hpp"
#include "dmtrain/train/train_state.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- signals: only set a flag; the loop checkpoints at the next iteration boundary ----------
std::atomic<int> g_signal{0};
extern "C" void trainer_on_signal(int sig) {
  g_signal.store(sig);
}

struct SignalScope {
  SignalScope() {
    g_signal.store(0);
    for (int s : {SIGINT, SIGTERM, SIGUSR1}) std::signal(s, trainer_on_signal);
  }
  ~SignalScope() {
    for (int s : {SIGINT, SIGTERM, SIGUSR1}) std::signal(s, SIG_DFL);
  }
};

struct AutocastScope {
  bool on;
  at::DeviceType device;
  AutocastScope(at::DeviceType d, at::ScalarType dtype, bool enable) : on(enable), device(d) {
    if (!on) return;
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::set_autocast_dtype(device, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device, false);
  }
};

at::ScalarType pick_precision(const std::string& want, const at::Device& device) {
  if (want == "fp32" || (want == "auto" && device.is_cpu())) return at::kFloat;
  if (want == "fp16") return at::kHalf;
  return at::kBFloat16;
}

// Peak GPU memory allocated by tensors since the last reset, in GiB (0 on the CPU).
double peak_gpu_gib(const at::Device& device) {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0 * 1024.0);
  }
#endif
  (void)device;
  return 0.0;
}

void synchronize(const at::Device& device) {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  if (device.is_cuda()) at::cuda::device_synchronize();
#endif
  (void)device;
}

at::Tensor global_grad_norm(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return at::zeros({}, at::kFloat);
  auto norms = at::_foreach_norm(grads, 2);
  return at::stack(norms).to(at::kFloat).norm();
}

// Rows r, r + W, r + 2W, ... of a global-batch tensor: this rank's share, in the order its
// loader yields images (see reshard_position), so that every per-example draw (timestep, weight,
// noise) is the one a single process with the whole batch would give the same image.
at::Tensor rank_rows(const at::Tensor& global, const dist::Context& ctx) {
  if (!ctx.distributed()) return global;
  return global.slice(0, ctx.rank, global.size(0), ctx.world_size).contiguous();
}

// Dropout draws from the default generators: rank 0 keeps the run's seed stream (a single process
// is rank 0), other ranks get their own, derived from (seed, rank, iteration) so that a resume
// gives them fresh, reproducible masks.
void seed_rank_dropout(const dist::Context& ctx, uint64_t seed, int64_t iteration) {
  if (ctx.rank == 0) return;
  at::manual_seed(
      data::mix64(seed ^ data::mix64(static_cast<uint64_t>(ctx.rank) * 0x9E3779B97F4A7C15ull +
                                     static_cast<uint64_t>(iteration))));
}

int64_t checked_local_batch(const config::RunConfig& cfg, const dist::Context& ctx) {
  const int64_t local = dist::shard_batch(cfg.train.batch_size, ctx);
  if (local % cfg.train.micro_batches != 0) {
    throw Error(c10::str("train.micro_batches (", cfg.train.micro_batches,
                         ") must divide the per-rank batch (", local, " = train.batch_size ",
                         cfg.train.batch_size, " / ", ctx.world_size, " ranks)"));
  }
  return local;
}

// Logging goes to the run dir before anything else can fail (rank 0 holds its lock already: see
// train()); a log that cannot be written fails here, naming the file and the cause. The resolved
// config is written by train() once the run has passed its checks.
fs::path open_run_dir(const config::RunConfig& cfg, const dist::Context& ctx) {
  const fs::path run_dir = cfg.train.run_dir;
  create_run_dir((run_dir / "samples").string());
  log::set_level(log::parse_level(cfg.log.level));
  if (!ctx.is_main()) log::set_console_level(log::Level::kError);
  const fs::path log_file = run_dir / (ctx.is_main() ? std::string("train.log")
                                                     : c10::str("train.rank", ctx.rank, ".log"));
  check_appendable(log_file.string());
  log::add_file_sink(log_file.string());
  if (ctx.is_main()) check_appendable((run_dir / "metrics.jsonl").string());
  return run_dir;
}

// The job's process group; with TrainOptions::single_rank_group one of this process alone.
dist::ProcessGroup make_group(const dist::Context& ctx, const at::Device& device, double timeout_s,
                              bool single_rank_group) {
  const std::chrono::milliseconds timeout(static_cast<int64_t>(timeout_s * 1000));
  if (single_rank_group && !ctx.distributed()) {
    return dist::init_single_rank_group(device, dist::pick_free_port(), timeout);
  }
  return dist::init_process_group(ctx, device, timeout);
}

// The model, on its device, with every rank holding rank 0's weights.
models::UNetModel make_model(const config::RunConfig& cfg, const at::Device& device,
                             const dist::ProcessGroup& group, const dist::Context& ctx) {
  at::manual_seed(cfg.train.seed);  // parameter init and dropout draw from the default generators
  models::UNetModel model(unet_options(cfg));
  model->to(device);
  {  // equal by seeding already; the broadcast makes it a fact
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> state = model->parameters();
    for (const auto& b : model->buffers()) state.push_back(b);
    group.broadcast_from_rank0(state);
  }
  seed_rank_dropout(ctx, cfg.train.seed, 0);
  model->train();
  if (device.is_cuda() && cfg.train.channels_last) {
    at::NoGradGuard no_grad;
    for (auto& p : model->parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(cfg.train.cudnn_benchmark);
  models::set_fused_kernels_enabled(cfg.train.fused_kernels);
  return model;
}

data::LoaderOptions loader_options(const config::RunConfig& cfg, const dist::Context& ctx,
                                   int64_t local_batch, const at::Device& device) {
  data::LoaderOptions lo;
  lo.batch_size = local_batch;
  lo.rank = ctx.rank;
  lo.world_size = ctx.world_size;
  lo.seed = cfg.train.seed;
  lo.num_workers = static_cast<int>(cfg.data.num_workers);
  lo.random_flip = cfg.data.random_flip;
  lo.pin_memory = device.is_cuda();
  return lo;
}

std::shared_ptr<const data::ImageSet> checked_data(const config::RunConfig& cfg) {
  auto images = open_data(cfg);
  if (cfg.model.num_classes > 0 && !images->has_labels()) {
    throw Error("model.num_classes is " + std::to_string(cfg.model.num_classes) +
                " but the data set has no labels (set data.labels)");
  }
  return images;
}

at::Generator noise_generator(const config::RunConfig& cfg, const at::Device& device) {
  at::Generator g = device.is_cuda() ? at::globalContext().defaultGenerator(device).clone()
                                     : at::make_generator<at::CPUGeneratorImpl>(cfg.train.seed + 2);
  g.set_current_seed(cfg.train.seed + 2);
  return g;
}

Ema make_ema(const torch::nn::Module& model, const config::RunConfig& cfg) {
  Ema ema(model, cfg.train.ema_rates);
  ema.set_warmup(cfg.train.ema_warmup);
  return ema;
}

// Everything one run is made of, built in this order from the config.
struct Run {
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  Run(const config::RunConfig& c, const dist::Context& context, bool single_rank_group)
      : cfg(c),
        ctx(context),
        local_batch(checked_local_batch(c, context)),
        run_dir(open_run_dir(c, context)),
        device(pick_device(c.train.device, "train.device", context.local_rank)),
        group(make_group(context, device, c.dist.timeout_s, single_rank_group)),
        precision(pick_precision(c.train.precision, device)),
        model(make_model(c, device, group, context)),
        params(model->parameters()),
        diffusion(diffusion_options(c)),
        sampler(timestep::make_sampler(sampler_options(c))),
        weighting(weighting_options(c)),
        optimizer(make_optimizer(params, c)),
        ema(make_ema(*model, c)),
        scaler(precision == at::kHalf),
        images(checked_data(c)),
        loader(images, loader_options(c, context, local_batch, device)),
        state(model, ema, *optimizer, *sampler, scaler,
              at::make_generator<at::CPUGeneratorImpl>(c.train.seed + 1),
              noise_generator(c, device)) {
    state.counters.world_size = ctx.world_size;
  }

  const config::RunConfig& cfg;
  const dist::Context ctx;
  const int64_t local_batch;
  const fs::path run_dir;
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

// Continues from a checkpoint when options ask for one (every rank reads the same folder).
void resume(Run& r, const TrainOptions& options) {
  const std::string dir = resolve_resume(options.resume, r.checkpoint_root());
  if (dir.empty()) return;
  check_same_run(dir, r.cfg, options.allow_config_change);
  r.state.load(dir, r.device);
  if (r.main_rank()) {
    const std::string metrics = (r.run_dir / "metrics.jsonl").string();
    const int64_t cut = truncate_metrics_file(metrics, r.iteration());
    if (cut > 0) {
      log::info(c10::str("resume: ", cut, " records after iteration ", r.iteration(),
                         " removed from ", metrics, " (they are trained again)"));
    }
  }
  r.loader.restore(reshard_position(r.state.counters, r.images->size(), r.ctx.world_size));
  r.state.counters.world_size = r.ctx.world_size;
  r.state.counters.position = r.loader.position();
  seed_rank_dropout(r.ctx, r.cfg.train.seed, r.iteration());
  log::info("resumed from " + dir + " at iteration " + std::to_string(r.iteration()));
}

// ---- the step --------------------------------------------------------------------------------

struct StepInputs {
  at::Tensor x0, t, noise, y, w;  // this rank's rows
};
struct Losses {
  at::Tensor loss;         // the scalar backward ran on (this rank's weighted mean)
  at::Tensor per_example;  // unweighted, this rank's rows
  // Set when the step applied the optimizer and EMA update itself (train.graph_optimizer: inside
  // the CUDA graph, skipped there when not finite): the gradient norm it measured, and what a
  // finite step then still does on the host (advance the optimizer's counters, as step()).
  at::Tensor grad_norm;
  std::function<void()> commit;
};
// Forward, loss and backward of one iteration; gradients land in the parameters' .grad.
using ForwardBackward = std::function<Losses(const StepInputs&, int64_t iteration)>;

// The recipe's per-example losses of a batch, under the run's autocast.
at::Tensor example_losses(Run& r, const at::Tensor& x, const at::Tensor& t, const at::Tensor& n,
                          const at::Tensor& y) {
  AutocastScope autocast(r.device.type(), r.precision, r.precision != at::kFloat);
  const diffusion::ModelFn model_fn = [&](const at::Tensor& xt, const at::Tensor& tt,
                                          const at::Tensor& labels) {
    return r.model->forward(xt, tt, labels);
  };
  return r.diffusion.training_losses(model_fn, x, t, n, y).loss;
}

// The rank's rows in train.micro_batches chunks (one by default), each chunk's loss its share of
// the rank's mean, gradients summed in .grad. Only the last chunk's backward is synchronised (as
// DDP's no_sync): the reducer then all-reduces the accumulated gradients as backward runs.
ForwardBackward eager_forward_backward(Run& r) {
  return [&r](const StepInputs& in, int64_t /*iteration*/) {
    if (r.flat_step) {
      r.flat_step->zero_grads();  // in place: the gradients stay the buckets' views
    } else {
      r.optimizer->zero_grad();
    }
    const int64_t chunks = r.cfg.train.micro_batches, chunk = r.local_batch / chunks;
    Losses out;
    std::vector<at::Tensor> parts;
    for (int64_t m = 0; m < chunks; ++m) {
      const bool last = m == chunks - 1;
      const auto rows = [&](const at::Tensor& a) {
        return a.defined() && chunks > 1 ? a.slice(0, m * chunk, (m + 1) * chunk) : a;
      };
      if (last && r.reducer) r.reducer->prepare_for_forward();
      const at::Tensor part =
          example_losses(r, rows(in.x0), rows(in.t), rows(in.noise), rows(in.y));
      const at::Tensor weighted = part.to(at::kFloat) * rows(in.w);
      // One chunk: the plain mean (the numerics of the unchunked step, to the last bit).
      const at::Tensor share =
          chunks == 1 ? weighted.mean() : weighted.sum() / static_cast<double>(r.local_batch);
      if (last && r.reducer) r.reducer->prepare_for_backward(share);
      r.scaler.scale(share).backward();
      out.loss = m == 0 ? share.detach() : out.loss + share.detach();
      parts.push_back(part.detach());
    }
    if (r.bucketed) r.bucketed->finish();  // the hooks launched its all-reduces during backward
    out.per_example = chunks == 1 ? parts.front() : at::cat(parts);
    return out;
  };
}

std::vector<std::vector<at::Tensor>> ema_copies(const Ema& ema) {
  std::vector<std::vector<at::Tensor>> out;
  for (size_t i = 0; i < ema.rates().size(); ++i) out.push_back(ema.params(i));
  return out;
}

optim::FlatOptimizerStep::EmaWeight ema_weight(Run& r) {
  return [&r](size_t j, int64_t step) { return 1.0 - r.ema.rate_at(j, step); };
}

// How a distributed run averages its gradients. With dist.graph_step (one micro-batch, no fp16,
// parameters the flat buffers take): the parameters are flattened now (after the resume, which
// replaces their storage) and BucketedAllReduce averages the flat gradient buffer, eagerly or
// inside the step's CUDA graph, so a run has one averaging path; else c10d's Reducer (a no-op
// for one process). Returns why the bucketed path is not taken ("" when it is).
std::string build_gradient_averaging(Run& r) {
  std::string why_not;
  if (!r.cfg.dist.graph_step) {
    why_not = "dist.graph_step is off";
  } else if (!r.group.is_distributed()) {
    why_not = "one process";
  } else if (r.cfg.train.micro_batches != 1) {
    why_not = "train.micro_batches > 1";
  } else if (r.precision == at::kHalf) {
    why_not = "fp16 loss scaling";
  } else {
    why_not = optim::flat_unsupported(r.params, *r.optimizer, ema_copies(r.ema));
  }
  if (!why_not.empty()) {
    r.reducer = std::make_unique<dist::GradientReducer>(r.group, r.params, r.cfg.dist.bucket_mib);
    return why_not;
  }
  r.flat_step = std::make_unique<optim::FlatOptimizerStep>(
      r.params, *r.optimizer, ema_copies(r.ema), ema_weight(r), r.cfg.optim.grad_clip);
  r.bucketed = std::make_unique<dist::BucketedAllReduce>(r.group, r.flat_step->buffers().grads,
                                                         r.params, r.cfg.dist.bucket_mib);
  return "";
}

// The rank's loss summed over the ranks, on the device (inside a capture the collective is
// recorded): the captured update's finite decision then reads the same numbers on every rank,
// as the host's decision after the replay does, so no rank can apply a step another skips.
at::Tensor loss_summed_over_ranks(const Run& r, const at::Tensor& loss) {
  at::Tensor sum = loss.detach().to(at::kFloat).reshape({1}).clone();
  r.group.all_reduce_sum(sum);  // NCCL: wait() makes the stream wait, no host sync
  return sum.view({});
}

// train.graph_optimizer: whether the optimizer and EMA update go into the step's CUDA graph
// (`graphs`: the step is graphed at all), else run eagerly after each step. Logs which.
bool graph_optimizer(Run& r, bool graphs) {
  std::string why_not;
  if (!r.cfg.train.graph_optimizer) {
    why_not = "train.graph_optimizer is off";
  } else if (!graphs) {
    why_not = "the step is not a CUDA graph (train.cuda_graphs, one GPU, one micro-batch, no fp16)";
  } else if (!optim::flat_update_kernel_available()) {
    why_not = "this build has no CUDA kernels";
  } else {
    why_not = optim::flat_unsupported(r.params, *r.optimizer, ema_copies(r.ema));
  }
  log::info(why_not.empty()
                ? std::string("optimizer and EMA update: inside the CUDA graph, on flat buffers "
                              "(train.graph_optimizer)")
                : "optimizer and EMA update: eager, after each step (" + why_not + ")");
  return why_not.empty();
}

// The step replayed from a CUDA graph from iteration `from` on (captured there; the iterations
// before run eagerly: cuDNN autotuning and lazy initialisations must not be captured). A step
// that cannot be captured trains on eagerly, with a warning. With `with_optimizer` the graph also
// holds the optimizer and EMA update (optim/flat_update.hpp; the weights, gradients, moments and
// EMA copies move into flat buffers at the capture) and the Losses carry its norm and commit.
ForwardBackward graphed(ForwardBackward eager, Run& r, int64_t from, int64_t& graph_steps,
                        bool with_optimizer) {
  struct Graph {
    // Outlive the graph that uses their buffers; with dist.graph_step the run's r.flat_step.
    std::unique_ptr<optim::FlatOptimizerStep> owned_update;
    optim::FlatOptimizerStep* update = nullptr;
    std::unique_ptr<CudaGraphStep> step;
    bool failed = false;
  };
  auto g = std::make_shared<Graph>();
  return [eager = std::move(eager), &r, from, &graph_steps, with_optimizer, g](
             const StepInputs& in, int64_t k) -> Losses {
    if (k < from || g->failed) return eager(in, k);
    if (!g->step) {
      CudaGraphStep::CapturedUpdate captured;
      const std::string why_not =
          with_optimizer ? optim::flat_unsupported(r.params, *r.optimizer, ema_copies(r.ema)) : "";
      if (with_optimizer && !why_not.empty() && r.bucketed) {
        // A graph without the update would own the gradients, which must stay the buckets' views.
        log::warn("dist.graph_step: " + why_not + "; training on without CUDA graphs");
        g->failed = true;
        return eager(in, k);
      } else if (with_optimizer && !why_not.empty()) {
        log::warn("train.graph_optimizer: " + why_not + "; the optimizer runs eagerly");
      } else if (with_optimizer) {
        if (!r.flat_step) {
          g->owned_update = std::make_unique<optim::FlatOptimizerStep>(
              r.params, *r.optimizer, ema_copies(r.ema), ema_weight(r), r.cfg.optim.grad_clip);
        }
        g->update = r.flat_step ? r.flat_step.get() : g->owned_update.get();
        optim::FlatOptimizerStep* u = g->update;
        captured.zero_grads = [u] { u->zero_grads(); };
        captured.update = [u](const at::Tensor& loss) { return u->update(loss); };
        if (r.bucketed) {  // dist.graph_step: the bucket all-reduces are in the graph too
          captured.after_backward = [&r] { r.bucketed->finish(); };
          captured.update = [u, &r](const at::Tensor& loss) {
            return u->update(loss_summed_over_ranks(r, loss));
          };
        }
      }
      g->step = std::make_unique<CudaGraphStep>(
          [&r](const std::vector<at::Tensor>& x) {
            const at::Tensor part = example_losses(r, x[0], x[1], x[2], x[3]);
            return std::make_pair((part.to(at::kFloat) * x[4]).mean(), part.detach());
          },
          r.params, std::move(captured));
    }
    try {
      if (g->update) {
        g->update->prepare(k);  // iteration k's lr, beta1, bias corrections, EMA rates
        // The replay updates weights, moments and EMAs in place, as optimizer->step() does in
        // train_step: a checkpoint's device-to-host copies in flight must be done first.
        r.state.fence_checkpoint();
      }
      const auto out = g->step->run({in.x0, in.t, in.noise, in.y, in.w});
      if (graph_steps++ == 0) {
        log::info(c10::str("iteration ", k, ": training step captured as a CUDA graph"));
      }
      Losses losses{out.first.detach(), out.second, {}, {}};
      if (g->update) {
        losses.grad_norm = g->step->update_result();
        losses.commit = [u = g->update, k] { u->commit(k); };
      }
      return losses;
    } catch (const Error& e) {
      if (graph_steps > 0) throw;  // a replay failed: not a capture problem
      log::warn(std::string(e.what()) + "; training on without CUDA graphs");
      g->failed = true;
      g->step.reset();
      // The flat buffers stay the tensors' storage: the eager step uses them.
      g->update = nullptr;
      g->owned_update.reset();
      if (r.bucketed) r.bucketed->abandon_step();  // buckets the failed capture launched
      return eager(in, k);
    }
  };
}

// Unscales the gradients (fp16 loss scaling) and returns their global norm, having clipped them
// in place to optim.grad_clip when that is on.
at::Tensor unscaled_grad_norm(Run& r) {
  r.scaler.unscale(r.params);
  // A 0-dim tensor like global_grad_norm's (at::tensor(double) would be 1-element, shape [1],
  // which train_step's at::stack with the 0-dim loss refuses).
  return r.cfg.optim.grad_clip > 0
             ? at::scalar_tensor(torch::nn::utils::clip_grad_norm_(r.params, r.cfg.optim.grad_clip),
                                 at::kFloat)
             : global_grad_norm(r.params);
}

struct StepResult {
  int signal = 0;  // SIGTERM (for SIGINT too), SIGUSR1 or 0, agreed by every rank
};

// One optimizer iteration k: the batch and its draws, forward + backward, the finite check
// agreed over ranks, then the optimizer, EMA and sampler updates (skipped when not finite).
StepResult train_step(Run& r, const ForwardBackward& forward_backward, MetricsLog& metrics,
                      int64_t k) {
  const auto& tc = r.cfg.train;
  auto t0 = Clock::now();
  data::Batch batch = r.loader.next();
  metrics.add_data_wait(std::chrono::duration<double>(Clock::now() - t0).count());
  at::Tensor x0 = batch.images.to(r.device, /*non_blocking=*/true);
  if (r.device.is_cuda() && tc.channels_last) x0 = x0.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor y = r.cfg.model.num_classes > 0 ? batch.labels.to(r.device, true) : at::Tensor();

  // Timesteps, weights and noise are drawn for the whole global batch on every rank (same
  // generators, same decisions everywhere) and each rank takes its rows. Host-to-device copies
  // come from page-locked memory: from pageable memory the host would wait for the device.
  auto draw = r.sampler->sample(tc.batch_size, k, r.state.t_gen);
  const auto upload = [&](const at::Tensor& h) {
    return r.device.is_cuda() ? h.pin_memory().to(r.device, /*non_blocking=*/true) : h;
  };
  const at::Tensor abar = r.diffusion.alphas_cumprod();
  StepInputs in;
  in.x0 = x0;
  in.y = y;
  in.w = upload(rank_rows(draw.weights * timestep::loss_weight(r.weighting, abar, draw.t), r.ctx));
  in.t = upload(rank_rows(draw.t, r.ctx));
  std::vector<int64_t> noise_shape = x0.sizes().vec();
  noise_shape[0] = tc.batch_size;
  in.noise = rank_rows(at::randn(noise_shape, r.state.noise_gen, x0.options()), r.ctx);

  const Losses out = forward_backward(in, k);
  const at::Tensor gnorm_t = out.grad_norm.defined() ? out.grad_norm : unscaled_grad_norm(r);
  // One host sync per step: the loss and the gradient norm decide whether the step is taken, and
  // every rank must decide alike, as it must about a signal that reached only some ranks: all
  // four numbers are summed over ranks first (flags made on the device: no host copy).
  const int local_sig = g_signal.exchange(0);
  const auto flag = [&](bool on) {
    return at::full({}, on ? 1.f : 0.f, out.loss.options().dtype(at::kFloat));
  };
  at::Tensor both =
      at::stack({out.loss.to(at::kFloat), gnorm_t.to(out.loss.device(), at::kFloat),
                 flag(local_sig == SIGINT || local_sig == SIGTERM), flag(local_sig == SIGUSR1)});
  r.group.all_reduce_sum(both);
  both = both.to(at::kCPU);
  const double loss = both[0].item<double>() / r.ctx.world_size;
  const double gnorm = both[1].item<double>() / r.ctx.world_size;
  StepResult res;
  res.signal = both[2].item<float>() > 0 ? SIGTERM : (both[3].item<float>() > 0 ? SIGUSR1 : 0);

  auto& c = r.state.counters;
  const bool finite = std::isfinite(loss) && std::isfinite(gnorm);
  r.scaler.update(finite);
  if (!finite) {
    ++c.consecutive_nonfinite;
    ++c.skipped_total;
    log::warn(c10::str("iteration ", k, ": non-finite loss (", loss, ") or gradient norm (", gnorm,
                       "); step skipped"));
    if (c.consecutive_nonfinite >= tc.max_consecutive_nonfinite) {
      throw Error(c10::str("training diverged: ", c.consecutive_nonfinite,
                           " consecutive non-finite steps at iteration ", k,
                           " (train.max_consecutive_nonfinite). Resume from the last good "
                           "checkpoint (--resume auto; none is written inside the streak) with a "
                           "lower optim.lr, optim.grad_clip, or train.precision fp32/bf16."));
    }
  } else {
    c.consecutive_nonfinite = 0;
    r.optimizer->set_iteration(k);  // the trainer's count, which also advances over skipped steps
    if (out.commit) {
      out.commit();  // the step updated weights and EMAs already (train.graph_optimizer)
    } else {
      r.state.fence_checkpoint();  // a checkpoint's host copies are taken before the update below
      r.optimizer->step();
      r.ema.update(*r.model, k);
    }
    if (r.sampler->uses_losses()) {
      // The global batch's losses in the order of draw.t: rank r's i-th example is row i W + r.
      const at::Tensor gathered = r.group.all_gather(out.per_example.to(at::kFloat));
      const at::Tensor global =
          gathered.view({r.ctx.world_size, r.local_batch}).t().reshape({tc.batch_size});
      r.sampler->update_with_losses(draw.t, global.to(at::kCPU));
    }
    metrics.add_step(loss, gnorm, in.t, out.per_example);
  }
  c.iteration = k + 1;
  c.position = r.loader.position();
  return res;
}

void flush_metrics(Run& r, MetricsLog& metrics) {
  metrics.flush(r.iteration(), r.optimizer->lr(), r.optimizer->beta1(),
                r.state.counters.skipped_total, r.scaler.scale_value(), peak_gpu_gib(r.device),
                [&r](at::Tensor& t) { r.group.all_reduce_sum(t); });
}

// A sample point in TensorBoard: the grids (each EMA's and the raw weights') and the distribution
// p_k(t) the sampler draws from at k, as a histogram of 50 buckets of t.
void log_progress(Run& r, MetricsLog& metrics, const std::vector<SampleGrid>& grids, int64_t k) {
  EventWriter* events = metrics.events();
  if (!events) return;
  for (const auto& g : grids) {
    std::ifstream in(g.path, std::ios::binary);
    const std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    events->png("samples/" + g.tag, k, png);
  }
  const at::Tensor p = r.sampler->probabilities(k).to(at::kDouble).contiguous();
  const int64_t T = p.numel(), buckets = std::min<int64_t>(50, T);
  std::vector<double> edges, mass;
  for (int64_t b = 0; b < buckets; ++b) {
    const int64_t lo = b * T / buckets, hi = (b + 1) * T / buckets;
    edges.push_back(static_cast<double>(hi - 1));
    mass.push_back(p.slice(0, lo, hi).sum().item<double>());
  }
  const at::Tensor t = at::arange(T, at::kDouble);
  events->histogram("timestep/p_k", k, edges, mass, 0, static_cast<double>(T - 1),
                    (p * t).sum().item<double>(), (p * t * t).sum().item<double>());
  events->flush();
}

// Rank 0 does `f`; every rank waits for it, so no rank runs ahead of (or exits before) it.
template <class F>
void on_main_rank(Run& r, F f) {
  if (r.main_rank()) f();
  r.group.barrier();
}

// dmtrain bench: timed train_step()s after `warmup` of them, no checkpoints or evaluations.
void benchmark(Run& r, const ForwardBackward& fb, MetricsLog& metrics, const TrainOptions& options,
               int64_t stop, TrainResult& result) {
  const int64_t first = r.iteration();
  KernelProfile profile;
  Clock::time_point start;
  while (r.iteration() < stop) {
    if (r.iteration() == first + options.warmup) {
      synchronize(r.device);
      if (options.profile) profile.start();
      start = Clock::now();
    }
    train_step(r, fb, metrics, r.iteration());
    if (r.iteration() % r.cfg.log.every == 0 || r.iteration() == stop) flush_metrics(r, metrics);
  }
  synchronize(r.device);
  result.iteration = r.iteration();
  result.timed_iterations = r.iteration() - first - options.warmup;
  result.timed_seconds = result.timed_iterations > 0
                             ? std::chrono::duration<double>(Clock::now() - start).count()
                             : 0.0;
  result.peak_gpu_gib = peak_gpu_gib(r.device);
  if (profile.recording()) {
    result.profile_summary =
        profile.stop(options.profile_trace, std::max<int64_t>(result.timed_iterations, 1));
  }
}

}  // namespace

std::string device_name(const std::string& device_config) {
  const at::Device device = pick_device(device_config, "train.device");
#ifdef DMTRAIN_TORCH_HAS_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  return "CPU (" + std::to_string(at::get_num_threads()) + " threads)";
}

TrainResult train(const config::RunConfig& cfg, const TrainOptions& options) {
  // Who we are in a (possibly) multi-process job: rank 0 owns the console, the metrics, the
  // checkpoints and the samples; every rank logs to its own file (docs/distributed.md).
  const dist::Context ctx = dist::from_env();
  // CPU intra-op threads: train.threads, else OMP_NUM_THREADS (LibTorch reads it), else the
  // cores the machine's load leaves free (auto_cpu_threads).
  if (cfg.train.threads > 0) {
    at::set_num_threads(static_cast<int>(cfg.train.threads));
  } else if (!std::getenv("OMP_NUM_THREADS")) {
    double load = 0;
    std::ifstream("/proc/loadavg") >> load;
    at::set_num_threads(
        auto_cpu_threads(static_cast<int>(std::thread::hardware_concurrency()), load));
  }
  // The run dir belongs to this run from here on (run_dir_lock.hpp, run_dir.hpp): a second
  // trainer fails now, before it touches anything, and a fresh start does not mix with an old run.
  std::optional<RunDirLock> lock;
  if (ctx.is_main()) lock.emplace(cfg.train.run_dir);
  if (!options.benchmark) prepare_run_dir(cfg.train.run_dir, options, ctx.is_main());
  Run r(cfg, ctx, options.single_rank_group);
  if (r.main_rank() && !options.benchmark) remove_uncommitted(r.checkpoint_root());
  resume(r, options);
  std::unique_ptr<PosthocEmaRun> phema;  // train.posthoc_ema (rank 0), after the resume it follows
  if (r.main_rank() && !options.benchmark)
    phema = PosthocEmaRun::start(cfg, *r.model, r.state, options.resume, r.iteration());
  if (!options.benchmark) check_resumed(cfg.train.run_dir, options, r.iteration());
  // Written once the config is validated, the data opened and the resume checked.
  if (r.main_rank()) {
    write_file_atomically((r.run_dir / "config.yaml").string(), config::dump_config(cfg));
  }
  const std::string not_bucketed = build_gradient_averaging(r);
  // Built before training so that a bad network or statistics file fails now, not at the first
  // evaluation.
  std::unique_ptr<PeriodicFid> fid;
  if (cfg.eval.fid_every > 0 && r.main_rank() && !options.benchmark) {
    fid = std::make_unique<PeriodicFid>(cfg, r.device);
  }
  const int64_t K = cfg.train.iterations;
  const int64_t stop = options.stop_at >= 0 ? std::min(options.stop_at, K) : K;
  int64_t n_params = 0;
  for (const auto& p : r.params) n_params += p.numel();
  log::info(c10::str(
      "dmtrain: ", n_params, " parameters on ", r.device,
      r.device.is_cpu() ? c10::str(" (", at::get_num_threads(), " threads)") : std::string(),
      ", precision ",
      r.precision == at::kFloat ? "fp32" : (r.precision == at::kHalf ? "fp16" : "bf16"), ", ",
      r.images->size(), " images, batch ", cfg.train.batch_size,
      r.ctx.distributed() ? c10::str(" (", r.local_batch, " x ", r.ctx.world_size, " ranks)")
                          : std::string(),
      ", iterations ", r.iteration(), " -> ", stop, " of ", K, ", run dir ", r.run_dir.string()));

  MetricsLog::Options mo;
  mo.path = r.main_rank() ? (r.run_dir / "metrics.jsonl").string() : std::string();
  mo.print = r.main_rank();
  mo.batch_size = cfg.train.batch_size;
  mo.num_timesteps = r.diffusion.num_timesteps();
  mo.total_iterations = K;
  mo.first_iteration = r.iteration();
  mo.stop = stop;
  mo.device = r.device;
  if (r.main_rank() && cfg.log.tensorboard)
    mo.tensorboard_dir = (r.run_dir / "tensorboard").string();
  MetricsLog metrics(mo);
  SignalScope signals;
  TrainResult result;
  // CUDA graphs (train.cuda_graphs): one chunk, no fp16 loss scaling; one process, or several
  // with dist.graph_step, whose graph must then hold the update too (the bucketed all-reduce
  // averages the flat gradients that only the captured update reads).
  ForwardBackward fb = eager_forward_backward(r);
  bool graphs = cfg.train.cuda_graphs && r.device.is_cuda() &&
                (!r.group.is_distributed() || r.bucketed) && cfg.train.micro_batches == 1 &&
                r.precision != at::kHalf && CudaGraphStep::available();
  const bool optimizer_in_graph = graph_optimizer(r, graphs);
  if (r.group.is_distributed() && !optimizer_in_graph) graphs = false;
  const int64_t capture_at = r.iteration() + 3;  // after eager warm-up iterations (see graphed)
  if (r.group.is_distributed()) {
    log::info(
        r.bucketed
            ? c10::str("data-parallel step: bucketed all-reduce of the flat gradient buffer "
                       "(dist.graph_step), ",
                       graphs ? c10::str("inside the step's CUDA graph from iteration ", capture_at)
                              : std::string("eager (no CUDA graph: train.cuda_graphs, CUDA, "
                                            "train.graph_optimizer)"))
            : "data-parallel step: eager, c10d's Reducer (" + not_bucketed + ")");
  }
  if (graphs) {
    fb = graphed(std::move(fb), r, capture_at, result.graph_steps, optimizer_in_graph);
  }
  while (!options.benchmark && r.iteration() < stop) {
    const StepResult step = train_step(r, fb, metrics, r.iteration());
    if (phema) phema->after_step(*r.model, r.iteration(), !r.state.counters.consecutive_nonfinite);
    const int64_t k = r.iteration();  // iterations done
    if (k % cfg.log.every == 0 || k == stop) flush_metrics(r, metrics);
    const bool checkpoint_due = (cfg.checkpoint.every > 0 && k % cfg.checkpoint.every == 0) ||
                                step.signal != 0 || k == stop;
    if (checkpoint_due && r.state.counters.consecutive_nonfinite > 0) {
      // Inside a non-finite streak the state is not one to resume from (the advice on
      // divergence is to lower optim.lr and resume from the last good checkpoint): keep that.
      log::warn(c10::str(
          "iteration ", k, ": no checkpoint inside a streak of ",
          r.state.counters.consecutive_nonfinite, " non-finite steps; the last good one stays ",
          result.last_checkpoint.empty() ? std::string("the newest") : result.last_checkpoint));
    } else if (checkpoint_due) {
      // checkpoint.async: returns once the state is snapshotted; the files are written, committed
      // and pruned in the background (one in flight; its error is thrown by the next save/wait).
      on_main_rank(r, [&] {
        r.state.save_checkpoint(r.checkpoint_root(), cfg);
        result.last_checkpoint = r.state.last_checkpoint();
        log::flush();
      });
    }
    // Page-locked memory for the snapshots, allocated in the background once the state exists.
    if (r.main_rank()) r.state.reserve_checkpoint_memory(cfg);
    if (cfg.sample.every > 0 && k % cfg.sample.every == 0 && k != K) {
      on_main_rank(r, [&] {
        const auto png =
            write_sample_grids(cfg, *r.model, r.ema, r.diffusion, r.device, r.run_dir.string(), k);
        log_progress(r, metrics, png, k);
      });
    }
    if (cfg.eval.fid_every > 0 && step.signal == 0 && (k % cfg.eval.fid_every == 0 || k == K)) {
      on_main_rank(r, [&] {  // fid exists on rank 0
        const auto f0 = Clock::now();
        const double v = fid->evaluate(*r.model, r.ema, r.diffusion);
        const double secs = std::chrono::duration<double>(Clock::now() - f0).count();
        log::info(c10::str("iter ", k, " | FID ", v, " (EMA ", r.ema.rates().front(), ", ",
                           cfg.eval.fid_samples, " samples, ", cfg.eval.steps, ", ", secs, " s)"));
        metrics.write(FidRecord{k, v, cfg.eval.fid_samples, secs});
        metrics.exclude(Clock::now() - f0);  // keep evaluation time out of img/s
      });
    }
    if (step.signal == SIGTERM) {
      log::warn(c10::str("stop signal: checkpoint written at iteration ", k,
                         "; resume with --resume auto"));
      result.interrupted = true;
      break;
    }
  }
  if (options.benchmark) benchmark(r, fb, metrics, options, stop, result);
  result.iteration = r.iteration();
  if (!options.benchmark && r.iteration() == K && !result.interrupted && r.main_rank()) {
    // Each export carries a checksum sidecar that the sample/eval commands verify.
    for (size_t i = 0; i < r.ema.rates().size(); ++i) {
      export_final_ema(r.ema, i, r.run_dir.string());
    }
    log_progress(
        r, metrics,
        write_sample_grids(cfg, *r.model, r.ema, r.diffusion, r.device, r.run_dir.string(), K), K);
  }
  if (r.main_rank()) {
    // The checkpoint in flight (the last one, or the stop signal's) committed, or its error thrown.
    const std::string last = r.state.wait_checkpoint();
    if (!last.empty()) result.last_checkpoint = last;
    log::flush();
  }
  r.group.barrier();  // nobody tears down the process group while another rank still writes
  result.rank = r.ctx.rank;
  result.world_size = r.ctx.world_size;
  log::flush();
  return result;
}

}  // namespace dmtrain::train
