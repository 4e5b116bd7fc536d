// dmtrain::dist::GradientReducer: data-parallel gradient averaging, done by c10d's Reducer, the
// engine behind PyTorch's DistributedDataParallel. Gradients are grouped into buckets (the first
// 1 MiB, then `bucket_mib`, in reverse parameter order: roughly the order backward produces
// them); autograd hooks launch a bucket's all-reduce as soon as its last gradient is ready, so
// communication overlaps the rest of the backward pass; when backward returns, every parameter's
// .grad holds the mean of the ranks' gradients. After the first step the buckets are rebuilt in
// the order gradients actually arrived (as DDP does).
//
// Use per step, on every rank, in this order:
//     reducer.prepare_for_forward();  forward;  reducer.prepare_for_backward(loss);
//     loss.backward();
// Every parameter must receive a gradient each step (no find_unused_parameters; an unused one is
// reported by the Reducer at the next step). Single-process groups make every call a no-op.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "dmtrain/dist/process_group.hpp"

namespace c10d {
class Reducer;
}

namespace dmtrain::dist {

class GradientReducer {
 public:
  GradientReducer(const ProcessGroup& group, std::vector<at::Tensor> params,
                  int64_t bucket_mib = 25);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void prepare_for_forward();
  void prepare_for_backward(const at::Tensor& loss);

 private:
  std::shared_ptr<c10d::Reducer> reducer_;
};

}  // namespace dmtrain::dist
