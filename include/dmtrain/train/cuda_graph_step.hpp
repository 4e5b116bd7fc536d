// CudaGraphStep: the training step's forward, loss and backward recorded once as a CUDA graph and
// replayed every iteration after, so the host launches one graph instead of the ~4,000 kernels
// of the eager step (the ID CIFAR10 UNet at batch 128 on an H100 is launch-bound: the GPU idled
// a quarter of each eager step waiting for the host).
//
// Contract:
// - `step(inputs)` computes {loss (a scalar to call backward on), per-example losses} from the
//   input tensors alone; it must not read other changing host state, synchronise with the host,
//   or copy from pageable host memory (capture fails, with an error, if it does).
// - run() copies `inputs` into static buffers, then replays (the first call warms up on a side
//   stream, captures, then replays). Shapes and dtypes must stay those of the first call.
// - The gradients land in the parameters' .grad tensors, which live in the graph's memory and
//   are overwritten by each replay: callers must not zero or reset them (no zero_grad) and must
//   use them (optimizer step, norms) before the next run().
// - With a CapturedUpdate (train.graph_optimizer) the optimizer step is part of the graph: the
//   .grad tensors are then the caller's own static tensors (views of one flat buffer,
//   optim/flat_update.hpp) that run() never resets; the graph begins with `zero_grads` (the
//   backward accumulates into them in place) and ends with `update(loss)`, whose result (the
//   gradient norm) update_result() returns. Neither runs in the eager warm-up before the
//   capture, so the weights change only when the graph replays: once per run(). Its optional
//   `after_backward` runs after every backward, the warm-up's and the captured one (before
//   `update`): a data-parallel step waits there for the gradient all-reduces its backward
//   launched (dist::BucketedAllReduce::finish). With `gather_into` the gradients are gathered
//   into those tensors after the backward instead (CapturedUpdate::gather_into).
// - Parameters must keep their storage (in-place updates only, as the optimizers and the EMA
//   copies do). Random numbers drawn inside (dropout) come from the default CUDA generator,
//   advanced by the graph at each replay.
// - Autocast's weight-cast cache is switched off during capture so the casts are recorded
//   (cached copies would be stale after the first optimizer step).
#pragma once
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace dmtrain::train {

class CudaGraphStep {
 public:
  using StepFn = std::function<std::pair<at::Tensor, at::Tensor>(const std::vector<at::Tensor>&)>;

  struct CapturedUpdate {
    std::function<void()> zero_grads;
    std::function<at::Tensor(const at::Tensor& loss)> update;
    std::function<void()> after_backward;
    // Collectives inside the capture (dist.graph_step): NCCL's watchdog thread queries its
    // events while the capture runs, which CUDA's global capture mode forbids to every thread
    // (it invalidates the capture); thread-local mode forbids unsafe calls to this thread only.
    bool thread_local_capture = false;
    // train.graph_grad_gather: when set (one tensor per parameter, in the order of `params`),
    // the parameters' .grad are released before each backward instead of zeroed, so the
    // backward keeps the gradient tensors it computes (no add kernel per parameter into zeroed
    // buffers), and one multi-tensor copy gathers them into these tensors after it (zeros for a
    // parameter without a gradient); .grad are these tensors again before `update` runs.
    // `zero_grads` is then not called.
    std::vector<at::Tensor> gather_into;
    bool enabled() const { return static_cast<bool>(update); }
  };

  CudaGraphStep(StepFn step, std::vector<at::Tensor> params);
  CudaGraphStep(StepFn step, std::vector<at::Tensor> params, CapturedUpdate update);
  ~CudaGraphStep();
  CudaGraphStep(const CudaGraphStep&) = delete;
  CudaGraphStep& operator=(const CudaGraphStep&) = delete;

  // {loss, per-example losses} of this step (static tensors, valid until the next run()).
  std::pair<at::Tensor, at::Tensor> run(const std::vector<at::Tensor>& inputs);
  // The CapturedUpdate's result of the last run() (a static tensor; undefined without one).
  const at::Tensor& update_result() const;

  // Whether this build can capture at all (LibTorch with CUDA).
  static bool available();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmtrain::train
