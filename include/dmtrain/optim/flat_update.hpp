// The optimizer step and the EMA updates as ONE element-wise pass over flat buffers, so that the
// training step's CUDA graph can hold them after the backward (train.graph_optimizer): no host
// round trip and no eager tail of multi-tensor kernels between two replays.
//
// Flat buffers (flatten()): every parameter, its .grad, MdlrcAdam's exp_avg / exp_avg_sq and
// every EMA copy of it are re-pointed at a slice of one contiguous float32 buffer per kind (same
// offset and strides in each, so element i of every buffer belongs to the same weight). The
// tensor objects stay the ones the model, the optimizer state (MdlrcAdamParamState) and the Ema
// hold, so torch::save / torch::load of the model, the optimizer and the EMAs write and read the
// same entries as before: a checkpoint from a flat run resumes a plain one and the other way
// round. A torch::load replaces a parameter's storage (InputArchive::read uses set_), so flatten
// after loading (the trainer flattens when it captures the graph, after any resume).
//
// One update (flat_update(), flat_update_reference()), at optimizer iteration k, with the
// optimizer state's step s (steps taken + 1), for the whole buffer at once:
//   norm   = || grads ||_2 (global, before clipping; what the trainer logs)
//   finite = isfinite(loss) && isfinite(norm), on the device; NOTHING is written unless finite
//   g      = grads * min(1, clip / (norm + 1e-6))          when optim.grad_clip > 0
//   AdamW: p *= 1 - lr_k wd;   Adam: g += wd p                (when wd != 0)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p += -lr_k / (1 - b1^s) * m / (sqrt(v) / sqrt(1 - b2^s) + eps)
//   ema_j = lerp(ema_j, p, 1 - rate_j(k))                     for every EMA j
// which is MdlrcAdam::step_plain after clip_grad_norm_, then Ema::update(model, k). The
// gradients are not modified (clipping scales them in registers). The per-step numbers (b1_k,
// lr_k, the bias corrections, the EMA rates) come from a small float32 device tensor
// (flat_step_scalars()) that the host refills before each replay, so the captured kernel reads
// new values at a static address. Bias corrections are computed in double on the host, as
// step_plain does, then rounded to float32 once; at::_fused_adam_ (MdlrcAdam's CUDA path)
// computes them in float32 inside its kernel instead, a difference of about an ulp in the step.
//
// The counters (MdlrcAdamParamState::step, MdlrcAdam::iteration()) are NOT advanced by the
// update: the host advances them after it has seen the step was finite (FlatOptimizerStep::
// commit), exactly as step() would have, so checkpoints are the same as those of an eager run.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dmtrain/optim/mdlrc_adam.hpp"

namespace dmtrain::optim {

// The flat buffers (all float32, one device, numel() elements each) and the parameter order.
struct FlatBuffers {
  at::Tensor params, grads, exp_avg, exp_avg_sq;
  std::vector<at::Tensor> ema;         // one buffer per EMA copy list
  std::vector<at::Tensor> grad_views;  // each parameter's .grad: a view of `grads`
  int64_t numel() const { return params.defined() ? params.numel() : 0; }
};

// Why flatten() cannot take this state ("" when it can): a parameter that is not float32, dense
// or on the first parameter's device, an optimizer with more than one param group or other
// parameters, parameters whose optimizer steps differ, more EMAs than the kernel takes, or EMA
// copies that do not match the parameters.
std::string flat_unsupported(const std::vector<at::Tensor>& params, MdlrcAdam& optimizer,
                             const std::vector<std::vector<at::Tensor>>& ema_copies);

// Moves the parameters, their gradients (zeros where none), the optimizer's moments and the EMA
// copies into flat buffers, values unchanged. A parameter without optimizer state yet gets one
// (zero moments, the step of the others), since the fused update moves every parameter. Throws
// dmtrain::Error with flat_unsupported()'s reason. Calling it again re-gathers (e.g. after a load).
FlatBuffers flatten(const std::vector<at::Tensor>& params, MdlrcAdam& optimizer,
                    const std::vector<std::vector<at::Tensor>>& ema_copies);

// The run-constant switches of the update.
struct FlatUpdateOptions {
  bool clip = false;          // optim.grad_clip > 0
  bool weight_decay = false;  // weight_decay != 0
  bool decoupled = false;     // AdamW
};
FlatUpdateOptions flat_update_options(const MdlrcAdamOptions& o, double grad_clip);

// The per-step scalars of optimizer iteration k whose state step will be s (float32, CPU), in the
// layout the kernel reads; ema_weights[j] = 1 - rate of EMA j at this step.
at::Tensor flat_step_scalars(const MdlrcAdamOptions& o, int64_t k, int64_t s, double grad_clip,
                             const std::vector<double>& ema_weights);

// The update in ATen ops (0-dim tensor scalars, every write masked by the finite flag with
// where): runs anywhere, the CPU reference of the kernel. `scalars` is flat_step_scalars()'s
// layout on the buffers' device; `loss` a float scalar there. Returns the gradient norm (0-dim
// float32, before clipping).
at::Tensor flat_update_reference(FlatBuffers& b, const at::Tensor& loss, const at::Tensor& scalars,
                                 const FlatUpdateOptions& o);
// The same with dmtrain's CUDA kernel for CUDA buffers (capturable: no host sync, no allocation
// but the norm's); falls back to flat_update_reference() where the kernel is not built.
at::Tensor flat_update(FlatBuffers& b, const at::Tensor& loss, const at::Tensor& scalars,
                       const FlatUpdateOptions& o);
// Whether flat_update() has the CUDA kernel in this build.
bool flat_update_kernel_available();

// The host side of one run's fused step: flattens at construction, then per iteration
//   prepare(k) before the replay (refills the device scalars: a non_blocking copy from pinned
//   memory, stream-ordered before the replay), zero_grads() + update(loss) inside the graph, and
//   commit(k) after the host saw the step was finite.
class FlatOptimizerStep {
 public:
  // ema_weight(j, k): 1 - rate of EMA j in the update after step k.
  using EmaWeight = std::function<double(size_t ema, int64_t k)>;
  FlatOptimizerStep(const std::vector<at::Tensor>& params, MdlrcAdam& optimizer,
                    const std::vector<std::vector<at::Tensor>>& ema_copies, EmaWeight ema_weight,
                    double grad_clip);
  ~FlatOptimizerStep();
  FlatOptimizerStep(const FlatOptimizerStep&) = delete;
  FlatOptimizerStep& operator=(const FlatOptimizerStep&) = delete;

  void prepare(int64_t k);
  void zero_grads();
  at::Tensor update(const at::Tensor& loss);  // the gradient norm
  // What MdlrcAdam::step() does to the counters after set_iteration(k): every state's step + 1,
  // iteration k + 1.
  void commit(int64_t k);
  const FlatBuffers& buffers() const { return buffers_; }

 private:
  struct Pending;
  MdlrcAdam& optimizer_;
  std::vector<at::Tensor> params_;
  FlatBuffers buffers_;
  FlatUpdateOptions options_;
  EmaWeight ema_weight_;
  double grad_clip_;
  at::Tensor host_scalars_, device_scalars_;
  std::unique_ptr<Pending> pending_;  // the last scalars copy (CUDA)
};

}  // namespace dmtrain::optim
