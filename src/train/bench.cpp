// Implementation of dmtrain/train/bench.hpp: the training step of train() in a timed loop.
#include "dmtrain/train/bench.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

#include "dmtrain/checkpoint/run_dir_lock.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/observe/kernel_profile.hpp"
#include "dmtrain/util/log.hpp"
#include "run.hpp"
#include "step.hpp"
#include "step_plan.hpp"
#include "train_step.hpp"

namespace dmtrain::train {
using namespace detail;

BenchResult bench(const config::RunConfig& cfg, const BenchOptions& options) {
  using Clock = std::chrono::steady_clock;
  const dist::Context ctx = dist::from_env();
  set_cpu_threads(cfg);
  std::optional<checkpoint::RunDirLock> lock;
  if (ctx.is_main()) lock.emplace(cfg.train.run_dir);
  Run r(cfg, ctx, /*single_rank_group=*/false);
  const StepPlan plan = plan_step(r, r.iteration());
  const std::unique_ptr<Step> step = make_step(r, plan);
  const int64_t stop = cfg.train.iterations;
  log::info(describe(r, stop));
  log::info(plan.describe(r.group.is_distributed()));
  observe::MetricsLog metrics(metrics_options(r, stop));
  std::unique_ptr<InputPrefetch> prefetch;
  if (plan.prefetch) prefetch = std::make_unique<InputPrefetch>(r.state);
  SignalScope signals;
  observe::KernelProfile profile;
  Clock::time_point start;
  const int64_t first = r.iteration();
  while (r.iteration() < stop) {
    if (r.iteration() == first + options.warmup) {
      synchronize(r.device);
      if (options.profile) profile.start(/*record_shapes=*/!options.profile_trace.empty());
      start = Clock::now();
    }
    train_step(r, *step, metrics, r.iteration(), prefetch.get(), stop);
    if (metrics.due({r.iteration(), stop, stop, 0})) flush_metrics(r, metrics);
  }
  synchronize(r.device);
  BenchResult result;
  result.timed_iterations = r.iteration() - first - options.warmup;
  result.timed_seconds = result.timed_iterations > 0
                             ? std::chrono::duration<double>(Clock::now() - start).count()
                             : 0.0;
  result.peak_gpu_gib = peak_gpu_gib(r.device);
  result.graph_steps = step->graph_steps();
  if (profile.recording()) {
    result.profile_summary =
        profile.stop(options.profile_trace, std::max<int64_t>(result.timed_iterations, 1));
  }
  r.group.barrier();
  result.rank = r.ctx.rank;
  result.world_size = r.ctx.world_size;
  log::flush();
  return result;
}

}  // namespace dmtrain::train
