// Private interface between group_norm_act.cpp (LibTorch side) and group_norm_act_cuda.cu (raw
// CUDA kernels). Kept free of LibTorch headers so nvcc compiles the kernels in seconds.
//
// Layout contract: x, y, grad_y and grad_x are dense, either NCHW ([N, C, HW] with HW = H * W:
// the elements of group g of sample n are one contiguous run of (C / groups) * HW values) or, with
// shape.channels_last, NHWC ([N, HW, C] in memory). gamma and
// beta are float32 [C]; scale and shift are float32 [N, C] or both null; mean and rstd are
// float32 [N * groups]; sum_dy and sum_dy_xhat are float32 [N, C]. All device pointers.
#pragma once
#include <cstdint>

namespace dmtrain::models::cuda {

enum class ElementType { kFloat32, kBFloat16, kFloat16 };

struct GroupNormActShape {
  int64_t n = 0, c = 0, hw = 0, groups = 0;
  bool channels_last = false;
};

// Whether the kernels take this shape (NHWC needs a block width that is a multiple of both 32
// and C / groups / pack width, at most 512).
bool group_norm_act_supported(GroupNormActShape shape);

// Float32 elements of scratch memory the forward and the backward may use for this shape
// (channels-last: the per-tile partial sums of the row-reading kernels; 0 for NCHW). A null
// workspace makes them use the per-(sample, group) kernels instead.
int64_t group_norm_act_workspace(GroupNormActShape shape);

// y = act((x - mean) * rstd * gamma + beta) [* (1 + scale) + shift], act = SiLU or identity.
// Writes mean and rstd per (n, group). Returns a cudaError_t value (0: launched).
int group_norm_act_forward(ElementType type, GroupNormActShape shape, const void* x,
                           const float* gamma, const float* beta, const float* scale,
                           const float* shift, bool silu, float eps, void* y, float* mean,
                           float* rstd, float* workspace, void* stream);

// Given dL/dy, writes dL/dx and, per (n, c), sum_dy = sum over HW of dL/d(pre-activation) and
// sum_dy_xhat = the same weighted by the normalised input; the parameter gradients follow from
// these two [N, C] sums on the LibTorch side. `cached` (NCHW, HW <= 128 packs of 16 bytes per
// channel, C / groups <= 16): the variant that reads x and dL/dy once, keeping them in registers
// between its two passes; the same results to the bit.
int group_norm_act_backward(ElementType type, GroupNormActShape shape, const void* grad_y,
                            const void* x, const float* mean, const float* rstd, const float* gamma,
                            const float* beta, const float* scale, const float* shift, bool silu,
                            void* grad_x, float* sum_dy, float* sum_dy_xhat, float* workspace,
                            void* stream, bool cached = false);

}  // namespace dmtrain::models::cuda
