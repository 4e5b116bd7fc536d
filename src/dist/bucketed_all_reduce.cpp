// Implementation of dmtrain/dist/bucketed_all_reduce.hpp.
//
// The hooks sit on the AccumulateGrad nodes (Node::add_post_hook), as c10d's Reducer's do: this
// LibTorch has no C++ register_post_accumulate_grad_hook on a tensor, only the single slot
// impl::set_post_acc_grad_hooks that Python's dictionary of hooks occupies. A node's post hook
// runs after AccumulateGrad::apply, when the gradient has been added into .grad (in place, since
// .grad is defined: the view of the buffer stays the gradient).
#include "dmtrain/dist/bucketed_all_reduce.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <optional>
#include <string>

#include "dmtrain/util/error.hpp"

namespace dmtrain::dist {

std::vector<GradientBucket> bucket_layout(const std::vector<int64_t>& numels, int64_t element_size,
                                          int64_t first_bucket_bytes, int64_t bucket_bytes) {
  std::vector<GradientBucket> out;
  if (numels.empty()) return out;
  int64_t end = 0;
  for (const int64_t n : numels) end += n;
  GradientBucket open{end, end, numels.size(), numels.size()};
  for (size_t i = numels.size(); i-- > 0;) {
    open.begin -= numels[i];
    open.first_param = i;
    const int64_t cap = out.empty() ? first_bucket_bytes : bucket_bytes;
    if (open.numel() * element_size >= cap || i == 0) {
      out.push_back(open);
      open = GradientBucket{open.begin, open.begin, i, i};
    }
  }
  return out;
}

namespace {

BucketedAllReduce::Collective average_over(const ProcessGroup& group) {
  if (!group.is_distributed()) {
    throw Error("BucketedAllReduce needs a distributed process group");
  }
  c10::intrusive_ptr<c10d::ProcessGroup> pg = group.c10d();
  return [pg](at::Tensor& slice) {
    std::vector<at::Tensor> tensors{slice};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::AVG;
    return pg->allreduce(tensors, o);
  };
}

}  // namespace

BucketedAllReduce::BucketedAllReduce(const ProcessGroup& group, at::Tensor flat_grads,
                                     std::vector<at::Tensor> params, int64_t bucket_mib)
    : BucketedAllReduce(average_over(group), std::move(flat_grads), std::move(params), bucket_mib) {
}

BucketedAllReduce::BucketedAllReduce(Collective collective, at::Tensor flat_grads,
                                     std::vector<at::Tensor> params, int64_t bucket_mib,
                                     int64_t first_bucket_bytes)
    : collective_(std::move(collective)),
      flat_grads_(std::move(flat_grads)),
      params_(std::move(params)) {
  TORCH_CHECK(flat_grads_.defined() && flat_grads_.dim() == 1 && flat_grads_.is_contiguous(),
              "BucketedAllReduce: the gradient buffer must be a contiguous 1-d tensor");
  // The packing bucket_layout() assumes, checked on the real views.
  std::vector<int64_t> numels;
  int64_t offset = 0;
  const auto* base = static_cast<const char*>(flat_grads_.const_data_ptr());
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& g = params_[i].grad();
    const bool packed = g.defined() && g.is_alias_of(flat_grads_) &&
                        static_cast<const char*>(g.const_data_ptr()) ==
                            base + offset * flat_grads_.element_size() &&
                        g.dtype() == flat_grads_.dtype();
    if (!packed) {
      throw Error(c10::str("BucketedAllReduce: parameter ", i,
                           "'s gradient is not the view of the flat gradient buffer at element ",
                           offset, " (flatten the parameters first)"));
    }
    numels.push_back(g.numel());
    grad_address_.push_back(g.const_data_ptr());
    offset += g.numel();
  }
  TORCH_CHECK(offset == flat_grads_.numel(), "BucketedAllReduce: the parameters cover ", offset,
              " of the buffer's ", flat_grads_.numel(), " elements");
  buckets_ = bucket_layout(numels, flat_grads_.element_size(), first_bucket_bytes,
                           bucket_mib * 1024 * 1024);
  bucket_of_.resize(params_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    for (size_t i = buckets_[b].first_param; i < buckets_[b].last_param; ++i) bucket_of_[i] = b;
  }
  ready_.assign(params_.size(), false);
  missing_.resize(buckets_.size());
  abandon_step();  // arms the counters
  // An AccumulateGrad node runs on the stream that was current when it was made, and the
  // accumulators held here outlive every step. Made on the default (legacy) stream, each one
  // would make the legacy stream wait on the capturing stream during a graph capture, which CUDA
  // refuses ("operation would make the legacy stream depend on a capturing blocking stream");
  // made on a side stream, they fork from the capture and join it again at the end of backward.
  // (PyTorch's documentation asks the same of DDP under CUDA graphs: construct it on a side
  // stream.)
  std::optional<c10::StreamGuard> side_stream;
  if (!params_.empty() && params_[0].is_cuda()) {
    const c10::impl::VirtualGuardImpl cuda(c10::DeviceType::CUDA);
    side_stream.emplace(
        cuda.getStreamFromGlobalPool(params_[0].device(), /*isHighPriority=*/false));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    std::shared_ptr<torch::autograd::Node> acc =
        torch::autograd::impl::grad_accumulator(params_[i]);
    TORCH_CHECK(acc, "BucketedAllReduce: parameter ", i, " does not require a gradient");
    hook_keys_.push_back(
        acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
            [this, i](const torch::autograd::variable_list& outputs,
                      const torch::autograd::variable_list& /*inputs*/) {
              on_gradient_ready(i);
              return outputs;
            })));
    accumulators_.push_back(std::move(acc));
  }
}

BucketedAllReduce::~BucketedAllReduce() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void BucketedAllReduce::on_gradient_ready(size_t param) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const at::Tensor& g = params_[param].grad();
  if (!g.defined() || g.const_data_ptr() != grad_address_[param]) {
    throw Error(c10::str("BucketedAllReduce: parameter ", param,
                         "'s gradient is no longer the view of the flat gradient buffer (was it "
                         "reset, e.g. by zero_grad(set_to_none)? zero the buffer instead)"));
  }
  if (ready_[param]) {
    throw Error(c10::str("BucketedAllReduce: parameter ", param,
                         " got a second gradient in one step (finish() or abandon_step() was not "
                         "called after the last backward)"));
  }
  ready_[param] = true;
  --missing_[bucket_of_[param]];
  launch_ready_buckets();
}

void BucketedAllReduce::launch_ready_buckets() {
  while (next_bucket_ < buckets_.size() && missing_[next_bucket_] == 0) {
    const GradientBucket& b = buckets_[next_bucket_];
    at::Tensor slice = flat_grads_.slice(0, b.begin, b.end);
    works_.push_back(collective_(slice));
    ++next_bucket_;
  }
}

void BucketedAllReduce::finish() {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (next_bucket_ < buckets_.size()) {
      size_t missing = 0;
      while (missing + 1 < ready_.size() && ready_[missing])
        ++missing;  // a bucket is unfinished: some parameter is not ready
      const std::string msg =
          c10::str("BucketedAllReduce: parameter ", missing,
                   " got no gradient in this backward (every parameter must get one each step)");
      abandon_step_locked();
      throw Error(msg);
    }
    works.swap(works_);
  }
  for (auto& w : works) {
    if (w) w->wait();
  }
  abandon_step();
}

void BucketedAllReduce::abandon_step() {
  const std::lock_guard<std::mutex> lock(mutex_);
  abandon_step_locked();
}

void BucketedAllReduce::abandon_step_locked() {
  ready_.assign(params_.size(), false);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    missing_[b] = buckets_[b].last_param - buckets_[b].first_param;
  }
  next_bucket_ = 0;
  works_.clear();
}

}  // namespace dmtrain::dist
