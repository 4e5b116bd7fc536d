// Implementation of dmtrain/dist/gradient_reducer.hpp: the same wiring as Python's
// DistributedDataParallel.__init__ / forward, without the Python.
#include "dmtrain/dist/gradient_reducer.hpp"

#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <algorithm>

namespace dmtrain::dist {

GradientReducer::GradientReducer(const ProcessGroup& group, std::vector<at::Tensor> params,
                                 int64_t bucket_mib) {
  if (!group.is_distributed()) return;
  const size_t first_bucket =
      1024u * 1024u;  // small first bucket: the first all-reduce starts early
  const size_t bucket = static_cast<size_t>(bucket_mib) * 1024u * 1024u;
  const std::vector<bool> sparse(params.size(), false);
  auto [indices, limits] =
      c10d::compute_bucket_assignment_by_size(params, {first_bucket, bucket}, sparse);
  // Parameters are registered in forward order; their gradients arrive roughly in reverse.
  std::reverse(indices.begin(), indices.end());
  std::reverse(limits.begin(), limits.end());
  std::vector<int64_t> caps(limits.begin(), limits.end());
  reducer_ = std::make_shared<c10d::Reducer>(
      params, indices, group.c10d(), sparse, static_cast<int64_t>(bucket),
      /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false,
      std::unordered_map<size_t, std::string>{}, static_cast<int64_t>(first_bucket),
      /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, caps);
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::prepare_for_forward() {
  if (!reducer_) return;
  // After the first backward the Reducer knows the real gradient order; rebuilding once (a
  // collective: rank 0's order is broadcast) makes the buckets fill in that order.
  reducer_->rebuild_buckets();
  reducer_->prepare_for_forward();
}

void GradientReducer::prepare_for_backward(const at::Tensor& loss) {
  if (!reducer_) return;
  reducer_->prepare_for_backward({loss});
}

}  // namespace dmtrain::dist
