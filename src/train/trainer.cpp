// The training loop. train() reads top to bottom as a run happens: build the run, resume, then
// per iteration one train_step() and what is due after it (metrics, checkpoint, samples, FID).
// train_step() (train_step.cpp) is one optimizer iteration; the forward + backward inside it is a
// ForwardBackward, eager or wrapped into a CUDA graph. Run (run.hpp) is what a run is made of.
// See trainer.hpp for the contract.
#include "dmtrain/train/trainer.hpp"

#include <ATen/ATen.h>
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
#include "dmtrain/dist/context.hpp"
#include "dmtrain/dist/gradient_reducer.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/dist/process_group.hpp"
#include "dmtrain/dist/shard.hpp"
#include "dmtrain/models/channel_bias.hpp"
#include "dmtrain/models/group_norm_act.hpp"
#include "dmtrain/models/resample.hpp"
#include "dmtrain/models/unet.hpp"
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
#include "run.hpp"
#include "train_step.hpp"

namespace dmtrain::train {
using namespace detail;  // Run, train_step and the ForwardBackwards (run.hpp, train_step.hpp)

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

}  // namespace

int detail::take_signal() {
  return g_signal.exchange(0);
}

namespace {

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
  models::set_fast_conv_bias_enabled(cfg.train.fast_conv_bias);
  models::set_nhwc_row_kernels_enabled(cfg.train.nhwc_group_norm_rows);
  models::set_cached_backward_enabled(cfg.train.group_norm_cached_backward);
  models::set_fast_avg_pool_enabled(cfg.train.fast_avg_pool);
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

}  // namespace

// Everything one run is made of, built in this order from the config.
detail::Run::Run(const config::RunConfig& c, const dist::Context& context, bool single_rank_group)
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

namespace {

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
               int64_t stop, TrainResult& result, InputPrefetch* prefetch) {
  const int64_t first = r.iteration();
  KernelProfile profile;
  Clock::time_point start;
  while (r.iteration() < stop) {
    if (r.iteration() == first + options.warmup) {
      synchronize(r.device);
      if (options.profile) profile.start(/*record_shapes=*/!options.profile_trace.empty());
      start = Clock::now();
    }
    train_step(r, fb, metrics, r.iteration(), prefetch, stop);
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
  // train.prefetch_inputs (train_step.hpp), after the resume: its generators start from the
  // state's.
  std::unique_ptr<InputPrefetch> prefetch;
  if (cfg.train.prefetch_inputs && r.sampler->uses_losses()) {
    log::info("train.prefetch_inputs: off, the timestep sampler learns from each step's losses");
  } else if (cfg.train.prefetch_inputs) {
    prefetch = std::make_unique<InputPrefetch>(r.state);
  }
  while (!options.benchmark && r.iteration() < stop) {
    const StepResult step = train_step(r, fb, metrics, r.iteration(), prefetch.get(), stop);
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
  if (options.benchmark) benchmark(r, fb, metrics, options, stop, result, prefetch.get());
  result.iteration = r.iteration();
  if (prefetch) result.prefetched_steps = prefetch->used;
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
