#include "dmtrain/train/cuda_graph_step.hpp"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include "dmtrain/util/error.hpp"

#ifdef DMTRAIN_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace dmtrain::train {

struct CudaGraphStep::Impl {
  StepFn step;
  std::vector<at::Tensor> params;
  std::vector<at::Tensor> inputs;  // static copies the graph reads
  std::pair<at::Tensor, at::Tensor> outputs;
  CapturedUpdate update;
  at::Tensor update_result;
#ifdef DMTRAIN_TORCH_HAS_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

CudaGraphStep::CudaGraphStep(StepFn step, std::vector<at::Tensor> params)
    : CudaGraphStep(std::move(step), std::move(params), CapturedUpdate()) {}

CudaGraphStep::CudaGraphStep(StepFn step, std::vector<at::Tensor> params, CapturedUpdate update)
    : impl_(std::make_unique<Impl>()) {
  impl_->step = std::move(step);
  impl_->params = std::move(params);
  impl_->update = std::move(update);
}

const at::Tensor& CudaGraphStep::update_result() const {
  return impl_->update_result;
}

CudaGraphStep::~CudaGraphStep() = default;

bool CudaGraphStep::available() {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  return true;
#else
  return false;
#endif
}

#ifdef DMTRAIN_TORCH_HAS_CUDA
namespace {

// A capture that ends in an error leaves the default CUDA generator in capture mode: capture_begin
// ran its prologue, but its epilogue only runs when capture_end succeeds, so every random draw
// after (dropout in the eager fallback) failed with "Offset increment outside graph capture
// encountered unexpectedly". A trivial capture that succeeds runs both again and leaves the
// generator as it was (no draw is recorded, so its offset does not move). Runs on the current
// (side) stream, which the failed capture has released.
void restore_generator_after_failed_capture() {
  try {
    at::Tensor t = at::zeros({1}, at::TensorOptions().device(at::kCUDA));
    at::cuda::CUDAGraph reset;
    reset.capture_begin();
    t.add_(1);
    reset.capture_end();
  } catch (...) {
    (void)cudaGetLastError();  // the caller's error is the one to report
  }
}

}  // namespace
#endif

std::pair<at::Tensor, at::Tensor> CudaGraphStep::run(const std::vector<at::Tensor>& inputs) {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  Impl& s = *impl_;
  if (s.graph) {
    TORCH_CHECK(inputs.size() == s.inputs.size(), "CudaGraphStep: input count changed");
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].defined()) s.inputs[i].copy_(inputs[i], /*non_blocking=*/true);
    }
    s.graph->replay();
    return s.outputs;
  }
  for (const auto& in : inputs) s.inputs.push_back(in.defined() ? in.clone() : in);
  // Without a captured update the graph allocates the gradients in its pool; with one they are
  // the caller's static tensors, zeroed inside the graph instead.
  const bool own_grads = !s.update.enabled();
  const bool gather = !own_grads && !s.update.gather_into.empty();
  TORCH_CHECK(!gather || s.update.gather_into.size() == s.params.size(),
              "CudaGraphStep: gather_into needs one tensor per parameter");
  const auto release_grads = [&] {
    for (auto& p : s.params) p.mutable_grad().reset();
  };
  const auto reset_grads = [&] {
    if (own_grads) release_grads();
  };
  // The caller's gather_into tensors as the parameters' gradients.
  const auto grads_are_gather_into = [&] {
    for (size_t i = 0; i < s.params.size(); ++i) {
      s.params[i].mutable_grad() = s.update.gather_into[i];
    }
  };
  // Before a backward whose gradients the caller's tensors receive (CapturedUpdate).
  const auto begin_update_grads = [&] {
    if (gather) {
      release_grads();
    } else {
      s.update.zero_grads();
    }
  };
  // After it: the backward's own gradient tensors into gather_into, one multi-tensor copy.
  const auto gather_grads = [&] {
    if (!gather) return;
    std::vector<at::Tensor> into, from;
    for (size_t i = 0; i < s.params.size(); ++i) {
      const at::Tensor& g = s.params[i].grad();
      if (g.defined()) {
        into.push_back(s.update.gather_into[i]);
        from.push_back(g);
      } else {
        s.update.gather_into[i].zero_();
      }
    }
    if (!into.empty()) at::_foreach_copy_(into, from);
    grads_are_gather_into();
  };
  // Capture happens on a side stream that has seen the step once (libraries such as cuBLAS set
  // up per-stream workspaces on first use, which must not happen inside the capture).
  const at::cuda::CUDAStream main = at::cuda::getCurrentCUDAStream();
  const at::cuda::CUDAStream side = at::cuda::getStreamFromPool();
  at::cuda::CUDAEvent ready;
  ready.record(main);
  ready.block(side);
  {
    const at::cuda::CUDAStreamGuard on_side(side);
    reset_grads();
    if (!own_grads) begin_update_grads();
    s.step(s.inputs).first.backward();
    if (s.update.after_backward) s.update.after_backward();
    gather_grads();
    reset_grads();  // the backward inside the capture then allocates them in the graph's pool
    const bool cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    s.graph = std::make_unique<at::cuda::CUDAGraph>();
    // Something in the step cannot be captured (a host sync, a pageable copy): end the broken
    // capture so the stream and the device stay usable, and say what happened.
    const auto fail = [&](const std::string& why) {
      at::autocast::set_autocast_cache_enabled(cache);
      try {
        s.graph->capture_end();  // also stops routing allocations to the graph's pool
      } catch (...) {
      }
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      if (cudaStreamIsCapturing(side.stream(), &status) == cudaSuccess &&
          status != cudaStreamCaptureStatusNone) {
        cudaGraph_t broken = nullptr;
        if (cudaStreamEndCapture(side.stream(), &broken) == cudaSuccess && broken != nullptr) {
          cudaGraphDestroy(broken);
        }
      }
      (void)cudaGetLastError();
      s.graph.reset();
      restore_generator_after_failed_capture();
      s.inputs.clear();
      s.update_result = at::Tensor();
      reset_grads();
      if (gather) grads_are_gather_into();  // as without gather_into
      throw Error(
          "the training step could not be captured as a CUDA graph (set "
          "train.cuda_graphs: false to train without): " +
          why);
    };
    try {
      s.graph->capture_begin({0, 0}, s.update.thread_local_capture
                                         ? cudaStreamCaptureModeThreadLocal
                                         : cudaStreamCaptureModeGlobal);
      if (!own_grads) begin_update_grads();
      s.outputs = s.step(s.inputs);
      s.outputs.first.backward();
      if (s.update.after_backward) s.update.after_backward();
      gather_grads();
      if (!own_grads) s.update_result = s.update.update(s.outputs.first.detach());
      s.graph->capture_end();
    } catch (const c10::Error& e) {
      fail(e.msg());
    } catch (const std::exception& e) {
      fail(e.what());
    }
    at::autocast::set_autocast_cache_enabled(cache);
  }
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(main);
  s.graph->replay();  // capturing recorded the work without doing it
  return s.outputs;
#else
  (void)inputs;
  throw Error("CUDA graphs need a LibTorch built with CUDA");
#endif
}

}  // namespace dmtrain::train
