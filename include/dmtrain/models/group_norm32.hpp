// GroupNorm32: GroupNorm with 32 groups that normalises in float32 and casts the result back to
// the input's dtype, as the references' GroupNorm32 does (statistics of fp16/bf16 activations
// are too coarse otherwise). Parameters are "weight" and "bias" of shape [C], initialised to
// ones and zeros like torch.nn.GroupNorm, so reference state_dicts load unchanged. Both entry
// points go through group_norm_act (fused CUDA kernels where they apply).
#pragma once
#include <cstdint>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "dmtrain/models/kernel_options.hpp"

namespace dmtrain::models {

struct GroupNorm32Options {
  /* implicit */ GroupNorm32Options(int64_t num_channels) : num_channels_(num_channels) {}
  TORCH_ARG(int64_t, num_channels);
  TORCH_ARG(int64_t, num_groups) = 32;
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(KernelOptions, kernels);  // fused_group_norm, group_norm_rows, cached backward
};

class GroupNorm32Impl : public torch::nn::Cloneable<GroupNorm32Impl> {
 public:
  explicit GroupNorm32Impl(GroupNorm32Options options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  // act(norm(x) * (1 + scale) + shift) in one op (scale/shift may be undefined, act = SiLU when
  // `silu`): the fused kernels of group_norm_act.hpp on CUDA.
  torch::Tensor forward_act(const torch::Tensor& x, const torch::Tensor& scale,
                            const torch::Tensor& shift, bool silu);

  GroupNorm32Options options;
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(GroupNorm32);

}  // namespace dmtrain::models
