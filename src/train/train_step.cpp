// One optimizer iteration (train_step.hpp): the batch and its per-example draws, the run's Step
// (forward + backward, eager or replayed from a CUDA graph), the one host sync that decides
// whether the step is taken, then the Step's update and the sampler's.
#include "train_step.hpp"

#include <chrono>
#include <cmath>
#include <csignal>
#include <vector>

#include "dmtrain/timestep/loss_weighting.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train::detail {
namespace {

using Clock = std::chrono::steady_clock;

// Rows r, r + W, r + 2W, ... of a global-batch tensor: this rank's share, in the order its
// loader yields images (see reshard_position), so that every per-example draw (timestep, weight,
// noise) is the one a single process with the whole batch would give the same image.
at::Tensor rank_rows(const at::Tensor& global, const dist::Context& ctx) {
  if (!ctx.distributed()) return global;
  return global.slice(0, ctx.rank, global.size(0), ctx.world_size).contiguous();
}

}  // namespace

// Iteration k's batch and its draws (timesteps, loss weights, noise) for this rank, from the
// generators given: the state's, or with train.prefetch_inputs the InputPrefetch's.
PreparedInputs prepare_inputs(Run& r, observe::MetricsLog& metrics, int64_t k, at::Generator& t_gen,
                              at::Generator& noise_gen) {
  const auto& tc = r.cfg.train;
  auto t0 = Clock::now();
  data::Batch batch = r.loader.next();
  metrics.add("perf/data_wait_s", std::chrono::duration<double>(Clock::now() - t0).count());
  at::Tensor x0 = batch.images.to(r.device, /*non_blocking=*/true);
  if (r.device.is_cuda() && tc.channels_last) x0 = x0.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor y = r.cfg.model.num_classes > 0 ? batch.labels.to(r.device, true) : at::Tensor();

  // Timesteps, weights and noise are drawn for the whole global batch on every rank (same
  // generators, same decisions everywhere) and each rank takes its rows. Host-to-device copies
  // come from page-locked memory: from pageable memory the host would wait for the device.
  PreparedInputs p;
  p.draw = r.sampler->sample(tc.batch_size, k, t_gen);
  const auto upload = [&](const at::Tensor& h) {
    return r.device.is_cuda() ? h.pin_memory().to(r.device, /*non_blocking=*/true) : h;
  };
  const timestep::TermWeights w =
      timestep::split_weights(r.weighting, r.diffusion.alphas_cumprod(), p.draw);
  StepInputs& in = p.in;
  in.x0 = x0;
  in.y = y;
  in.w = upload(rank_rows(w.whole, r.ctx));
  if (w.mse.defined()) in.w_mse = upload(rank_rows(w.mse, r.ctx));
  in.t = upload(rank_rows(p.draw.t, r.ctx));
  std::vector<int64_t> noise_shape = x0.sizes().vec();
  noise_shape[0] = tc.batch_size;
  in.noise = rank_rows(at::randn(noise_shape, noise_gen, x0.options()), r.ctx);
  return p;
}

InputPrefetch::InputPrefetch(const checkpoint::TrainState& state)
    : t_gen(state.t_gen.clone()), noise_gen(state.noise_gen.clone()) {}

// One optimizer iteration k: the batch and its draws, forward + backward, the finite check
// agreed over ranks, then the optimizer, EMA and sampler updates (skipped when not finite).
StepResult train_step(Run& r, Step& step, observe::MetricsLog& metrics, int64_t k,
                      InputPrefetch* prefetch, int64_t stop) {
  const auto& tc = r.cfg.train;
  at::Generator& t_gen = prefetch != nullptr ? prefetch->t_gen : r.state.t_gen;
  at::Generator& noise_gen = prefetch != nullptr ? prefetch->noise_gen : r.state.noise_gen;
  PreparedInputs prepared;
  if (prefetch != nullptr && prefetch->next && prefetch->next_iteration == k) {
    prepared = std::move(*prefetch->next);
    ++prefetch->used;
  } else {
    prepared = prepare_inputs(r, metrics, k, t_gen, noise_gen);
  }
  if (prefetch != nullptr) prefetch->next.reset();
  const StepInputs& in = prepared.in;
  const auto& draw = prepared.draw;

  const Losses out = step.forward_backward(in, k);
  // What a checkpoint after this iteration holds: the loader position and the generators after
  // its draws. With train.prefetch_inputs the next iteration's are drawn now, while the device
  // runs this one (the sync below would otherwise leave it idle while the host draws them).
  const data::LoaderPosition position = r.loader.position();
  if (prefetch != nullptr) {
    r.state.t_gen.set_state(prefetch->t_gen.get_state());
    r.state.noise_gen.set_state(prefetch->noise_gen.get_state());
    if (k + 1 < stop) {
      prefetch->next = prepare_inputs(r, metrics, k + 1, t_gen, noise_gen);
      prefetch->next_iteration = k + 1;
    }
  }
  // One host sync per step: the loss and the gradient norm decide whether the step is taken, and
  // every rank must decide alike, as it must about a signal that reached only some ranks: all
  // four numbers are summed over ranks first (flags made on the device: no host copy).
  const int local_sig = take_signal();
  const auto flag = [&](bool on) {
    return at::full({}, on ? 1.f : 0.f, out.loss.options().dtype(at::kFloat));
  };
  at::Tensor both =
      at::stack({out.loss.to(at::kFloat), out.grad_norm.to(out.loss.device(), at::kFloat),
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
    step.apply(k);
    if (r.sampler->uses_losses()) {
      // The global batch's losses in the order of draw.t: rank r's i-th example is row i W + r.
      const at::Tensor gathered = r.group.all_gather(out.per_example.to(at::kFloat));
      const at::Tensor global =
          gathered.view({r.ctx.world_size, r.local_batch}).t().reshape({tc.batch_size});
      r.sampler->update_with_losses(draw.t, global.to(at::kCPU));
    }
    metrics.report("train/loss", loss);
    metrics.report("train/grad_norm", gnorm);
    metrics.add_step(in.t, out.per_example);
  }
  c.iteration = k + 1;
  c.position = position;
  return res;
}

}  // namespace dmtrain::train::detail
