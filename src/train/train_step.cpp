// One optimizer iteration (train_step.hpp): the batch and its per-example draws, the forward +
// backward (eager, chunked for train.micro_batches, or replayed from a CUDA graph), the one host
// sync that decides whether the step is taken, then the optimizer, EMA and sampler updates.
#include "train_step.hpp"

#include <ATen/autocast_mode.h>
#include <torch/nn/utils/clip_grad.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <memory>
#include <vector>

#include "dmtrain/timestep/loss_weighting.hpp"
#include "dmtrain/train/cuda_graph_step.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train::detail {
namespace {

using Clock = std::chrono::steady_clock;

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

// The recipe's per-example loss terms of a batch, under the run's autocast.
diffusion::TrainingLosses example_losses(Run& r, const at::Tensor& x, const at::Tensor& t,
                                         const at::Tensor& n, const at::Tensor& y) {
  AutocastScope autocast(r.device.type(), r.precision, r.precision != at::kFloat);
  const diffusion::ModelFn model_fn = [&](const at::Tensor& xt, const at::Tensor& tt,
                                          const at::Tensor& labels) {
    return r.model->forward(xt, tt, labels);
  };
  return r.diffusion.training_losses(model_fn, x, t, n, y);
}

std::vector<std::vector<at::Tensor>> ema_copies(const Ema& ema) {
  std::vector<std::vector<at::Tensor>> out;
  for (size_t i = 0; i < ema.rates().size(); ++i) out.push_back(ema.params(i));
  return out;
}

optim::FlatOptimizerStep::EmaWeight ema_weight(Run& r) {
  return [&r](size_t j, int64_t step) { return 1.0 - r.ema.rate_at(j, step); };
}

// The rank's loss summed over the ranks, on the device (inside a capture the collective is
// recorded): the captured update's finite decision then reads the same numbers on every rank,
// as the host's decision after the replay does, so no rank can apply a step another skips.
at::Tensor loss_summed_over_ranks(const Run& r, const at::Tensor& loss) {
  at::Tensor sum = loss.detach().to(at::kFloat).reshape({1}).clone();
  r.group.all_reduce_sum(sum);  // NCCL: wait() makes the stream wait, no host sync
  return sum.view({});
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

}  // namespace

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
      const auto terms = example_losses(r, rows(in.x0), rows(in.t), rows(in.noise), rows(in.y));
      const at::Tensor& part = terms.loss;
      const at::Tensor weighted = timestep::weighted_objective(terms.loss, terms.mse, terms.vb,
                                                               rows(in.w), rows(in.w_mse));
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
        // (not with dist.graph_step: the all-reduce hooks need the gradients to be the buckets')
        if (r.cfg.train.graph_grad_gather && !r.bucketed) {
          captured.gather_into = u->buffers().grad_views;
        }
        if (r.bucketed) {  // dist.graph_step: the bucket all-reduces are in the graph too
          captured.after_backward = [&r] { r.bucketed->finish(); };
          captured.thread_local_capture = true;
          captured.update = [u, &r](const at::Tensor& loss) {
            return u->update(loss_summed_over_ranks(r, loss));
          };
        }
      }
      g->step = std::make_unique<CudaGraphStep>(
          [&r](const std::vector<at::Tensor>& x) {
            const auto terms = example_losses(r, x[0], x[1], x[2], x[3]);
            const at::Tensor weighted =
                timestep::weighted_objective(terms.loss, terms.mse, terms.vb, x[4], x[5]);
            return std::make_pair(weighted.mean(), terms.loss.detach());
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
      const auto out = g->step->run({in.x0, in.t, in.noise, in.y, in.w, in.w_mse});
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

// Iteration k's batch and its draws (timesteps, loss weights, noise) for this rank, from the
// generators given: the state's, or with train.prefetch_inputs the InputPrefetch's.
PreparedInputs prepare_inputs(Run& r, MetricsLog& metrics, int64_t k, at::Generator& t_gen,
                              at::Generator& noise_gen) {
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

InputPrefetch::InputPrefetch(const TrainState& state)
    : t_gen(state.t_gen.clone()), noise_gen(state.noise_gen.clone()) {}

// One optimizer iteration k: the batch and its draws, forward + backward, the finite check
// agreed over ranks, then the optimizer, EMA and sampler updates (skipped when not finite).
StepResult train_step(Run& r, const ForwardBackward& forward_backward, MetricsLog& metrics,
                      int64_t k, InputPrefetch* prefetch, int64_t stop) {
  const auto& tc = r.cfg.train;
  at::Generator& t_gen = prefetch != nullptr ? prefetch->t_gen : r.state.t_gen;
  at::Generator& noise_gen = prefetch != nullptr ? prefetch->noise_gen : r.state.noise_gen;
  PreparedInputs step;
  if (prefetch != nullptr && prefetch->next && prefetch->next_iteration == k) {
    step = std::move(*prefetch->next);
    ++prefetch->used;
  } else {
    step = prepare_inputs(r, metrics, k, t_gen, noise_gen);
  }
  if (prefetch != nullptr) prefetch->next.reset();
  const StepInputs& in = step.in;
  const auto& draw = step.draw;

  const Losses out = forward_backward(in, k);
  const at::Tensor gnorm_t = out.grad_norm.defined() ? out.grad_norm : unscaled_grad_norm(r);
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
  c.position = position;
  return res;
}

}  // namespace dmtrain::train::detail
