// group_norm_act: GroupNorm with float32 statistics, optionally followed by a per-sample
// scale/shift (the ResBlock's use_scale_shift_norm) and SiLU, as one differentiable op:
//
//   y = act(GN(x) * (1 + scale) + shift),  GN(x) = (x - mean_g) / sqrt(var_g + eps) * w + b
//
// x: [N, C, *spatial]; weight, bias: [C]; scale, shift: [N, C, 1...] or both undefined;
// act: SiLU or the identity. The output has x's dtype.
//
// On a CUDA device, for dense NCHW or channels-last float32 / bfloat16 / float16 inputs, it runs
// the fused kernels of group_norm_act_{cuda,nhwc}.cu: one kernel forward and one backward (instead
// of a kernel per cast, normalisation, scale, shift and SiLU), and a backward that keeps only x,
// the per-group mean/rstd and the small per-sample vectors (the unfused chain keeps a float32 copy
// of x, the normalised tensor and the pre-activation). Everything is computed in float32 and
// rounded once at the output; the references round the GroupNorm output to the activations' dtype
// before the scale/shift and the SiLU, so in bf16 the two differ by bf16 rounding (in float32 they
// agree to float32 rounding).
//
// Elsewhere (CPU, other strides, no CUDA compiler at build time, fused kernels switched off) it
// runs the references' chain of ATen ops. Its backward is a fixed formula, not differentiable
// again: code that needs second derivatives (the loss-landscape Hessian) switches the fused path
// off (KernelOptions::fused_group_norm).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "dmtrain/models/kernel_options.hpp"

namespace dmtrain::models {

// `kernels`: fused_group_norm (else the reference chain below), group_norm_rows (channels-last:
// the kernels that read whole pixel rows, else the per-(sample, group) ones),
// group_norm_cached_backward (NCHW: the backward that reads its inputs once, where they fit:
// H * W <= 1,024 bf16 or 512 float32 values per channel, at most 16 channels per group).
at::Tensor group_norm_act(const at::Tensor& x, int64_t num_groups, const at::Tensor& weight,
                          const at::Tensor& bias, double eps, const at::Tensor& scale,
                          const at::Tensor& shift, bool silu, const KernelOptions& kernels);

// The unfused reference chain (also the fallback): GN in float32, cast back, scale/shift, SiLU.
at::Tensor group_norm_act_reference(const at::Tensor& x, int64_t num_groups,
                                    const at::Tensor& weight, const at::Tensor& bias, double eps,
                                    const at::Tensor& scale, const at::Tensor& shift, bool silu);

// Whether this build has the CUDA kernels.
bool fused_kernels_built();

}  // namespace dmtrain::models
