// One optimizer iteration of the training loop (train_step) and the forward + backward inside it
// (a ForwardBackward: eager, or wrapped into a CUDA graph that may also hold the optimizer and EMA
// update and the data-parallel all-reduce). Internal to the trainer: see trainer.hpp.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "dmtrain/train/metrics_log.hpp"
#include "run.hpp"

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
  // Set when the step applied the optimizer and EMA update itself (train.graph_optimizer: inside
  // the CUDA graph, skipped there when not finite): the gradient norm it measured, and what a
  // finite step then still does on the host (advance the optimizer's counters, as step()).
  at::Tensor grad_norm;
  std::function<void()> commit;
};
// Forward, loss and backward of one iteration; gradients land in the parameters' .grad.
using ForwardBackward = std::function<Losses(const StepInputs&, int64_t iteration)>;

// The rank's rows in train.micro_batches chunks (one by default), each chunk's loss its share of
// the rank's mean, gradients summed in .grad (see train_step.cpp).
ForwardBackward eager_forward_backward(Run& r);

// How a distributed run averages its gradients (c10d's Reducer, or with dist.graph_step the
// bucketed all-reduce of the flat gradient buffer); built after the resume. Returns why the
// bucketed path is not taken ("" when it is).
std::string build_gradient_averaging(Run& r);

// train.graph_optimizer: whether the optimizer and EMA update go into the step's CUDA graph
// (`graphs`: the step is graphed at all). Logs which.
bool graph_optimizer(Run& r, bool graphs);

// `eager` replayed from a CUDA graph from iteration `from` on (captured there); a step that cannot
// be captured trains on eagerly, with a warning. `graph_steps` counts the replays.
ForwardBackward graphed(ForwardBackward eager, Run& r, int64_t from, int64_t& graph_steps,
                        bool with_optimizer);

struct StepResult {
  int signal = 0;  // SIGTERM (for SIGINT too), SIGUSR1 or 0, agreed by every rank
};

// Iteration k's batch and its draws, this rank's rows; `draw` holds the global batch's.
struct PreparedInputs {
  StepInputs in;
  timestep::TimestepSampler::Draw draw;
};

// train.prefetch_inputs: the next iteration's batch and draws are prepared while the device runs
// this one, before the step's one host sync, so the device need not wait for them between two
// steps. They are drawn from these generators, clones of the state's made at the start of the
// loop (after any resume); the state's generators and the loader position in the counters stay
// those after the current iteration's draws, as without prefetching, so a checkpoint resumes the
// same run (tests/train/exact_resume_test.cpp). Not with a sampler that learns from the losses:
// its next draw depends on this step's.
struct InputPrefetch {
  explicit InputPrefetch(const TrainState& state);
  at::Generator t_gen, noise_gen;
  std::optional<PreparedInputs> next;
  int64_t next_iteration = -1;
  int64_t used = 0;  // iterations that trained on prefetched inputs
};

// One optimizer iteration k: the batch and its draws, forward + backward, the finite check
// agreed over ranks, then the optimizer, EMA and sampler updates (skipped when not finite).
// With `prefetch`, iteration k + 1's inputs are prepared during it when k + 1 < stop.
StepResult train_step(Run& r, const ForwardBackward& forward_backward, MetricsLog& metrics,
                      int64_t k, InputPrefetch* prefetch = nullptr, int64_t stop = 0);

}  // namespace dmtrain::train::detail
