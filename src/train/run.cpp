// Building a run (run.hpp): everything it is made of, in order, from the config; and the pieces
// the training loop (trainer.cpp) and the benchmark loop (bench.cpp) share.
#include "run.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/util/StringUtil.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#ifdef DMTRAIN_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "dmtrain/checkpoint/run_dir.hpp"
#include "dmtrain/data/shuffle.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/dist/shard.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/stop_request.hpp"

namespace dmtrain::train::detail {
namespace {

namespace fs = std::filesystem;

// ---- signals: only set a flag; the loop checkpoints at the next iteration boundary ----------
std::atomic<int> g_signal{0};
extern "C" void trainer_on_signal(int sig) {
  g_signal.store(sig);
  util::request_stop();  // long work between boundaries (grids, FID) gives up (stop_request.hpp)
}

}  // namespace

SignalScope::SignalScope() {
  g_signal.store(0);
  util::clear_stop_request();
  for (int s : {SIGINT, SIGTERM, SIGUSR1}) std::signal(s, trainer_on_signal);
}

SignalScope::~SignalScope() {
  for (int s : {SIGINT, SIGTERM, SIGUSR1}) std::signal(s, SIG_DFL);
}

int take_signal() {
  util::clear_stop_request();  // first: a signal that comes in between is taken below
  return g_signal.exchange(0);
}

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

void seed_rank_dropout(const dist::Context& ctx, uint64_t seed, int64_t iteration) {
  if (ctx.rank == 0) return;
  at::manual_seed(
      data::mix64(seed ^ data::mix64(static_cast<uint64_t>(ctx.rank) * 0x9E3779B97F4A7C15ull +
                                     static_cast<uint64_t>(iteration))));
}

namespace {

at::ScalarType pick_precision(const std::string& want, const at::Device& device) {
  if (want == "fp32" || (want == "auto" && device.is_cpu())) return at::kFloat;
  if (want == "fp16") return at::kHalf;
  return at::kBFloat16;
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
  checkpoint::create_run_dir((run_dir / "samples").string());
  log::set_level(log::parse_level(cfg.log.level));
  if (!ctx.is_main()) log::set_console_level(log::Level::kError);
  const fs::path log_file = run_dir / (ctx.is_main() ? std::string("train.log")
                                                     : c10::str("train.rank", ctx.rank, ".log"));
  checkpoint::check_appendable(log_file.string());
  log::add_file_sink(log_file.string());
  if (ctx.is_main()) checkpoint::check_appendable((run_dir / "metrics.jsonl").string());
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
  models::UNetModel model(recipe::unet_options(cfg));
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
  auto images = recipe::open_data(cfg);
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

ema::Ema make_ema(const torch::nn::Module& model, const config::RunConfig& cfg) {
  ema::Ema ema(model, cfg.train.ema_rates);
  ema.set_warmup(cfg.train.ema_warmup);
  return ema;
}

}  // namespace

// Everything one run is made of, built in this order from the config.
Run::Run(const config::RunConfig& c, const dist::Context& context, bool single_rank_group)
    : cfg(c),
      ctx(context),
      local_batch(checked_local_batch(c, context)),
      run_dir(open_run_dir(c, context)),
      device(recipe::pick_device(c.train.device, "train.device", context.local_rank)),
      group(make_group(context, device, c.dist.timeout_s, single_rank_group)),
      precision(pick_precision(c.train.precision, device)),
      model(make_model(c, device, group, context)),
      params(model->parameters()),
      diffusion(recipe::diffusion_options(c)),
      sampler(timestep::make_sampler(recipe::sampler_options(c))),
      weighting(recipe::weighting_options(c)),
      optimizer(recipe::make_optimizer(params, c)),
      ema(make_ema(*model, c)),
      scaler(precision == at::kHalf),
      images(checked_data(c)),
      loader(images, loader_options(c, context, local_batch, device)),
      state(model, ema, *optimizer, *sampler, scaler,
            at::make_generator<at::CPUGeneratorImpl>(c.train.seed + 1),
            noise_generator(c, device)) {
  state.counters.world_size = ctx.world_size;
}

void set_cpu_threads(const config::RunConfig& cfg) {
  // train.threads, else OMP_NUM_THREADS (LibTorch reads it), else the cores the machine's load
  // leaves free (recipe::auto_cpu_threads).
  if (cfg.train.threads > 0) {
    at::set_num_threads(static_cast<int>(cfg.train.threads));
  } else if (!std::getenv("OMP_NUM_THREADS")) {
    double load = 0;
    std::ifstream("/proc/loadavg") >> load;
    at::set_num_threads(
        recipe::auto_cpu_threads(static_cast<int>(std::thread::hardware_concurrency()), load));
  }
}

observe::MetricsLog::Options metrics_options(const Run& r, int64_t stop) {
  observe::MetricsLog::Options mo;
  mo.path = r.main_rank() ? (r.run_dir / "metrics.jsonl").string() : std::string();
  mo.every = r.cfg.log.every;
  mo.print = r.main_rank();
  mo.batch_size = r.cfg.train.batch_size;
  mo.num_timesteps = r.diffusion.num_timesteps();
  mo.total_iterations = r.cfg.train.iterations;
  mo.first_iteration = r.iteration();
  mo.stop = stop;
  mo.device = r.device;
  if (r.main_rank() && r.cfg.log.tensorboard) {
    mo.tensorboard_dir = (r.run_dir / "tensorboard").string();
  }
  return mo;
}

void flush_metrics(Run& r, observe::MetricsLog& metrics) {
  metrics.set("train/lr", r.optimizer->lr());
  metrics.set("train/beta1", r.optimizer->beta1());
  metrics.set("train/skipped", static_cast<double>(r.state.counters.skipped_total));
  metrics.set("train/loss_scale", r.scaler.scale_value());
  metrics.set("perf/gpu_mem_gib", peak_gpu_gib(r.device));
  metrics.flush(r.iteration(), [&r](at::Tensor& t) { r.group.all_reduce_sum(t); });
}

std::string describe(const Run& r, int64_t stop) {
  int64_t n_params = 0;
  for (const auto& p : r.params) n_params += p.numel();
  const auto& tc = r.cfg.train;
  return c10::str(
      "dmtrain: ", n_params, " parameters on ", r.device,
      r.device.is_cpu() ? c10::str(" (", at::get_num_threads(), " threads)") : std::string(),
      ", precision ",
      r.precision == at::kFloat ? "fp32" : (r.precision == at::kHalf ? "fp16" : "bf16"), ", ",
      r.images->size(), " images, batch ", tc.batch_size,
      r.ctx.distributed() ? c10::str(" (", r.local_batch, " x ", r.ctx.world_size, " ranks)")
                          : std::string(),
      ", iterations ", r.iteration(), " -> ", stop, " of ", tc.iterations, ", run dir ",
      r.run_dir.string());
}

}  // namespace dmtrain::train::detail
