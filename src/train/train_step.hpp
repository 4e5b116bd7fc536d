// One optimizer iteration of the training loop: the batch and its draws, the run's Step
// (step.hpp: forward + backward), the one host sync that decides whether the step is taken, then
// the Step's update and the sampler's. Internal to the trainer: see trainer.hpp.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

#include "dmtrain/observe/metrics_log.hpp"
#include "run.hpp"
#include "step.hpp"

namespace dmtrain::train::detail {

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
  explicit InputPrefetch(const checkpoint::TrainState& state);
  at::Generator t_gen, noise_gen;
  std::optional<PreparedInputs> next;
  int64_t next_iteration = -1;
  int64_t used = 0;  // iterations that trained on prefetched inputs
};

// One optimizer iteration k: the batch and its draws, forward + backward, the finite check
// agreed over ranks, then the optimizer, EMA and sampler updates (skipped when not finite).
// With `prefetch`, iteration k + 1's inputs are prepared during it when k + 1 < stop.
StepResult train_step(Run& r, Step& step, observe::MetricsLog& metrics, int64_t k,
                      InputPrefetch* prefetch = nullptr, int64_t stop = 0);

}  // namespace dmtrain::train::detail
