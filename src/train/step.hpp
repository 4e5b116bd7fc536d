// Step: the forward + backward of one iteration and the optimizer and EMA update of a taken
// step, built once from the run's StepPlan (step_plan.hpp):
//   eager    the rank's rows in train.micro_batches chunks, gradients in .grad (or in the flat
//            buffer the bucketed all-reduce averages); the update is MdlrcAdam::step + Ema::update
//   graphed  the eager step for the first iterations, then replayed from a CUDA graph that may
//            also hold the data-parallel all-reduce and the optimizer and EMA update (flat
//            buffers, skipped inside the graph when not finite); a step that cannot be captured
//            trains on eagerly, with a warning
// train_step() (train_step.hpp) calls forward_backward, decides whether the step is taken, and
// then apply: it never learns which variant runs. Internal to the trainer.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

#include "run.hpp"
#include "step_plan.hpp"

namespace dmtrain::train::detail {

struct StepInputs {
  at::Tensor x0, t, noise, y;  // this rank's rows
  // Their loss weights (timestep/loss_weighting.hpp): w multiplies an example's whole loss,
  // w_mse (undefined unless a loss weight goes to the MSE term alone) its MSE term.
  at::Tensor w, w_mse;
};

struct Losses {
  at::Tensor loss;         // the scalar backward ran on (this rank's weighted mean)
  at::Tensor per_example;  // unweighted, this rank's rows
  at::Tensor grad_norm;    // the global gradient norm (unscaled; clipped to optim.grad_clip)
};

class Step {
 public:
  virtual ~Step() = default;
  // Iteration k's forward, loss and backward.
  virtual Losses forward_backward(const StepInputs& in, int64_t k) = 0;
  // The optimizer and EMA update of iteration k, once every rank agreed the step is finite.
  virtual void apply(int64_t k) = 0;
  // Iterations replayed from a CUDA graph so far.
  virtual int64_t graph_steps() const { return 0; }
};

// The step of `plan`; builds the run's gradient averaging first (after the resume, which replaces
// the parameters' storage): c10d's Reducer, or with plan.bucketed the flat buffers and the
// bucketed all-reduce.
std::unique_ptr<Step> make_step(Run& r, const StepPlan& plan);

}  // namespace dmtrain::train::detail
