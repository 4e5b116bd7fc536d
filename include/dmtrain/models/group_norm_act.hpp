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
// off with FusedKernelsGuard.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace dmtrain::models {

at::Tensor group_norm_act(const at::Tensor& x, int64_t num_groups, const at::Tensor& weight,
                          const at::Tensor& bias, double eps, const at::Tensor& scale,
                          const at::Tensor& shift, bool silu);

// The unfused reference chain (also the fallback): GN in float32, cast back, scale/shift, SiLU.
at::Tensor group_norm_act_reference(const at::Tensor& x, int64_t num_groups,
                                    const at::Tensor& weight, const at::Tensor& bias, double eps,
                                    const at::Tensor& scale, const at::Tensor& shift, bool silu);

// Whether this build has the CUDA kernels, and the process-wide switch (default on).
bool fused_kernels_built();
bool fused_kernels_enabled();
void set_fused_kernels_enabled(bool on);

// Channels-last activations: the kernels that read whole pixel rows (tiles of pixels with every
// channel, partial sums through a workspace) or the per-(sample, group) kernels (default). The
// trainer sets it from train.nhwc_group_norm_rows (H200, CIFAR10 channels-last step: the row
// kernels 8.8% faster; off until ImageNet128, channels-last by its config, is measured).
bool nhwc_row_kernels_enabled();
void set_nhwc_row_kernels_enabled(bool on);

// NCHW backward: the kernel variant that reads x and dL/dy once, keeping them in registers
// between its two passes (where they fit: H * W <= 1,024 bf16 or 512 float32 values per channel,
// at most 16 channels per group), instead of reading them again in the second pass; the same
// results to the bit. The trainer sets it from train.group_norm_cached_backward (off until
// measured on a GPU).
bool cached_backward_enabled();
void set_cached_backward_enabled(bool on);

// Switches the fused kernels off (or on) for a scope, restoring the previous setting.
class FusedKernelsGuard {
 public:
  explicit FusedKernelsGuard(bool on) : previous_(fused_kernels_enabled()) {
    set_fused_kernels_enabled(on);
  }
  ~FusedKernelsGuard() { set_fused_kernels_enabled(previous_); }
  FusedKernelsGuard(const FusedKernelsGuard&) = delete;
  FusedKernelsGuard& operator=(const FusedKernelsGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace dmtrain::models
