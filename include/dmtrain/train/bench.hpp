// bench(): times the training step of a run described by a RunConfig, as train() runs it (the
// same Run, StepPlan and Step; data, forward, loss, backward, optimizer, EMA), in its own loop:
// `warmup` untimed iterations (cuDNN autotuning, the CUDA-graph capture), then the rest of
// train.iterations timed between two device synchronisations. No checkpoints, samples,
// evaluations or exports; the run dir holds the log and metrics only.
#pragma once
#include <cstdint>
#include <string>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::train {

struct BenchOptions {
  int64_t warmup = 10;        // untimed iterations first
  bool profile = false;       // record the timed iterations' kernels
  std::string profile_trace;  // with profile: also write a Chrome trace here ("": none)
};

struct BenchResult {
  double timed_seconds = 0;  // wall time of the timed iterations
  int64_t timed_iterations = 0;
  double peak_gpu_gib = 0;       // peak GPU memory allocated (0 on the CPU)
  int64_t graph_steps = 0;       // iterations replayed from a CUDA graph
  std::string profile_summary;   // with profile: where the timed iterations' time went
  int rank = 0, world_size = 1;  // of this process in its job
};

BenchResult bench(const config::RunConfig& cfg, const BenchOptions& options = {});

}  // namespace dmtrain::train
