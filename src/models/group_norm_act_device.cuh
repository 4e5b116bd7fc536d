// Device code shared by the NCHW and the channels-last fused GroupNorm kernels: the per-channel
// affine map, the group statistics from a block's partial sums, and the constants of dL/dx.
// Included by group_norm_act_{cuda,nhwc,nhwc_tiled}.cu only.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_common.cuh"

namespace dmtrain::models::cuda {

// The backward kernels' shared memory, per channel of the group: coef (pre = x * a + b),
// w = (1 + scale) * gamma (dL/dxhat = dL/dpre * w), and two slots for the channel's two sums
// (the NCHW kernels store them weighted by w, the channels-last per-group kernel accumulates
// them raw). 5 floats a channel; the launchers size it with backward_shared_bytes.
struct BackwardShared {
  float2* coef;
  float *w, *part1, *part2;
};
__device__ __forceinline__ BackwardShared backward_shared(float* smem, int cpg) {
  BackwardShared b;
  b.coef = reinterpret_cast<float2*>(smem);
  b.w = smem + 2 * cpg;
  b.part1 = b.w + cpg;
  b.part2 = b.part1 + cpg;
  return b;
}
inline size_t backward_shared_bytes(int64_t cpg) {
  return sizeof(float) * 5 * static_cast<size_t>(cpg);
}

// GroupNorm (+ scale/shift) as one affine map per channel, pre = x * a + b: a = rstd * gamma,
// b = beta - mean * a, then (1 + scale) and shift of sample n (`row` = n * C + channel) when given.
__device__ __forceinline__ float2 group_norm_affine(int64_t channel, int64_t row, float mean,
                                                    float rstd, const float* gamma,
                                                    const float* beta, const float* scale,
                                                    const float* shift) {
  float a = rstd * gamma[channel];
  float b = beta[channel] - mean * a;
  if (scale != nullptr) {
    const float k = 1.f + scale[row];
    a *= k;
    b = b * k + shift[row];
  }
  return make_float2(a, b);
}

// The end of a forward block's statistics pass. (s1, s2) are the thread's sums of d and d^2,
// d = x - k (k: the group's first value, so E[d^2] - E[d]^2 does not cancel when the mean is large
// against the spread). Writes mean and rstd of group `group`, fills coef[0, cpg) with the
// channels' affine maps (channel c0 + c, sample row n * C + c0 + c), and synchronises the block.
__device__ __forceinline__ void finish_group_statistics(float s1, float s2, float k, float len,
                                                        float eps, int64_t group, int64_t c0,
                                                        int64_t row0, int cpg, const float* gamma,
                                                        const float* beta, const float* scale,
                                                        const float* shift, float* mean_out,
                                                        float* rstd_out, float2* coef) {
  const float2 total = block_sum(s1, s2);
  const float dmean = total.x / len;
  const float mean = k + dmean;
  const float rstd = rsqrtf(fmaxf(total.y / len - dmean * dmean, 0.f) + eps);
  if (threadIdx.x == 0) {
    mean_out[group] = mean;
    rstd_out[group] = rstd;
  }
  for (int c = threadIdx.x; c < cpg; c += blockDim.x) {
    coef[c] = group_norm_affine(c0 + c, row0 + c, mean, rstd, gamma, beta, scale, shift);
  }
  __syncthreads();
}

// dL/dx = rstd * (dxhat - m1 - xhat * m2), with xhat = (x - mean) * rstd, dxhat = dL/dpre * w[c],
// m1 and m2 the group means of dxhat and dxhat * xhat; written as dL/dpre * (rstd * w[c]) + x * c2
// + c3. (p1, p2): the thread's share of the sums of dxhat and dxhat * xhat. Returns {c2, c3}.
__device__ __forceinline__ float2 input_grad_constants(float p1, float p2, float len, float mean,
                                                       float rstd) {
  const float2 total = block_sum(p1, p2);
  const float m1 = total.x / len, m2 = total.y / len;
  return make_float2(-rstd * rstd * m2, rstd * rstd * m2 * mean - rstd * m1);
}

// Channels-last: a pack of V consecutive channels through each channel's affine map ab[j] and the
// activation (the forward's output).
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> affine_act_pack(const Pack<T, V>& v, const float2 (&ab)[V],
                                                      bool silu) {
  Pack<T, V> q;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    float r = to_float(v.v[j]) * ab[j].x + ab[j].y;
    if (silu) r *= sigmoid(r);
    q.v[j] = from_float<T>(r);
  }
  return q;
}

// Channels-last: dL/dx of a pack of V consecutive channels, dL/dpre * kc[j] + x * c23[j].x +
// c23[j].y (input_grad_constants of each channel's group; kc = rstd * w).
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> input_grad_pack_channels(const Pack<T, V>& vx,
                                                               const Pack<T, V>& vg,
                                                               const float2 (&ab)[V],
                                                               const float (&kc)[V],
                                                               const float2 (&c23)[V], bool silu) {
  Pack<T, V> q;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const float xv = to_float(vx.v[j]);
    const float dpre = pre_grad(to_float(vg.v[j]), xv * ab[j].x + ab[j].y, silu);
    q.v[j] = from_float<T>(dpre * kc[j] + xv * c23[j].x + c23[j].y);
  }
  return q;
}

}  // namespace dmtrain::models::cuda
