#include "dmtrain/models/group_norm32.hpp"

#include <ATen/ATen.h>

#include "dmtrain/models/group_norm_act.hpp"

namespace dmtrain::models {

GroupNorm32Impl::GroupNorm32Impl(GroupNorm32Options options_) : options(options_) {
  reset();
}

void GroupNorm32Impl::reset() {
  TORCH_CHECK(options.num_channels() % options.num_groups() == 0,
              "GroupNorm32: ", options.num_channels(), " channels do not split into ",
              options.num_groups(), " groups");
  weight = register_parameter("weight", torch::ones({options.num_channels()}));
  bias = register_parameter("bias", torch::zeros({options.num_channels()}));
}

torch::Tensor GroupNorm32Impl::forward(const torch::Tensor& x) {
  return forward_act(x, {}, {}, /*silu=*/false);
}

torch::Tensor GroupNorm32Impl::forward_act(const torch::Tensor& x, const torch::Tensor& scale,
                                           const torch::Tensor& shift, bool silu) {
  // Statistics in float32 whatever the activations' dtype; the affine parameters are cast too
  // (a model cast wholesale to half keeps working).
  return group_norm_act(x, options.num_groups(), weight, bias, options.eps(), scale, shift, silu,
                        options.kernels());
}

}  // namespace dmtrain::models
