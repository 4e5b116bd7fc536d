// Implementation of step.hpp: the eager step, the graphed step and the gradient averaging.
#include "step.hpp"

#include <ATen/autocast_mode.h>
#include <c10/util/StringUtil.h>
#include <torch/nn/utils/clip_grad.h>

#include <memory>
#include <string>
#include <vector>

#include "dmtrain/timestep/loss_weighting.hpp"
#include "dmtrain/train/cuda_graph_step.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train::detail {
namespace {

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

// The rank's rows in train.micro_batches chunks (one by default), each chunk's loss its share of
// the rank's mean, gradients summed in .grad. Only the last chunk's backward is synchronised (as
// DDP's no_sync): the reducer then all-reduces the accumulated gradients as backward runs.
class EagerStep final : public Step {
 public:
  explicit EagerStep(Run& r) : r_(r) {}

  Losses forward_backward(const StepInputs& in, int64_t /*k*/) override {
    Run& r = r_;
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
      const at::Tensor weighted =
          timestep::weighted_objective(terms.loss, terms.mse, terms.vb, rows(in.w), rows(in.w_mse));
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
    out.grad_norm = unscaled_grad_norm(r);
    return out;
  }

  void apply(int64_t k) override {
    r_.state.fence_checkpoint();  // a checkpoint's host copies are taken before the update
    r_.optimizer->step();
    r_.ema.update(*r_.model, k);
  }

 private:
  Run& r_;
};

// The eager step for the iterations before plan.capture_at (cuDNN autotuning and lazy
// initialisations must not be captured), then the step replayed from a CUDA graph captured there.
// With plan.optimizer_in_graph the graph also holds the optimizer and EMA update
// (optim/flat_update.hpp; the weights, gradients, moments and EMA copies move into flat buffers
// at the capture), skipped inside the graph when not finite; apply() then only advances the
// optimizer's counters. A step that cannot be captured trains on eagerly from then on.
class GraphedStep final : public Step {
 public:
  GraphedStep(Run& r, const StepPlan& plan)
      : r_(r), eager_(r), from_(plan.capture_at), with_optimizer_(plan.optimizer_in_graph) {}

  Losses forward_backward(const StepInputs& in, int64_t k) override {
    replayed_update_ = false;
    if (k < from_ || failed_) return eager_.forward_backward(in, k);
    if (!step_) capture_setup();
    try {
      if (update_) {
        update_->prepare(k);  // iteration k's lr, beta1, bias corrections, EMA rates
        // The replay updates weights, moments and EMAs in place, as the eager apply does: a
        // checkpoint's device-to-host copies in flight must be done first.
        r_.state.fence_checkpoint();
      }
      const auto out = step_->run({in.x0, in.t, in.noise, in.y, in.w, in.w_mse});
      if (graph_steps_++ == 0) {
        log::info(c10::str("iteration ", k, ": training step captured as a CUDA graph"));
      }
      Losses losses{out.first.detach(), out.second, {}};
      if (update_) {
        losses.grad_norm = step_->update_result();
        replayed_update_ = true;
      } else {
        losses.grad_norm = unscaled_grad_norm(r_);
      }
      return losses;
    } catch (const Error& e) {
      if (graph_steps_ > 0) throw;  // a replay failed: not a capture problem
      log::warn(std::string(e.what()) + "; training on without CUDA graphs");
      failed_ = true;
      step_.reset();
      // The flat buffers stay the tensors' storage: the eager step uses them.
      update_ = nullptr;
      owned_update_.reset();
      if (r_.bucketed) r_.bucketed->abandon_step();  // buckets the failed capture launched
      return eager_.forward_backward(in, k);
    }
  }

  void apply(int64_t k) override {
    if (replayed_update_) {
      update_->commit(k);  // the graph updated weights and EMAs already
    } else {
      eager_.apply(k);
    }
  }

  int64_t graph_steps() const override { return graph_steps_; }

 private:
  void capture_setup() {
    Run& r = r_;
    CudaGraphStep::CapturedUpdate captured;
    if (with_optimizer_) {
      if (!r.flat_step) {
        owned_update_ = std::make_unique<optim::FlatOptimizerStep>(
            r.params, *r.optimizer, ema_copies(r.ema), ema_weight(r), r.cfg.optim.grad_clip);
      }
      update_ = r.flat_step ? r.flat_step.get() : owned_update_.get();
      optim::FlatOptimizerStep* u = update_;
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
    step_ = std::make_unique<CudaGraphStep>(
        [&r](const std::vector<at::Tensor>& x) {
          const auto terms = example_losses(r, x[0], x[1], x[2], x[3]);
          const at::Tensor weighted =
              timestep::weighted_objective(terms.loss, terms.mse, terms.vb, x[4], x[5]);
          return std::make_pair(weighted.mean(), terms.loss.detach());
        },
        r.params, std::move(captured));
  }

  Run& r_;
  EagerStep eager_;
  const int64_t from_;
  const bool with_optimizer_;
  // Outlive the graph that uses their buffers; with dist.graph_step the run's r.flat_step.
  std::unique_ptr<optim::FlatOptimizerStep> owned_update_;
  optim::FlatOptimizerStep* update_ = nullptr;
  std::unique_ptr<CudaGraphStep> step_;
  bool failed_ = false, replayed_update_ = false;
  int64_t graph_steps_ = 0;
};

// How a distributed run averages its gradients. With plan.bucketed (dist.graph_step): the
// parameters are flattened now (after the resume, which replaces their storage) and
// BucketedAllReduce averages the flat gradient buffer, eagerly or inside the step's CUDA graph,
// so a run has one averaging path; else c10d's Reducer (a no-op for one process).
void build_gradient_averaging(Run& r, const StepPlan& plan) {
  if (!plan.bucketed) {
    r.reducer = std::make_unique<dist::GradientReducer>(r.group, r.params, r.cfg.dist.bucket_mib);
    return;
  }
  r.flat_step = std::make_unique<optim::FlatOptimizerStep>(
      r.params, *r.optimizer, ema_copies(r.ema), ema_weight(r), r.cfg.optim.grad_clip);
  r.bucketed = std::make_unique<dist::BucketedAllReduce>(r.group, r.flat_step->buffers().grads,
                                                         r.params, r.cfg.dist.bucket_mib);
}

}  // namespace

std::unique_ptr<Step> make_step(Run& r, const StepPlan& plan) {
  build_gradient_averaging(r, plan);
  if (plan.graph) return std::make_unique<GraphedStep>(r, plan);
  return std::make_unique<EagerStep>(r);
}

}  // namespace dmtrain::train::detail
