// The training loop. train() reads top to bottom as a run happens: take the run dir, build the
// run (run.hpp) and its step (step_plan.hpp, step.hpp), resume, then per iteration one
// train_step() (train_step.hpp), offered to each periodic component, which decides whether it is
// due (metrics, checkpoints, sample grids, FID; util/progress.hpp). See trainer.hpp for the
// contract; dmtrain bench times the same step in its own loop (bench.cpp).
#include "dmtrain/train/trainer.hpp"

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <optional>

#ifdef DMTRAIN_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif
#include <ATen/Parallel.h>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/checkpoint/checkpointer.hpp"
#include "dmtrain/checkpoint/run_dir.hpp"
#include "dmtrain/checkpoint/run_dir_lock.hpp"
#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/observe/periodic_fid.hpp"
#include "dmtrain/observe/sample_grid.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/train/posthoc_ema_run.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/progress.hpp"
#include "dmtrain/util/stop_request.hpp"
#include "run.hpp"
#include "step.hpp"
#include "step_plan.hpp"
#include "train_step.hpp"

namespace dmtrain::train {
using namespace detail;  // Run, the step and train_step (run.hpp, step.hpp, train_step.hpp)

namespace {

// Continues from a checkpoint when options ask for one (every rank reads the same folder).
void resume(Run& r, const TrainOptions& options) {
  const std::string dir = checkpoint::resolve_resume(options.resume, r.checkpoint_root());
  if (!dir.empty()) {
    checkpoint::check_same_run(dir, r.cfg, options.allow_config_change);
    r.state.load(dir, r.device);
    r.loader.restore(
        checkpoint::reshard_position(r.state.counters, r.images->size(), r.ctx.world_size));
    r.state.counters.world_size = r.ctx.world_size;
    r.state.counters.position = r.loader.position();
    seed_rank_dropout(r.ctx, r.cfg.train.seed, r.iteration());
    log::info("resumed from " + dir + " at iteration " + std::to_string(r.iteration()));
  }
  // metrics.jsonl holds each step once: the records after the iteration this run starts from are
  // trained again (after a resume; all of them when a run killed before its first checkpoint
  // starts afresh).
  if (r.main_rank()) {
    const std::string metrics = (r.run_dir / "metrics.jsonl").string();
    const int64_t cut = observe::truncate_metrics_file(metrics, r.iteration());
    if (cut > 0) {
      log::info(c10::str("start: ", cut, " records after iteration ", r.iteration(),
                         " removed from ", metrics, " (they are trained again)"));
    }
  }
}

// The sample grids after iteration k, and TensorBoard's sample point (below).
void write_grids(Run& r, observe::MetricsLog& metrics, int64_t k);

// A sample point in TensorBoard: the grids (each EMA's and the raw weights') and the distribution
// p_k(t) the sampler draws from at k, as a histogram of 50 buckets of t.
void log_progress(Run& r, observe::MetricsLog& metrics,
                  const std::vector<observe::SampleGrid>& grids, int64_t k) {
  observe::EventWriter* events = metrics.events();
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

// Long work that a stop signal abandoned: the signal is still pending, so the next iteration
// boundary takes it and checkpoints.
void warn_abandoned(const util::StopRequested& e, int64_t k) {
  log::warn(c10::str(e.what(), " (iteration ", k, "); the checkpoint comes first"));
}

void write_grids(Run& r, observe::MetricsLog& metrics, int64_t k) {
  try {
    log_progress(r, metrics,
                 observe::write_sample_grids(r.cfg, *r.model, r.ema, r.diffusion, r.device,
                                             r.run_dir.string(), k),
                 k);
  } catch (const util::StopRequested& e) {
    warn_abandoned(e, k);
  } catch (const Error& e) {
    // A grid is for watching the run: one that cannot be written (a full disk) is not worth the
    // run. The checkpoints have their own errors.
    log::warn(
        c10::str("sample grid of iteration ", k, " not written, training goes on: ", e.what()));
  }
}

// Rank 0 does `f`; every rank waits for it, so no rank runs ahead of (or exits before) it.
template <class F>
void on_main_rank(Run& r, F f) {
  if (r.main_rank()) f();
  r.group.barrier();
}

}  // namespace

std::string device_name(const std::string& device_config) {
  const at::Device device = recipe::pick_device(device_config, "train.device");
#ifdef DMTRAIN_TORCH_HAS_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  return "CPU (" + std::to_string(at::get_num_threads()) + " threads)";
}

TrainResult train(const config::RunConfig& cfg, const TrainOptions& options) {
  // Who we are in a (possibly) multi-process job: rank 0 owns the console, the metrics, the
  // checkpoints and the samples; every rank logs to its own file (docs/distributed.md).
  const dist::Context ctx = dist::from_env();
  set_cpu_threads(cfg);
  // The run dir belongs to this run from here on (run_dir_lock.hpp, run_dir.hpp): a second
  // trainer fails now, before it touches anything, and a fresh start does not mix with an old run.
  std::optional<checkpoint::RunDirLock> lock;
  if (ctx.is_main()) lock.emplace(cfg.train.run_dir);
  const checkpoint::RunStart start{options.resume, options.restart};
  checkpoint::prepare_run_dir(cfg.train.run_dir, start, ctx.is_main());
  Run r(cfg, ctx, options.single_rank_group);
  if (r.main_rank()) checkpoint::remove_uncommitted(r.checkpoint_root());
  resume(r, options);
  std::unique_ptr<PosthocEmaRun> phema;  // train.posthoc_ema (rank 0), after the resume it follows
  if (r.main_rank()) {
    phema = PosthocEmaRun::start(cfg, *r.model, r.state, options.resume, r.iteration());
  }
  checkpoint::check_resumed(cfg.train.run_dir, start, r.iteration());
  // Written once the config is validated, the data opened and the resume checked.
  if (r.main_rank()) {
    checkpoint::write_file_atomically((r.run_dir / "config.yaml").string(),
                                      config::dump_config(cfg));
  }
  const StepPlan plan = plan_step(r, r.iteration());
  const std::unique_ptr<Step> step = make_step(r, plan);
  // Built before training so that a bad network or statistics file fails now, not at the first
  // evaluation.
  std::unique_ptr<observe::PeriodicFid> fid;
  if (cfg.eval.fid_every > 0 && r.main_rank()) {
    fid = std::make_unique<observe::PeriodicFid>(cfg, r.device);
  }
  const int64_t K = cfg.train.iterations;
  const int64_t stop = options.stop_at >= 0 ? std::min(options.stop_at, K) : K;
  log::info(describe(r, stop));
  log::info(plan.describe(r.group.is_distributed()));
  observe::MetricsLog metrics(metrics_options(r, stop));
  checkpoint::Checkpointer checkpoints(r.state, r.checkpoint_root(), cfg);
  // train.prefetch_inputs, after the resume: its generators start from the state's.
  std::unique_ptr<InputPrefetch> prefetch;
  if (plan.prefetch) prefetch = std::make_unique<InputPrefetch>(r.state);
  SignalScope signals;
  TrainResult result;
  while (r.iteration() < stop) {
    const StepResult s = train_step(r, *step, metrics, r.iteration(), prefetch.get(), stop);
    const util::Progress at{r.iteration(), stop, K, s.signal};
    if (phema) phema->after_step(*r.model, at.done, !r.state.counters.consecutive_nonfinite);
    if (metrics.due(at)) flush_metrics(r, metrics);
    if (checkpoints.due(at)) on_main_rank(r, [&] { checkpoints.save(at.done); });
    // Page-locked memory for the snapshots, allocated in the background once the state exists.
    if (r.main_rank()) r.state.reserve_checkpoint_memory(cfg);
    if (observe::sample_grids_due(cfg, at))
      on_main_rank(r, [&] { write_grids(r, metrics, at.done); });
    if (observe::PeriodicFid::due(cfg, at)) {
      on_main_rank(r, [&] {
        try {
          fid->report(at.done, *r.model, r.ema, r.diffusion, metrics);
        } catch (const util::StopRequested& e) {
          warn_abandoned(e, at.done);
        }
      });
    }
    if (s.signal == SIGTERM) {
      log::warn(c10::str("stop signal: checkpoint written at iteration ", at.done,
                         "; resume with --resume auto"));
      result.interrupted = true;
      break;
    }
  }
  if (r.iteration() == K && !result.interrupted && r.main_rank()) {
    // Each export carries a checksum sidecar that the sample/eval commands verify.
    for (size_t i = 0; i < r.ema.rates().size(); ++i) {
      ema::export_final_ema(r.ema, i, r.run_dir.string());
    }
    write_grids(r, metrics, K);
  }
  // The checkpoint in flight (the last one, or the stop signal's) committed, or its error thrown.
  if (r.main_rank()) result.last_checkpoint = checkpoints.finish();
  r.group.barrier();  // nobody tears down the process group while another rank still writes
  result.iteration = r.iteration();
  result.graph_steps = step->graph_steps();
  if (prefetch) result.prefetched_steps = prefetch->used;
  result.rank = r.ctx.rank;
  result.world_size = r.ctx.world_size;
  log::flush();
  return result;
}

}  // namespace dmtrain::train
