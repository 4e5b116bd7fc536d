// KernelProfile: records a stretch of training with LibTorch's Kineto profiler and turns it into
// a plain-text summary (where the time goes) plus, optionally, a Chrome trace for
// chrome://tracing or Perfetto.
//
//   KernelProfile prof;
//   prof.start();
//   for (int i = 0; i < 10; ++i) step();
//   log::info(prof.stop("trace.json", /*steps=*/10));
//
// What is summed: when the run launched any device work (CUDA kernels, memcpy, memset), the
// device-side durations, because that is what bounds a GPU training step; otherwise CPU ops
// by SELF time (an op's time minus the ops nested in it, per thread), so aten::linear and the
// aten::addmm inside it are not counted twice and the rows add up to the total.
// The summary has a first line (total ms, steps, ms per step), a table by coarse category
// (kernel_category) and a table of the top-N names by total time.
//
// Invariants: the profiler is per-process global state in LibTorch, so at most one
// KernelProfile may be recording at a time; start() and stop() alternate (TORCH_CHECK), and a
// KernelProfile destroyed while recording stops the profiler and discards the result. CPU ops
// are recorded on the thread that called start() (and threads that inherit its thread-local
// state, such as the autograd engine's workers); device kernels are recorded for the process.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dmtrain::observe {

// Coarse category of a kernel or op name, for "where does the step go" tables:
// "conv/gemm", "norm", "elementwise", "reduce", "optimizer", "attention", "memcpy/memset" or
// "other". Matching is by case-insensitive substring, first rule wins (see the .cpp for the
// order, which matters: a flash-attention kernel also says "sm90", a GroupNorm elementwise
// kernel also says "elementwise").
std::string kernel_category(const std::string& name);

// The share of the span from the earliest start to the latest end that at least one of the
// intervals [start, end) (ns) covers: a GPU's busy time over the wall time of a recorded stretch,
// whatever overlaps (several streams). 1 for no intervals or a zero span.
double busy_fraction(std::vector<std::pair<uint64_t, uint64_t>> intervals);

class KernelProfile {
 public:
  KernelProfile() = default;
  KernelProfile(const KernelProfile&) = delete;
  KernelProfile& operator=(const KernelProfile&) = delete;
  ~KernelProfile();

  // Starts recording: CPU ops always, CUDA kernels too when torch::cuda::is_available();
  // `record_shapes`: each op's input shapes go into the trace too (for a trace read offline, e.g.
  // by lab/bench/trace_attribution.py; it costs host time per op).
  void start(bool record_shapes = false);
  // Stops recording, writes a Chrome trace to `trace_path` (skipped if empty) and returns the
  // summary described above, with the `top` names of largest total time. `steps` (>= 1) is the
  // number of training steps recorded, for the per-step figure.
  std::string stop(const std::string& trace_path, int64_t steps, int top = 25);

  bool recording() const { return recording_; }

 private:
  bool recording_ = false;
};

}  // namespace dmtrain::observe
