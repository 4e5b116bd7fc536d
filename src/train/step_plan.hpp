// StepPlan: which variant of the training step a run takes, decided once when the run is built
// (after the resume) from the flags and what the run can do, and logged in one line. The step
// (step.hpp) is then built from it and never asks again.
//
//   bucketed           dist.graph_step: the parameters' gradients are views of one flat buffer
//                      that BucketedAllReduce averages (else c10d's Reducer; a no-op alone)
//   graph              train.cuda_graphs: the forward + backward replayed from a CUDA graph
//   optimizer_in_graph train.graph_optimizer: the optimizer and EMA update inside that graph
//   prefetch           train.prefetch_inputs: the next iteration's inputs drawn during this one
//
// Each flag that is asked for but not taken carries why ("" when taken or not asked for).
// Internal to the trainer.
#pragma once
#include <cstdint>
#include <string>

#include "run.hpp"

namespace dmtrain::train::detail {

struct StepPlan {
  bool bucketed = false, graph = false, optimizer_in_graph = false, prefetch = false;
  int64_t capture_at = 0;  // the first iteration replayed from the graph
  std::string not_bucketed, not_graph, not_optimizer_in_graph, not_prefetch;

  // The one log line: "training step: ...; optimizer and EMA update: ...; ...".
  std::string describe(bool distributed) const;
};

// Decides the plan for `r` (no side effects). `first_iteration` is the resumed iteration: the
// graph is captured three iterations later (cuDNN autotuning and lazy set-ups run eagerly).
StepPlan plan_step(Run& r, int64_t first_iteration);

}  // namespace dmtrain::train::detail
