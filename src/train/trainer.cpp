// The training loop. One function (train) reads top to bottom as the run happens; the helpers
// above it each do one thing. See trainer.hpp for the contract.
#include "dmtrain/train/trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

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
#include "dmtrain/dist/process_group.hpp"
#include "dmtrain/dist/shard.hpp"
#include "dmtrain/models/group_norm_act.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/train/build.hpp"
#include "dmtrain/train/checkpoint.hpp"
#include "dmtrain/train/cuda_graph_step.hpp"
#include "dmtrain/train/ema.hpp"
#include "dmtrain/train/kernel_profile.hpp"
#include "dmtrain/train/loss_scaler.hpp"
#include "dmtrain/train/periodic_fid.hpp"
#include "dmtrain/train/sample_grid.hpp"
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

// ---- autocast --------------------------------------------------------------------------------
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

// The device of this rank: cuda:LOCAL_RANK (one GPU per local rank), or the CPU.
at::Device pick_device(const std::string& want, int local_rank = 0) {
  const bool cuda = at::hasCUDA();
  if (want == "cuda" && !cuda) throw Error("train.device is 'cuda' but no CUDA device is visible");
  if (want == "cpu" || (want == "auto" && !cuda)) return at::Device(at::kCPU);
  const int n = static_cast<int>(at::getNumGPUs());
  if (local_rank >= n) {
    throw Error(c10::str("local rank ", local_rank, " needs GPU ", local_rank, " but only ", n,
                         " are visible (CUDA_VISIBLE_DEVICES?); start at most ", n,
                         " processes per node"));
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

at::ScalarType pick_precision(const std::string& want, const at::Device& device) {
  if (want == "fp32" || (want == "auto" && device.is_cpu())) return at::kFloat;
  if (want == "fp16") return at::kHalf;
  return at::kBFloat16;
}

std::string fmt(double v, int precision = 4) {
  std::ostringstream os;
  os << std::setprecision(precision) << v;
  return os.str();
}

std::string duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  std::ostringstream os;
  if (s >= 3600) os << s / 3600 << "h";
  os << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s % 3600) / 60 << "m" << std::setw(2)
     << s % 60 << "s";
  return os.str();
}

// The sections whose change makes a checkpoint meaningless for this run.
std::string identity_sections(const config::RunConfig& cfg) {
  config::RunConfig probe;
  probe.model = cfg.model;
  probe.diffusion = cfg.diffusion;
  const std::string all = config::dump_config(probe);
  // Keep only the model: and diffusion: blocks of the dump.
  std::istringstream in(all);
  std::string line, out;
  bool keep = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != ' ')
      keep = line.rfind("model:", 0) == 0 || line.rfind("diffusion:", 0) == 0;
    if (keep) out += line + "\n";
  }
  return out;
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

// Everything besides tensors-with-names that a checkpoint must carry.
struct RunState {
  int64_t iteration = 0;
  data::LoaderPosition position;  // of every rank (ranks advance in lockstep)
  int64_t world_size = 1;         // the loader position's world size
  int64_t consecutive_nonfinite = 0, skipped_total = 0;
};

// Returns the committed checkpoint folder.
std::string save_checkpoint(const std::string& root, const config::RunConfig& cfg,
                            const RunState& st, models::UNetModel& model, const Ema& ema,
                            torch::optim::Optimizer& opt, const timestep::TimestepSampler& sampler,
                            const LossScaler& scaler, at::Generator& t_gen,
                            at::Generator& noise_gen) {
  CheckpointWriter w(root, st.iteration);
  torch::save(model, w.path("model.pt"));
  for (size_t i = 0; i < ema.rates().size(); ++i) {
    torch::serialize::OutputArchive a;
    ema.save(i, a);
    a.save_to(w.path("ema_" + std::to_string(i) + ".pt"));
  }
  torch::save(opt, w.path("optimizer.pt"));
  {
    torch::serialize::OutputArchive a;
    a.write("iteration", at::tensor(st.iteration));
    a.write("loader_epoch", at::tensor(st.position.epoch));
    a.write("loader_offset", at::tensor(st.position.offset));
    a.write("loader_world_size", at::tensor(st.world_size));
    a.write("consecutive_nonfinite", at::tensor(st.consecutive_nonfinite));
    a.write("skipped_total", at::tensor(st.skipped_total));
    a.write("rng_timestep", t_gen.get_state());
    a.write("rng_noise", noise_gen.get_state());
    a.write("rng_cpu_default", at::detail::getDefaultCPUGenerator().get_state());
    if (noise_gen.device().is_cuda()) {
      a.write("rng_cuda_default",
              at::globalContext().defaultGenerator(noise_gen.device()).get_state());
    }
    torch::serialize::OutputArchive s;
    sampler.save(s);
    a.write("sampler", s);
    torch::serialize::OutputArchive ls;
    scaler.save(ls);
    a.write("loss_scaler", ls);
    a.save_to(w.path("state.pt"));
  }
  std::ofstream(w.path("config.yaml")) << config::dump_config(cfg);
  const std::string dir = w.commit();
  prune_checkpoints(root, cfg.checkpoint.keep_last, cfg.checkpoint.keep_every);
  log::info("checkpoint " + dir);
  log::flush();
  return dir;
}

int64_t read_int(torch::serialize::InputArchive& a, const std::string& key) {
  at::Tensor t;
  a.read(key, t);
  return t.item<int64_t>();
}

void load_checkpoint(const std::string& dir, RunState& st, models::UNetModel& model, Ema& ema,
                     torch::optim::Optimizer& opt, timestep::TimestepSampler& sampler,
                     LossScaler& scaler, at::Generator& t_gen, at::Generator& noise_gen,
                     const at::Device& device) {
  verify_checkpoint(dir);
  try {
    // Load on the CPU first, then move: a checkpoint from a GPU run resumes anywhere.
    model->to(at::kCPU);
    torch::load(model, dir + "/model.pt", at::kCPU);
    model->to(device);
    for (size_t i = 0; i < ema.rates().size(); ++i) {
      torch::serialize::InputArchive a;
      a.load_from(dir + "/ema_" + std::to_string(i) + ".pt", at::kCPU);
      ema.load(i, a);
    }
    torch::load(opt, dir + "/optimizer.pt", device);
    torch::serialize::InputArchive a;
    a.load_from(dir + "/state.pt", at::kCPU);
    st.iteration = read_int(a, "iteration");
    st.position = {read_int(a, "loader_epoch"), read_int(a, "loader_offset")};
    at::Tensor ws;
    st.world_size = a.try_read("loader_world_size", ws) ? ws.item<int64_t>() : 1;
    st.consecutive_nonfinite = read_int(a, "consecutive_nonfinite");
    st.skipped_total = read_int(a, "skipped_total");
    at::Tensor s;
    a.read("rng_timestep", s);
    t_gen.set_state(s);
    a.read("rng_noise", s);
    noise_gen.set_state(s);
    a.read("rng_cpu_default", s);
    at::Generator cpu_default = at::detail::getDefaultCPUGenerator();  // a handle: shares state
    cpu_default.set_state(s);
    if (noise_gen.device().is_cuda() && a.try_read("rng_cuda_default", s)) {
      at::Generator cuda_default = at::globalContext().defaultGenerator(noise_gen.device());
      cuda_default.set_state(s);
    }
    torch::serialize::InputArchive sa;
    a.read("sampler", sa);
    sampler.load(sa);
    torch::serialize::InputArchive la;
    a.read("loss_scaler", la);
    scaler.load(la);
  } catch (const c10::Error& e) {
    throw Error("checkpoint '" + dir +
                "' cannot be loaded into this run: " + e.what_without_backtrace());
  }
}

std::string resolve_resume(const std::string& resume, const std::string& root) {
  if (resume.empty()) return "";
  if (resume == "auto") {
    auto latest = latest_valid_checkpoint(root);
    if (!latest) {
      log::info("--resume auto: no checkpoint in " + root + ", starting fresh");
      return "";
    }
    return latest->dir;
  }
  if (!fs::is_directory(resume))
    throw Error("--resume '" + resume + "' is not a checkpoint folder");
  return resume;
}

// Refuses to resume when the model or diffusion of the checkpoint differ from this config.
void check_same_run(const std::string& dir, const config::RunConfig& cfg, bool allow) {
  const std::string path = dir + "/config.yaml";
  config::RunConfig saved;
  try {
    saved = config::load_config(path);
  } catch (const Error& e) {
    throw Error(std::string("cannot read the resolved config of the checkpoint: ") + e.what());
  }
  if (identity_sections(saved) != identity_sections(cfg)) {
    const std::string msg =
        "the model or diffusion section differs from the checkpoint's (" + path + ")";
    if (!allow) throw Error(msg + "; pass --allow-config-change to resume anyway");
    log::warn(msg + "; resuming anyway (--allow-config-change)");
  }
}

// The loader position for `world` ranks from a checkpoint written by st.world_size ranks. Rank r
// of W reads positions r, r + W, ... of each epoch's permutation (data/shuffle.hpp), so when both
// world sizes divide the data set, a rank offset o of W ranks is the global offset o * W.
data::LoaderPosition reshard_position(const RunState& st, int64_t n_images, int64_t world) {
  if (st.world_size == world) return st.position;
  const int64_t global = st.position.offset * st.world_size;
  if (n_images % st.world_size != 0 || n_images % world != 0 || global % world != 0) {
    throw Error(c10::str("the checkpoint was written by a run of ", st.world_size,
                         " ranks and this run has ", world, "; its data position (epoch ",
                         st.position.epoch, ", ", global, " of ", n_images,
                         " images) cannot be split evenly over ", world, " ranks. Resume with ",
                         st.world_size, " ranks, or use a data set size divisible by both"));
  }
  log::warn(c10::str("resuming a ", st.world_size, "-rank checkpoint on ", world,
                     " ranks: data position resharded (epoch ", st.position.epoch, ", image ",
                     global, "); dropout masks on ranks > 0 are reseeded"));
  return {st.position.epoch, global / world};
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

}  // namespace

std::string device_name(const std::string& device_config) {
  const at::Device device = pick_device(device_config);
#ifdef DMTRAIN_TORCH_HAS_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  return "CPU (" + std::to_string(at::get_num_threads()) + " threads)";
}

TrainResult train(const config::RunConfig& cfg, const TrainOptions& options) {
  const auto& tc = cfg.train;
  // Who we are in a (possibly) multi-process job: rank 0 owns the console, the metrics, the
  // checkpoints and the samples; every rank logs to its own file (docs/distributed.md).
  const dist::Context ctx = dist::from_env();
  const int64_t local_batch = dist::shard_batch(tc.batch_size, ctx);
  const int64_t micro_batches = tc.micro_batches;
  if (local_batch % micro_batches != 0) {
    throw Error(c10::str("train.micro_batches (", micro_batches,
                         ") must divide the per-rank batch (", local_batch, " = train.batch_size ",
                         tc.batch_size, " / ", ctx.world_size, " ranks)"));
  }
  const bool main_rank = ctx.is_main();
  const fs::path run_dir = tc.run_dir;
  const std::string ckpt_root = (run_dir / "checkpoints").string();
  fs::create_directories(run_dir / "samples");
  log::set_level(log::parse_level(cfg.log.level));
  if (!main_rank) log::set_console_level(log::Level::kError);
  log::add_file_sink(
      (run_dir / (main_rank ? std::string("train.log") : c10::str("train.rank", ctx.rank, ".log")))
          .string());
  if (main_rank) std::ofstream(run_dir / "config.yaml") << config::dump_config(cfg);

  // ---- components ------------------------------------------------------------------------------
  const at::Device device = pick_device(tc.device, ctx.local_rank);
  const dist::ProcessGroup group = dist::init_process_group(
      ctx, device, std::chrono::milliseconds(static_cast<int64_t>(cfg.dist.timeout_s * 1000)));
  const at::ScalarType precision = pick_precision(tc.precision, device);
  at::manual_seed(tc.seed);  // parameter init and dropout draw from the default generators
  models::UNetModel model(unet_options(cfg));
  model->to(device);
  // Every rank starts from rank 0's weights (they are equal by seeding; this makes it a fact).
  {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> state = model->parameters();
    for (const auto& b : model->buffers()) state.push_back(b);
    group.broadcast_from_rank0(state);
  }
  seed_rank_dropout(ctx, tc.seed, 0);
  model->train();
  const bool channels_last = device.is_cuda() && tc.channels_last;
  if (channels_last) {
    at::NoGradGuard no_grad;
    for (auto& p : model->parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(tc.cudnn_benchmark);
  models::set_fused_kernels_enabled(tc.fused_kernels);
  std::vector<at::Tensor> params = model->parameters();
  int64_t n_params = 0;
  for (const auto& p : params) n_params += p.numel();

  diffusion::GaussianDiffusion diffusion(diffusion_options(cfg));
  auto sampler = timestep::make_sampler(sampler_options(cfg));
  const auto weighting = weighting_options(cfg);
  const at::Tensor abar = diffusion.alphas_cumprod();
  auto optimizer = make_optimizer(params, cfg);
  Ema ema(*model, tc.ema_rates);
  LossScaler scaler(precision == at::kHalf);

  auto images = open_data(cfg);
  data::LoaderOptions lo;
  lo.batch_size = local_batch;
  lo.rank = ctx.rank;
  lo.world_size = ctx.world_size;
  lo.seed = tc.seed;
  lo.num_workers = static_cast<int>(cfg.data.num_workers);
  lo.random_flip = cfg.data.random_flip;
  lo.pin_memory = device.is_cuda();
  if (cfg.model.num_classes > 0 && !images->has_labels()) {
    throw Error("model.num_classes is " + std::to_string(cfg.model.num_classes) +
                " but the data set has no labels (set data.labels)");
  }
  data::Loader loader(images, lo);

  at::Generator t_gen = at::make_generator<at::CPUGeneratorImpl>(tc.seed + 1);
  at::Generator noise_gen = device.is_cuda()
                                ? at::globalContext().defaultGenerator(device).clone()
                                : at::make_generator<at::CPUGeneratorImpl>(tc.seed + 2);
  noise_gen.set_current_seed(tc.seed + 2);

  RunState st;
  st.world_size = ctx.world_size;
  // Every rank resolves and reads the same checkpoint (the run dir is shared between nodes).
  const std::string resume_dir = resolve_resume(options.resume, ckpt_root);
  if (!resume_dir.empty()) {
    check_same_run(resume_dir, cfg, options.allow_config_change);
    load_checkpoint(resume_dir, st, model, ema, *optimizer, *sampler, scaler, t_gen, noise_gen,
                    device);
    loader.restore(reshard_position(st, images->size(), ctx.world_size));
    st.world_size = ctx.world_size;
    st.position = loader.position();
    seed_rank_dropout(ctx, tc.seed, st.iteration);
    log::info("resumed from " + resume_dir + " at iteration " + std::to_string(st.iteration));
  }
  dist::GradientReducer reducer(group, params, cfg.dist.bucket_mib);
  // Built before training so that a bad network or statistics file fails now, not at the first
  // evaluation.
  std::unique_ptr<PeriodicFid> fid;
  if (cfg.eval.fid_every > 0 && main_rank && !options.benchmark) {
    fid = std::make_unique<PeriodicFid>(cfg, device);
  }

  const int64_t K = tc.iterations;
  const int64_t stop = options.stop_at >= 0 ? std::min(options.stop_at, K) : K;
  log::info(c10::str(
      "dmtrain: ", n_params, " parameters on ", device, ", precision ",
      precision == at::kFloat ? "fp32" : (precision == at::kHalf ? "fp16" : "bf16"), ", ",
      images->size(), " images, batch ", tc.batch_size,
      ctx.distributed() ? c10::str(" (", local_batch, " x ", ctx.world_size, " ranks)")
                        : std::string(),
      ", iterations ", st.iteration, " -> ", stop, " of ", K, ", run dir ", run_dir.string()));

  const diffusion::ModelFn model_fn = [&](const at::Tensor& x, const at::Tensor& t,
                                          const at::Tensor& y) { return model->forward(x, t, y); };
  std::ofstream metrics;
  if (main_rank) metrics.open(run_dir / "metrics.jsonl", std::ios::app);
  SignalScope signals;
  TrainResult result;

  // Interval accumulators (host side; reset at every status line).
  double loss_sum = 0, gnorm_sum = 0, data_wait = 0;
  int64_t steps_in_interval = 0;
  at::Tensor q_sum = at::zeros({4}, at::TensorOptions(device).dtype(at::kDouble));
  at::Tensor q_count = at::zeros({4}, at::TensorOptions(device).dtype(at::kDouble));
  auto interval_start = Clock::now();
  const auto run_start = Clock::now();
  const int64_t first_iteration = st.iteration;

  // The recipe's per-example losses of a batch, under the run's autocast (eager and graphed step).
  const auto example_losses = [&](const at::Tensor& x, const at::Tensor& tt, const at::Tensor& n,
                                  const at::Tensor& labels) {
    AutocastScope autocast(device.type(), precision, precision != at::kFloat);
    return diffusion.training_losses(model_fn, x, tt, n, labels).loss;
  };
  Clock::time_point timed_start;
  KernelProfile profile;
  // CUDA graphs (train.cuda_graphs): one process, one chunk, no fp16 loss scaling; the first
  // iterations run eagerly (cuDNN autotuning and lazy initialisations must not be captured).
  const bool graphed = tc.cuda_graphs && device.is_cuda() && !ctx.distributed() &&
                       micro_batches == 1 && precision != at::kHalf && CudaGraphStep::available();
  const int64_t graph_from = first_iteration + 3;
  std::unique_ptr<CudaGraphStep> graph_step;
  bool graph_failed = false;
  while (st.iteration < stop) {
    const int64_t k = st.iteration;
    if (options.benchmark && k == first_iteration + options.warmup) {
      synchronize(device);
      if (options.profile) profile.start();
      timed_start = Clock::now();
    }
    auto t0 = Clock::now();
    data::Batch batch = loader.next();
    data_wait += std::chrono::duration<double>(Clock::now() - t0).count();
    at::Tensor x0 = batch.images.to(device, /*non_blocking=*/true);
    if (channels_last) x0 = x0.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor y = cfg.model.num_classes > 0 ? batch.labels.to(device, true) : at::Tensor();

    // Timesteps, weights and noise are drawn for the whole global batch on every rank (same
    // generators, same decisions everywhere) and each rank takes its rows.
    auto draw = sampler->sample(tc.batch_size, k, t_gen);
    // Host-to-device copies from page-locked memory: a copy from pageable memory would make the
    // host wait for the device's queue to drain.
    auto upload = [&](const at::Tensor& h) {
      return device.is_cuda() ? h.pin_memory().to(device, /*non_blocking=*/true) : h;
    };
    at::Tensor w =
        upload(rank_rows(draw.weights * timestep::loss_weight(weighting, abar, draw.t), ctx));
    at::Tensor t = upload(rank_rows(draw.t, ctx));
    std::vector<int64_t> noise_shape = x0.sizes().vec();
    noise_shape[0] = tc.batch_size;
    at::Tensor noise = rank_rows(at::randn(noise_shape, noise_gen, x0.options()), ctx);

    std::vector<at::Tensor> parts;
    at::Tensor loss;
    if (graphed && k >= graph_from && !graph_failed) {
      // Single process: forward, loss and backward replayed from a CUDA graph (captured at the
      // first such iteration); gradients land in the same .grad tensors every time.
      if (!graph_step) {
        graph_step = std::make_unique<CudaGraphStep>(
            [&](const std::vector<at::Tensor>& in) {
              const at::Tensor part = example_losses(in[0], in[1], in[2], in[3]);
              return std::make_pair((part.to(at::kFloat) * in[4]).mean(), part.detach());
            },
            params);
      }
      try {
        const auto out = graph_step->run({x0, t, noise, y, w});
        loss = out.first.detach();
        parts.push_back(out.second);
        if (result.graph_steps++ == 0) {
          log::info(c10::str("iteration ", k, ": training step captured as a CUDA graph"));
        }
      } catch (const Error& e) {
        if (result.graph_steps > 0) throw;  // a replay failed: not a capture problem
        // A step that cannot be captured trains on eagerly, with a warning.
        log::warn(std::string(e.what()) + "; training on without CUDA graphs");
        graph_failed = true;
        graph_step.reset();
      }
    }
    if (!loss.defined()) {
      optimizer->zero_grad();
      // The rank's rows in train.micro_batches chunks (one by default), each chunk's loss its share
      // of the rank's mean, gradients summed in .grad. Only the last chunk's backward is
      // synchronised (as DDP's no_sync): the Reducer then all-reduces the accumulated gradients,
      // averaging over ranks as backward runs.
      const int64_t chunk = local_batch / micro_batches;
      for (int64_t m = 0; m < micro_batches; ++m) {
        const bool last = m == micro_batches - 1;
        const auto rows = [&](const at::Tensor& a) {
          return a.defined() && micro_batches > 1 ? a.slice(0, m * chunk, (m + 1) * chunk) : a;
        };
        if (last) reducer.prepare_for_forward();
        const at::Tensor part = example_losses(rows(x0), rows(t), rows(noise), rows(y));
        const at::Tensor weighted = part.to(at::kFloat) * rows(w);
        // One chunk: the plain mean (the numerics of the unchunked step, to the last bit).
        const at::Tensor share = micro_batches == 1
                                     ? weighted.mean()
                                     : weighted.sum() / static_cast<double>(local_batch);
        if (last) reducer.prepare_for_backward(share);
        scaler.scale(share).backward();
        loss = m == 0 ? share.detach() : loss + share.detach();
        parts.push_back(part.detach());
      }
    }
    const at::Tensor per_example = micro_batches == 1 ? parts.front() : at::cat(parts);
    scaler.unscale(params);
    at::Tensor gnorm_t =
        cfg.optim.grad_clip > 0
            ? at::tensor(torch::nn::utils::clip_grad_norm_(params, cfg.optim.grad_clip))
            : global_grad_norm(params);
    // One host sync per step: the loss and the gradient norm decide whether the step is taken,
    // and every rank must decide alike, as it must about a signal that reached only some ranks:
    // all four numbers are summed over ranks first.
    const int local_sig = g_signal.exchange(0);
    // (Flags made on the device with at::full: no host-to-device copy.)
    const auto flag = [&](bool on) {
      return at::full({}, on ? 1.f : 0.f, loss.options().dtype(at::kFloat));
    };
    at::Tensor both =
        at::stack({loss.detach().to(at::kFloat), gnorm_t.to(loss.device(), at::kFloat),
                   flag(local_sig == SIGINT || local_sig == SIGTERM), flag(local_sig == SIGUSR1)});
    group.all_reduce_sum(both);
    both = both.to(at::kCPU);
    const double loss_v = both[0].item<double>() / ctx.world_size;
    const double gnorm = both[1].item<double>() / ctx.world_size;
    const int sig = both[2].item<float>() > 0 ? SIGTERM : (both[3].item<float>() > 0 ? SIGUSR1 : 0);
    const bool finite = std::isfinite(loss_v) && std::isfinite(gnorm);
    scaler.update(finite);
    if (!finite) {
      ++st.consecutive_nonfinite;
      ++st.skipped_total;
      log::warn(c10::str("iteration ", k, ": non-finite loss (", loss_v, ") or gradient norm (",
                         gnorm, "); step skipped"));
      if (st.consecutive_nonfinite >= tc.max_consecutive_nonfinite) {
        throw Error(c10::str("training diverged: ", st.consecutive_nonfinite,
                             " consecutive non-finite steps at iteration ", k,
                             " (train.max_consecutive_nonfinite). Lower optim.lr, enable "
                             "optim.grad_clip, or use train.precision fp32/bf16."));
      }
    } else {
      st.consecutive_nonfinite = 0;
      set_optimizer_iteration(*optimizer, k);
      optimizer->step();
      ema.update(*model);
      if (sampler->uses_losses()) {
        // The global batch's losses in the order of draw.t: rank r's i-th example is row
        // i * W + r (see rank_rows).
        const at::Tensor gathered = group.all_gather(per_example.detach().to(at::kFloat));
        const at::Tensor global =
            gathered.view({ctx.world_size, local_batch}).t().reshape({tc.batch_size});
        sampler->update_with_losses(draw.t, global.to(at::kCPU));
      }
      loss_sum += loss_v;
      gnorm_sum += gnorm;
      ++steps_in_interval;
      // Loss per timestep quartile, as ID logs it; accumulated on the device, read at log time.
      const at::Tensor quartile =
          (t * 4).div(diffusion.num_timesteps(), "floor").clamp_max(3).to(at::kLong);
      q_sum.index_add_(0, quartile, per_example.detach().to(at::kDouble));
      q_count.index_add_(0, quartile, at::ones_like(quartile, at::kDouble));
    }
    st.iteration = k + 1;
    st.position = loader.position();

    // ---- status line and metrics ------------------------------------------------------------
    if (st.iteration % cfg.log.every == 0 || st.iteration == stop) {
      group.all_reduce_sum(q_sum);  // every rank's examples count in the quartile means
      group.all_reduce_sum(q_count);
      const double secs = std::chrono::duration<double>(Clock::now() - interval_start).count();
      const double ips = steps_in_interval * tc.batch_size / std::max(secs, 1e-9);
      const double done = st.iteration - first_iteration;
      const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
      const double eta = done > 0 ? elapsed / done * static_cast<double>(stop - st.iteration) : 0;
      const auto [beta1, lr] = optimizer_beta1_lr(*optimizer);
      const double mean_loss = steps_in_interval ? loss_sum / steps_in_interval : NAN;
      const double mem_gib = peak_gpu_gib(device);
      std::ostringstream line;
      line << "iter " << st.iteration << "/" << K << " | loss " << fmt(mean_loss) << " | grad "
           << fmt(steps_in_interval ? gnorm_sum / steps_in_interval : NAN) << " | lr " << fmt(lr, 3)
           << " | beta1 " << fmt(beta1, 4) << " | " << fmt(ips, 4) << " img/s"
           << " | data " << fmt(100.0 * data_wait / std::max(secs, 1e-9), 3) << "%"
           << (device.is_cuda() ? " | mem " + fmt(mem_gib, 3) + " GiB" : std::string()) << " | ETA "
           << duration(eta);
      if (main_rank) log::info(line.str());
      // JSON has no NaN or infinity: a non-finite number is written as null.
      auto num = [](double v) {
        if (!std::isfinite(v)) return std::string("null");
        std::ostringstream os;
        os << std::setprecision(8) << v;
        return os.str();
      };
      std::ostringstream js;
      js << "{\"step\": " << st.iteration << ", \"images\": " << st.iteration * tc.batch_size
         << ", \"loss\": " << num(mean_loss)
         << ", \"grad_norm\": " << num(steps_in_interval ? gnorm_sum / steps_in_interval : NAN)
         << ", \"lr\": " << num(lr) << ", \"beta1\": " << num(beta1)
         << ", \"img_per_s\": " << num(ips) << ", \"data_wait_s\": " << num(data_wait)
         << ", \"skipped\": " << st.skipped_total
         << ", \"loss_scale\": " << num(scaler.scale_value())
         << ", \"gpu_mem_gib\": " << num(mem_gib);
      const at::Tensor qs = q_sum.cpu(), qc = q_count.cpu();
      for (int q = 0; q < 4; ++q) {
        const double count = qc[q].item<double>();
        js << ", \"loss_q" << q << "\": " << num(count > 0 ? qs[q].item<double>() / count : NAN);
      }
      js << "}";
      const std::string rec = js.str();
      if (main_rank) metrics << rec << "\n" << std::flush;
      loss_sum = gnorm_sum = data_wait = 0;
      steps_in_interval = 0;
      q_sum.zero_();
      q_count.zero_();
      interval_start = Clock::now();
    }

    // ---- checkpoints, samples, signals ------------------------------------------------------
    const bool periodic = cfg.checkpoint.every > 0 && st.iteration % cfg.checkpoint.every == 0;
    if (!options.benchmark && (periodic || sig != 0 || st.iteration == stop)) {
      // Rank 0 writes (the state is identical on every rank); the others wait at the barrier,
      // so no rank runs ahead of, or exits before, a committed checkpoint.
      if (main_rank) {
        result.last_checkpoint = save_checkpoint(ckpt_root, cfg, st, model, ema, *optimizer,
                                                 *sampler, scaler, t_gen, noise_gen);
      }
      group.barrier();
    }
    if (!options.benchmark && cfg.sample.every > 0 && st.iteration % cfg.sample.every == 0 &&
        st.iteration != K) {
      if (main_rank) {
        write_sample_grid(cfg, *model, ema, diffusion, device, run_dir.string(), st.iteration);
      }
      group.barrier();
    }
    if (!options.benchmark && cfg.eval.fid_every > 0 && sig == 0 &&
        (st.iteration % cfg.eval.fid_every == 0 || st.iteration == K)) {
      if (main_rank) {
        const auto f0 = Clock::now();
        const double v = fid->evaluate(*model, ema, diffusion);
        const double secs = std::chrono::duration<double>(Clock::now() - f0).count();
        log::info(c10::str("iter ", st.iteration, " | FID ", fmt(v, 5), " (EMA ",
                           ema.rates().front(), ", ", cfg.eval.fid_samples, " samples, ",
                           cfg.eval.steps, ", ", fmt(secs, 3), " s)"));
        metrics << "{\"step\": " << st.iteration
                << ", \"fid\": " << (std::isfinite(v) ? fmt(v, 8) : std::string("null"))
                << ", \"fid_samples\": " << cfg.eval.fid_samples << ", \"fid_seconds\": " << secs
                << "}\n"
                << std::flush;
        interval_start += Clock::now() - f0;  // keep evaluation time out of img/s
      }
      group.barrier();
    }
    if (sig == SIGINT || sig == SIGTERM) {
      log::warn(c10::str("signal ", sig, ": checkpoint written at iteration ", st.iteration,
                         "; resume with --resume auto"));
      result.interrupted = true;
      break;
    }
  }
  result.iteration = st.iteration;
  if (options.benchmark) {
    synchronize(device);
    result.timed_iterations = st.iteration - first_iteration - options.warmup;
    result.timed_seconds = result.timed_iterations > 0
                               ? std::chrono::duration<double>(Clock::now() - timed_start).count()
                               : 0.0;
    result.peak_gpu_gib = peak_gpu_gib(device);
    if (profile.recording()) {
      result.profile_summary =
          profile.stop(options.profile_trace, std::max<int64_t>(result.timed_iterations, 1));
    }
  } else if (st.iteration == K && !result.interrupted && main_rank) {
    for (size_t i = 0; i < ema.rates().size(); ++i) {
      torch::serialize::OutputArchive a;
      ema.save(i, a);
      a.save_to((run_dir / ("ema_" + fmt(ema.rates()[i], 6) + ".pt")).string());
    }
    write_sample_grid(cfg, *model, ema, diffusion, device, run_dir.string(), st.iteration);
  }
  group.barrier();  // nobody tears down the process group while another rank still writes
  result.rank = ctx.rank;
  result.world_size = ctx.world_size;
  log::flush();
  return result;
}

}  // namespace dmtrain::train
