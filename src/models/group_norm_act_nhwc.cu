// Fused GroupNorm (+ per-sample scale/shift) (+ SiLU) kernels for channels-last activations
// ([N, HW, C] in memory: NHWC 4-d tensors, and [N, C, T] views of them).
//
// One thread block per (sample, group), as in the NCHW kernels, but a group is now a strided
// slab: cpg contiguous channels at each of the HW pixels, rows C apart. Each thread owns a fixed
// pack of V channels (the block's width is a multiple of cpg / V) and walks pixels, so the
// per-channel coefficients and sums live in registers; neighbouring groups' blocks run at the
// same time and read the rest of each 32-byte sector, which L2 then serves.
#include <cstdint>

#include "group_norm_act_cuda.hpp"
#include "group_norm_act_device.cuh"

namespace dmtrain::models::cuda {
namespace {

struct Slab {
  int64_t index;  // n * groups + g
  int64_t n;
  int64_t c0;  // first channel of the group
  int cpg;
  int hw;
  int64_t base;  // offset of (n, pixel 0, c0)
};

__device__ __forceinline__ Slab this_slab(const GroupNormActShape& s) {
  Slab g;
  g.index = blockIdx.x;
  g.cpg = static_cast<int>(s.c / s.groups);
  g.n = g.index / s.groups;
  g.c0 = (g.index % s.groups) * g.cpg;
  g.hw = static_cast<int>(s.hw);
  g.base = g.n * s.hw * s.c + g.c0;
  return g;
}

template <typename T, int V>
__global__ void nhwc_forward_kernel(GroupNormActShape s, const T* __restrict__ x,
                                    const float* __restrict__ gamma, const float* __restrict__ beta,
                                    const float* __restrict__ scale,
                                    const float* __restrict__ shift, bool silu, float eps,
                                    T* __restrict__ y, float* __restrict__ mean_out,
                                    float* __restrict__ rstd_out) {
  extern __shared__ float2 coef[];  // [cpg]
  const Slab g = this_slab(s);
  const int packs = g.cpg / V;  // per pixel; divides blockDim.x
  const int cp = (threadIdx.x % packs) * V;
  const int p0 = threadIdx.x / packs, pstep = blockDim.x / packs;
  const T* xg = x + g.base + cp;
  T* yg = y + g.base + cp;

  const float k = to_float(x[g.base]);  // shift of the sums, as in the NCHW kernel
  float s1 = 0.f, s2 = 0.f;
  for (int p = p0; p < g.hw; p += pstep) {
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(xg + static_cast<int64_t>(p) * s.c);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float d = to_float(v.v[j]) - k;
      s1 += d;
      s2 += d * d;
    }
  }
  finish_group_statistics(s1, s2, k, static_cast<float>(g.cpg) * static_cast<float>(g.hw), eps,
                          g.index, g.c0, g.n * s.c + g.c0, g.cpg, gamma, beta, scale, shift,
                          mean_out, rstd_out, coef);
  float2 ab[V];
#pragma unroll
  for (int j = 0; j < V; ++j) ab[j] = coef[cp + j];

  for (int p = p0; p < g.hw; p += pstep) {
    const int64_t off = static_cast<int64_t>(p) * s.c;
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(xg + off);
    *reinterpret_cast<Pack<T, V>*>(yg + off) = affine_act_pack(v, ab, silu);
  }
}

template <typename T, int V>
__global__ void nhwc_backward_kernel(
    GroupNormActShape s, const T* __restrict__ grad_y, const T* __restrict__ x,
    const float* __restrict__ mean_in, const float* __restrict__ rstd_in,
    const float* __restrict__ gamma, const float* __restrict__ beta,
    const float* __restrict__ scale, const float* __restrict__ shift, bool silu,
    T* __restrict__ grad_x, float* __restrict__ sum_dy, float* __restrict__ sum_dy_xhat) {
  extern __shared__ float smem[];
  const Slab g = this_slab(s);
  const BackwardShared sh = backward_shared(smem, g.cpg);
  float2* coef = sh.coef;
  float *w = sh.w, *sum1 = sh.part1, *sum2 = sh.part2;
  const float mean = mean_in[g.index];
  const float rstd = rstd_in[g.index];
  for (int c = threadIdx.x; c < g.cpg; c += blockDim.x) {
    coef[c] =
        group_norm_affine(g.c0 + c, g.n * s.c + g.c0 + c, mean, rstd, gamma, beta, scale, shift);
    w[c] = (scale != nullptr ? 1.f + scale[g.n * s.c + g.c0 + c] : 1.f) * gamma[g.c0 + c];
    sum1[c] = 0.f;
    sum2[c] = 0.f;
  }
  __syncthreads();
  const int packs = g.cpg / V;
  const int cp = (threadIdx.x % packs) * V;
  const int p0 = threadIdx.x / packs, pstep = blockDim.x / packs;
  const T* xg = x + g.base + cp;
  const T* gyg = grad_y + g.base + cp;
  T* gxg = grad_x + g.base + cp;
  float2 ab[V];
  float a1[V], a2[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    ab[j] = coef[cp + j];
    a1[j] = 0.f;
    a2[j] = 0.f;
  }

  // Pass 1: per channel, sum of dL/dpre and of dL/dpre * xhat (registers, then shared memory).
  for (int p = p0; p < g.hw; p += pstep) {
    const int64_t off = static_cast<int64_t>(p) * s.c;
    const Pack<T, V> vx = *reinterpret_cast<const Pack<T, V>*>(xg + off);
    const Pack<T, V> vg = *reinterpret_cast<const Pack<T, V>*>(gyg + off);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float xv = to_float(vx.v[j]);
      const float dpre = pre_grad(to_float(vg.v[j]), xv * ab[j].x + ab[j].y, silu);
      a1[j] += dpre;
      a2[j] += dpre * (xv - mean) * rstd;
    }
  }
  const int lane = threadIdx.x & 31;
  bool owner = true;
  if (32 % packs == 0) {  // lanes l, l + packs, ... hold the same channels: fold them first
    for (int o = 16; o >= packs; o >>= 1) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        a1[j] += __shfl_xor_sync(0xffffffffu, a1[j], o);
        a2[j] += __shfl_xor_sync(0xffffffffu, a2[j], o);
      }
    }
    owner = lane < packs;
  }
  if (owner) {
#pragma unroll
    for (int j = 0; j < V; ++j) {
      atomicAdd(&sum1[cp + j], a1[j]);
      atomicAdd(&sum2[cp + j], a2[j]);
    }
  }
  __syncthreads();
  float p1 = 0.f, p2 = 0.f;
  for (int c = threadIdx.x; c < g.cpg; c += blockDim.x) {
    sum_dy[g.n * s.c + g.c0 + c] = sum1[c];
    sum_dy_xhat[g.n * s.c + g.c0 + c] = sum2[c];
    p1 += sum1[c] * w[c];
    p2 += sum2[c] * w[c];
  }
  const float2 c23 = input_grad_constants(
      p1, p2, static_cast<float>(g.cpg) * static_cast<float>(g.hw), mean, rstd);
  float kc[V];
  float2 c23s[V];  // one group: the same constants for every channel of the pack
#pragma unroll
  for (int j = 0; j < V; ++j) {
    kc[j] = rstd * w[cp + j];
    c23s[j] = c23;
  }

  // Pass 2: dL/dx = dpre * rstd * w + x * c2 + c3 (see the NCHW kernel).
  for (int p = p0; p < g.hw; p += pstep) {
    const int64_t off = static_cast<int64_t>(p) * s.c;
    const Pack<T, V> vx = *reinterpret_cast<const Pack<T, V>*>(xg + off);
    const Pack<T, V> vg = *reinterpret_cast<const Pack<T, V>*>(gyg + off);
    *reinterpret_cast<Pack<T, V>*>(gxg + off) =
        input_grad_pack_channels(vx, vg, ab, kc, c23s, silu);
  }
}

int gcd(int a, int b) {
  return b == 0 ? a : gcd(b, a % b);
}

// A multiple of 32 and of `packs`, near 256 threads; 0 when that would exceed 512.
int nhwc_threads(int packs) {
  const int l = 32 / gcd(32, packs) * packs;
  if (l > 512) return 0;
  return l * (256 / l > 1 ? 256 / l : 1);
}

// The widest pack (<= 16 bytes) that divides the group's channels and fits the pointers'
// alignment.
template <typename T>
int pack_width(int cpg, const void* const* ptrs, int n_ptrs) {
  for (int v = 16 / static_cast<int>(sizeof(T)); v > 1; v /= 2) {
    if (cpg % v != 0) continue;
    bool ok = true;
    for (int i = 0; i < n_ptrs; ++i)
      ok = ok && reinterpret_cast<uintptr_t>(ptrs[i]) % (v * sizeof(T)) == 0;
    if (ok) return v;
  }
  return 1;
}

template <typename T, int V>
void forward_launch(GroupNormActShape s, const void* x, const float* gamma, const float* beta,
                    const float* scale, const float* shift, bool silu, float eps, void* y,
                    float* mean, float* rstd, cudaStream_t stream) {
  const int cpg = static_cast<int>(s.c / s.groups);
  nhwc_forward_kernel<T, V><<<static_cast<unsigned>(s.n * s.groups), nhwc_threads(cpg / V),
                              sizeof(float2) * cpg, stream>>>(s, static_cast<const T*>(x), gamma,
                                                              beta, scale, shift, silu, eps,
                                                              static_cast<T*>(y), mean, rstd);
}

template <typename T, int V>
void backward_launch(GroupNormActShape s, const void* grad_y, const void* x, const float* mean,
                     const float* rstd, const float* gamma, const float* beta, const float* scale,
                     const float* shift, bool silu, void* grad_x, float* sum_dy, float* sum_dy_xhat,
                     cudaStream_t stream) {
  const int cpg = static_cast<int>(s.c / s.groups);
  nhwc_backward_kernel<T, V>
      <<<static_cast<unsigned>(s.n * s.groups), nhwc_threads(cpg / V), backward_shared_bytes(cpg),
         stream>>>(s, static_cast<const T*>(grad_y), static_cast<const T*>(x), mean, rstd, gamma,
                   beta, scale, shift, silu, static_cast<T*>(grad_x), sum_dy, sum_dy_xhat);
}

}  // namespace

bool nhwc_supported(GroupNormActShape shape) {
  return nhwc_threads(static_cast<int>(shape.c / shape.groups)) > 0;  // the V = 1 worst case
}

template <typename T>
int nhwc_forward(GroupNormActShape s, const void* x, const float* gamma, const float* beta,
                 const float* scale, const float* shift, bool silu, float eps, void* y, float* mean,
                 float* rstd, cudaStream_t stream) {
  const void* ptrs[] = {x, y};
  const int cpg = static_cast<int>(s.c / s.groups);
  switch (pack_width<T>(cpg, ptrs, 2)) {
    case 8:
      forward_launch<T, 8>(s, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd, stream);
      break;
    case 4:
      forward_launch<T, 4>(s, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd, stream);
      break;
    case 2:
      forward_launch<T, 2>(s, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd, stream);
      break;
    default:
      forward_launch<T, 1>(s, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd, stream);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int nhwc_backward(GroupNormActShape s, const void* grad_y, const void* x, const float* mean,
                  const float* rstd, const float* gamma, const float* beta, const float* scale,
                  const float* shift, bool silu, void* grad_x, float* sum_dy, float* sum_dy_xhat,
                  cudaStream_t stream) {
  const void* ptrs[] = {grad_y, x, grad_x};
  const int cpg = static_cast<int>(s.c / s.groups);
#define DMTRAIN_NHWC_BACKWARD(V)                                                                   \
  backward_launch<T, V>(s, grad_y, x, mean, rstd, gamma, beta, scale, shift, silu, grad_x, sum_dy, \
                        sum_dy_xhat, stream)
  switch (pack_width<T>(cpg, ptrs, 3)) {
    case 8:
      DMTRAIN_NHWC_BACKWARD(8);
      break;
    case 4:
      DMTRAIN_NHWC_BACKWARD(4);
      break;
    case 2:
      DMTRAIN_NHWC_BACKWARD(2);
      break;
    default:
      DMTRAIN_NHWC_BACKWARD(1);
  }
#undef DMTRAIN_NHWC_BACKWARD
  return static_cast<int>(cudaGetLastError());
}

template int nhwc_forward<float>(GroupNormActShape, const void*, const float*, const float*,
                                 const float*, const float*, bool, float, void*, float*, float*,
                                 cudaStream_t);
template int nhwc_forward<__nv_bfloat16>(GroupNormActShape, const void*, const float*, const float*,
                                         const float*, const float*, bool, float, void*, float*,
                                         float*, cudaStream_t);
template int nhwc_forward<__half>(GroupNormActShape, const void*, const float*, const float*,
                                  const float*, const float*, bool, float, void*, float*, float*,
                                  cudaStream_t);
template int nhwc_backward<float>(GroupNormActShape, const void*, const void*, const float*,
                                  const float*, const float*, const float*, const float*,
                                  const float*, bool, void*, float*, float*, cudaStream_t);
template int nhwc_backward<__nv_bfloat16>(GroupNormActShape, const void*, const void*, const float*,
                                          const float*, const float*, const float*, const float*,
                                          const float*, bool, void*, float*, float*, cudaStream_t);
template int nhwc_backward<__half>(GroupNormActShape, const void*, const void*, const float*,
                                   const float*, const float*, const float*, const float*,
                                   const float*, bool, void*, float*, float*, cudaStream_t);

}  // namespace dmtrain::models::cuda
