// dmtrain::dist::BucketedAllReduce: data-parallel gradient averaging for gradients that live in ONE
// flat buffer (optim::FlatBuffers' `grads`; every parameter's .grad is a view of a slice of it),
// written so that a CUDA graph can hold it (dist.graph_step).
//
// Contract:
//  - Buckets are contiguous slices of the flat buffer: the parameters in reverse order (roughly
//    the order backward produces their gradients), the first bucket about 1 MiB (its all-reduce
//    starts early), then about `bucket_mib` each, a boundary only between two parameters
//    (bucket_layout(), a pure function). Because a bucket IS a slice of the buffer the gradients
//    are views of, the all-reduce runs on the gradients themselves: nothing is copied into or out
//    of a bucket (c10d's Reducer copies each gradient into its bucket and back, or aliases them
//    with gradient_as_bucket_view, which its buffers then own).
//  - A post hook on each parameter's AccumulateGrad node marks the parameter ready once its
//    gradient is accumulated; when a bucket is complete, and every bucket before it has been
//    launched, its all-reduce (mean over the ranks) is launched at once, so communication
//    overlaps the rest of backward. Buckets are launched strictly in bucket order, so every rank
//    issues the same collectives in the same order whatever order its gradients arrive in.
//  - finish(), after backward, waits for every bucket's collective and re-arms for the next step.
//    With NCCL, waiting makes the current CUDA stream wait for the collective: no host sync, so
//    zero_grads, forward, backward and finish() can all be recorded in one CUDA graph capture.
//  - Every parameter must receive a gradient in every backward (no unused parameters): finish()
//    throws dmtrain::Error naming the first parameter that got none. A gradient must stay the
//    view of the buffer (zero it in place, never reset it: an optimizer's zero_grad() with
//    set_to_none would detach it): the hook throws when it finds another tensor there.
//  - The gradients are averaged in place; a step that throws between backward and finish() must
//    call abandon_step() before the next backward.
//  - Hooks are removed when the object goes; the parameters and the buffer must outlive it.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "dmtrain/dist/process_group.hpp"

namespace torch::autograd {
struct Node;
}

namespace dmtrain::dist {

// One bucket: elements [begin, end) of the flat buffer, holding parameters [first_param,
// last_param) (indices in buffer order).
struct GradientBucket {
  int64_t begin = 0, end = 0;
  size_t first_param = 0, last_param = 0;
  int64_t numel() const { return end - begin; }
};

// The buckets of parameters of `numels` elements packed in this order into a flat buffer of
// `element_size`-byte elements, in launch order: walking the parameters from the last, a bucket
// closes as soon as it holds >= first_bucket_bytes (bucket 0) or >= bucket_bytes (the others),
// as DDP's do; bucket 0 ends at the buffer's end, the last one starts at element 0.
std::vector<GradientBucket> bucket_layout(const std::vector<int64_t>& numels, int64_t element_size,
                                          int64_t first_bucket_bytes, int64_t bucket_bytes);

constexpr int64_t kFirstBucketBytes = 1024 * 1024;

class BucketedAllReduce {
 public:
  // Launches the mean over the ranks of `slice` in place; the returned Work is waited for by
  // finish() (a null Work: done already).
  using Collective = std::function<c10::intrusive_ptr<c10d::Work>(at::Tensor& slice)>;

  // `params` in buffer order, each .grad a view of `flat_grads` at the next offset. The
  // collective is c10d's allreduce with ReduceOp AVG on `group` (NCCL and the store backend both
  // support it), which must be distributed.
  BucketedAllReduce(const ProcessGroup& group, at::Tensor flat_grads,
                    std::vector<at::Tensor> params, int64_t bucket_mib);
  // The same with any collective (tests).
  BucketedAllReduce(Collective collective, at::Tensor flat_grads, std::vector<at::Tensor> params,
                    int64_t bucket_mib, int64_t first_bucket_bytes = kFirstBucketBytes);
  ~BucketedAllReduce();
  BucketedAllReduce(const BucketedAllReduce&) = delete;
  BucketedAllReduce& operator=(const BucketedAllReduce&) = delete;

  void finish();
  void abandon_step();
  const std::vector<GradientBucket>& buckets() const { return buckets_; }

 private:
  void on_gradient_ready(size_t param);
  void launch_ready_buckets();  // with mutex_ held
  void abandon_step_locked();

  Collective collective_;
  at::Tensor flat_grads_;
  std::vector<at::Tensor> params_;
  std::vector<GradientBucket> buckets_;
  std::vector<size_t> bucket_of_;          // parameter -> bucket
  std::vector<const void*> grad_address_;  // where each parameter's .grad must stay
  // The AccumulateGrad nodes, held so they (and the hooks on them) live as long as this object:
  // the parameters themselves only hold them weakly.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;

  std::mutex mutex_;  // backward may run the hooks on the autograd engine's device thread
  std::vector<bool> ready_;
  std::vector<size_t> missing_;  // per bucket: parameters not ready yet this step
  size_t next_bucket_ = 0;       // the next bucket to launch
  std::vector<c10::intrusive_ptr<c10d::Work>> works_;
};

}  // namespace dmtrain::dist
