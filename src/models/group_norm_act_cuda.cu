// Fused GroupNorm (+ per-sample scale/shift) (+ SiLU) kernels for dense NCHW activations.
//
// One thread block per (sample, group): the group's C/G channels x HW pixels are one contiguous
// run, so statistics, normalisation and the activation take two passes over x (the second mostly
// served by L2) and one write (forward), or two passes over x and dL/dy and one write of dL/dx
// (backward), in one kernel each, instead of the cast / normalise / cast / scale / shift / SiLU
// chain of separate kernels, each reading and writing the whole tensor, that the unfused module
// runs. Statistics and all arithmetic are in
// float32 whatever the storage type; only the output is rounded, once.
#include <cstdint>

#include "group_norm_act_cuda.hpp"
#include "group_norm_act_device.cuh"

namespace dmtrain::models::cuda {

// The channels-last kernels (group_norm_act_nhwc.cu).
bool nhwc_supported(GroupNormActShape shape);
template <typename T>
int nhwc_forward(GroupNormActShape s, const void* x, const float* gamma, const float* beta,
                 const float* scale, const float* shift, bool silu, float eps, void* y, float* mean,
                 float* rstd, cudaStream_t stream);
template <typename T>
int nhwc_backward(GroupNormActShape s, const void* grad_y, const void* x, const float* mean,
                  const float* rstd, const float* gamma, const float* beta, const float* scale,
                  const float* shift, bool silu, void* grad_x, float* sum_dy, float* sum_dy_xhat,
                  cudaStream_t stream);
// The channels-last kernels that read whole pixel rows (group_norm_act_nhwc_tiled.cu); -1: they
// do not take this shape or alignment (the ones above do).
int64_t nhwc_tiled_workspace(GroupNormActShape s);
template <typename T>
int nhwc_tiled_forward(GroupNormActShape s, const void* x, const float* gamma, const float* beta,
                       const float* scale, const float* shift, bool silu, float eps, void* y,
                       float* mean, float* rstd, float* ws, cudaStream_t stream);
template <typename T>
int nhwc_tiled_backward(GroupNormActShape s, const void* grad_y, const void* x, const float* mean,
                        const float* rstd, const float* gamma, const float* beta,
                        const float* scale, const float* shift, bool silu, void* grad_x,
                        float* sum_dy, float* sum_dy_xhat, float* ws, cudaStream_t stream);

namespace {

// Where one block's group lives and what it is made of.
struct Group {
  int64_t index;   // n * groups + g
  int64_t n;       // sample
  int64_t c0;      // first channel
  int cpg;         // channels per group
  int hw;          // pixels per channel
  int len;         // cpg * hw
  int64_t offset;  // of the group's first element
};

__device__ __forceinline__ Group this_group(const GroupNormActShape& s) {
  Group g;
  g.index = blockIdx.x;
  g.cpg = static_cast<int>(s.c / s.groups);
  g.n = g.index / s.groups;
  g.c0 = (g.index % s.groups) * g.cpg;
  g.hw = static_cast<int>(s.hw);
  g.len = g.cpg * g.hw;
  g.offset = g.index * g.len;
  return g;
}

template <typename T, int V>
__global__ void forward_kernel(GroupNormActShape s, const T* __restrict__ x,
                               const float* __restrict__ gamma, const float* __restrict__ beta,
                               const float* __restrict__ scale, const float* __restrict__ shift,
                               bool silu, float eps, T* __restrict__ y,
                               float* __restrict__ mean_out, float* __restrict__ rstd_out) {
  extern __shared__ float2 coef[];  // [cpg]: pre = x * coef.x + coef.y
  const Group g = this_group(s);
  const T* xg = x + g.offset;
  T* yg = y + g.offset;

  // Sums shifted by the group's first value: E[d^2] - E[d]^2 then does not cancel when the mean
  // is large against the spread (the single pass reads x once for the statistics).
  const float k = to_float(xg[0]);
  float s1 = 0.f, s2 = 0.f;
  for (int i = threadIdx.x * V; i < g.len; i += blockDim.x * V) {
    const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(xg + i);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float d = to_float(p.v[j]) - k;
      s1 += d;
      s2 += d * d;
    }
  }
  finish_group_statistics(s1, s2, k, static_cast<float>(g.len), eps, g.index, g.c0,
                          g.n * s.c + g.c0, g.cpg, gamma, beta, scale, shift, mean_out, rstd_out,
                          coef);

  for (int i = threadIdx.x * V; i < g.len; i += blockDim.x * V) {
    const float2 ab = coef[i / g.hw];  // V divides hw: a pack never straddles two channels
    const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(xg + i);
    Pack<T, V> q;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float v = to_float(p.v[j]) * ab.x + ab.y;
      if (silu) v *= sigmoid(v);
      q.v[j] = from_float<T>(v);
    }
    *reinterpret_cast<Pack<T, V>*>(yg + i) = q;
  }
}

// The backward's per-channel constants of group g in shared memory: coef (pre = x * a + b) and
// w = (1 + scale) * gamma (dL/dxhat = dL/dpre * w). Synchronises the block.
__device__ __forceinline__ void backward_channel_constants(const GroupNormActShape& s,
                                                           const Group& g, float mean, float rstd,
                                                           const float* gamma, const float* beta,
                                                           const float* scale, const float* shift,
                                                           float2* coef, float* w) {
  for (int c = threadIdx.x; c < g.cpg; c += blockDim.x) {
    coef[c] =
        group_norm_affine(g.c0 + c, g.n * s.c + g.c0 + c, mean, rstd, gamma, beta, scale, shift);
    const float k = scale != nullptr ? 1.f + scale[g.n * s.c + g.c0 + c] : 1.f;
    w[c] = k * gamma[g.c0 + c];
  }
  __syncthreads();
}

// A pack's share of its channel's sums of dL/dpre (a1) and of dL/dpre * xhat (a2).
template <typename T, int V>
__device__ __forceinline__ void add_pack_sums(const Pack<T, V>& px, const Pack<T, V>& pg, float2 ab,
                                              float mean, float rstd, bool silu, float& a1,
                                              float& a2) {
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const float xv = to_float(px.v[j]);
    const float dpre = pre_grad(to_float(pg.v[j]), xv * ab.x + ab.y, silu);
    a1 += dpre;
    a2 += dpre * (xv - mean) * rstd;
  }
}

// The warp of channel c: its lanes' sums reduced; lane 0 writes the channel's sum_dy and
// sum_dy_xhat and its shares of the group's sums weighted by w (part1, part2).
__device__ __forceinline__ void store_channel_sums(float a1, float a2, int c,
                                                   const GroupNormActShape& s, const Group& g,
                                                   const float* w, float* sum_dy,
                                                   float* sum_dy_xhat, float* part1, float* part2) {
  a1 = warp_sum(a1);
  a2 = warp_sum(a2);
  if ((threadIdx.x & 31) == 0) {
    sum_dy[g.n * s.c + g.c0 + c] = a1;
    sum_dy_xhat[g.n * s.c + g.c0 + c] = a2;
    part1[c] = a1 * w[c];
    part2[c] = a2 * w[c];
  }
}

// After every channel's shares are stored (and the block synchronised): {c2, c3} of dL/dx.
__device__ __forceinline__ float2 group_input_grad_constants(const Group& g, const float* part1,
                                                             const float* part2, float mean,
                                                             float rstd) {
  float p1 = 0.f, p2 = 0.f;
  for (int c = threadIdx.x; c < g.cpg; c += blockDim.x) {
    p1 += part1[c];
    p2 += part2[c];
  }
  return input_grad_constants(p1, p2, static_cast<float>(g.len), mean, rstd);
}

// dL/dx of a pack: dL/dpre * kc + x * c2 + c3 (kc = rstd * w of its channel).
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> input_grad_pack(const Pack<T, V>& px, const Pack<T, V>& pg,
                                                      float2 ab, float kc, float c2, float c3,
                                                      bool silu) {
  Pack<T, V> q;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const float xv = to_float(px.v[j]);
    const float dpre = pre_grad(to_float(pg.v[j]), xv * ab.x + ab.y, silu);
    q.v[j] = from_float<T>(dpre * kc + xv * c2 + c3);
  }
  return q;
}

template <typename T, int V>
__global__ void backward_kernel(GroupNormActShape s, const T* __restrict__ grad_y,
                                const T* __restrict__ x, const float* __restrict__ mean_in,
                                const float* __restrict__ rstd_in, const float* __restrict__ gamma,
                                const float* __restrict__ beta, const float* __restrict__ scale,
                                const float* __restrict__ shift, bool silu, T* __restrict__ grad_x,
                                float* __restrict__ sum_dy, float* __restrict__ sum_dy_xhat) {
  extern __shared__ float smem[];
  const Group g = this_group(s);
  const BackwardShared sh = backward_shared(smem, g.cpg);
  float2* coef = sh.coef;
  float *w = sh.w, *part1 = sh.part1, *part2 = sh.part2;
  const T* xg = x + g.offset;
  const T* gyg = grad_y + g.offset;
  T* gxg = grad_x + g.offset;
  const float mean = mean_in[g.index];
  const float rstd = rstd_in[g.index];
  backward_channel_constants(s, g, mean, rstd, gamma, beta, scale, shift, coef, w);

  // Pass 1, one warp per channel: sum of dL/dpre and of dL/dpre * xhat over the channel's pixels.
  const int lane = threadIdx.x & 31;
  const int warps = blockDim.x >> 5;
  for (int c = threadIdx.x >> 5; c < g.cpg; c += warps) {
    const float2 ab = coef[c];
    const T* xc = xg + static_cast<int64_t>(c) * g.hw;
    const T* gc = gyg + static_cast<int64_t>(c) * g.hw;
    float a1 = 0.f, a2 = 0.f;
    for (int i = lane * V; i < g.hw; i += 32 * V) {
      const Pack<T, V> px = *reinterpret_cast<const Pack<T, V>*>(xc + i);
      const Pack<T, V> pg = *reinterpret_cast<const Pack<T, V>*>(gc + i);
      add_pack_sums(px, pg, ab, mean, rstd, silu, a1, a2);
    }
    store_channel_sums(a1, a2, c, s, g, w, sum_dy, sum_dy_xhat, part1, part2);
  }
  __syncthreads();
  const float2 c23 = group_input_grad_constants(g, part1, part2, mean, rstd);

  // Pass 2: dL/dx.
  for (int i = threadIdx.x * V; i < g.len; i += blockDim.x * V) {
    const int c = i / g.hw;
    const Pack<T, V> px = *reinterpret_cast<const Pack<T, V>*>(xg + i);
    const Pack<T, V> pg = *reinterpret_cast<const Pack<T, V>*>(gyg + i);
    *reinterpret_cast<Pack<T, V>*>(gxg + i) =
        input_grad_pack(px, pg, coef[c], rstd * w[c], c23.x, c23.y, silu);
  }
}

// The same backward with each warp's loads of pass 1 kept in registers for pass 2 (at most
// kIters packs of x and of dL/dy per lane: HW <= kIters * 32 * V), and pass 2 done by the warp
// that read them: one read of x and dL/dy instead of two. One warp per channel (cpg <= warps).
// Every sum is taken in the order of backward_kernel and every dL/dx element from the same
// values by the same expression, so the results are the same bits (GPU test).
template <typename T, int V, int kIters>
__global__ void backward_cached_kernel(
    GroupNormActShape s, const T* __restrict__ grad_y, const T* __restrict__ x,
    const float* __restrict__ mean_in, const float* __restrict__ rstd_in,
    const float* __restrict__ gamma, const float* __restrict__ beta,
    const float* __restrict__ scale, const float* __restrict__ shift, bool silu,
    T* __restrict__ grad_x, float* __restrict__ sum_dy, float* __restrict__ sum_dy_xhat) {
  extern __shared__ float smem[];
  const Group g = this_group(s);
  const BackwardShared sh = backward_shared(smem, g.cpg);
  float2* coef = sh.coef;
  float *w = sh.w, *part1 = sh.part1, *part2 = sh.part2;
  const float mean = mean_in[g.index];
  const float rstd = rstd_in[g.index];
  backward_channel_constants(s, g, mean, rstd, gamma, beta, scale, shift, coef, w);

  const int lane = threadIdx.x & 31;
  const int c = threadIdx.x >> 5;  // this warp's channel
  const int64_t channel_offset = g.offset + static_cast<int64_t>(c) * g.hw;
  Pack<T, V> px[kIters], pg[kIters];
  if (c < g.cpg) {
    const float2 ab = coef[c];
    float a1 = 0.f, a2 = 0.f;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int i = (lane + 32 * it) * V;
      if (i < g.hw) {
        px[it] = *reinterpret_cast<const Pack<T, V>*>(x + channel_offset + i);
        pg[it] = *reinterpret_cast<const Pack<T, V>*>(grad_y + channel_offset + i);
        add_pack_sums(px[it], pg[it], ab, mean, rstd, silu, a1, a2);
      }
    }
    store_channel_sums(a1, a2, c, s, g, w, sum_dy, sum_dy_xhat, part1, part2);
  }
  __syncthreads();
  const float2 c23 = group_input_grad_constants(g, part1, part2, mean, rstd);
  if (c >= g.cpg) return;
  const float2 ab = coef[c];
  const float kc = rstd * w[c];
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int i = (lane + 32 * it) * V;
    if (i < g.hw) {
      *reinterpret_cast<Pack<T, V>*>(grad_x + channel_offset + i) =
          input_grad_pack(px[it], pg[it], ab, kc, c23.x, c23.y, silu);
    }
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// One warp per channel for the backward's first pass, 64..512 threads.
int threads_for(const GroupNormActShape& s) {
  const int64_t cpg = s.c / s.groups;
  const int64_t t = 32 * cpg;
  return static_cast<int>(t < 64 ? 64 : (t > 512 ? 512 : t));
}

template <typename T>
int forward_typed(GroupNormActShape s, const void* x, const float* gamma, const float* beta,
                  const float* scale, const float* shift, bool silu, float eps, void* y,
                  float* mean, float* rstd, float* workspace, cudaStream_t stream) {
  if (s.channels_last) {
    if (workspace != nullptr) {
      const int r = nhwc_tiled_forward<T>(s, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd,
                                          workspace, stream);
      if (r != -1) return r;
    }
    return nhwc_forward<T>(s, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd, stream);
  }
  constexpr int kV = 16 / sizeof(T);
  const dim3 grid(static_cast<unsigned>(s.n * s.groups));
  const int threads = threads_for(s);
  const size_t smem = sizeof(float2) * static_cast<size_t>(s.c / s.groups);
  const T* xt = static_cast<const T*>(x);
  T* yt = static_cast<T*>(y);
  if (s.hw % kV == 0 && aligned16(x) && aligned16(y)) {
    forward_kernel<T, kV><<<grid, threads, smem, stream>>>(s, xt, gamma, beta, scale, shift, silu,
                                                           eps, yt, mean, rstd);
  } else {
    forward_kernel<T, 1><<<grid, threads, smem, stream>>>(s, xt, gamma, beta, scale, shift, silu,
                                                          eps, yt, mean, rstd);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int backward_typed(GroupNormActShape s, const void* grad_y, const void* x, const float* mean,
                   const float* rstd, const float* gamma, const float* beta, const float* scale,
                   const float* shift, bool silu, void* grad_x, float* sum_dy, float* sum_dy_xhat,
                   float* workspace, cudaStream_t stream, bool cached) {
  if (s.channels_last) {
    if (workspace != nullptr) {
      const int r = nhwc_tiled_backward<T>(s, grad_y, x, mean, rstd, gamma, beta, scale, shift,
                                           silu, grad_x, sum_dy, sum_dy_xhat, workspace, stream);
      if (r != -1) return r;
    }
    return nhwc_backward<T>(s, grad_y, x, mean, rstd, gamma, beta, scale, shift, silu, grad_x,
                            sum_dy, sum_dy_xhat, stream);
  }
  constexpr int kV = 16 / sizeof(T);
  const dim3 grid(static_cast<unsigned>(s.n * s.groups));
  const int threads = threads_for(s);
  const size_t smem = backward_shared_bytes(s.c / s.groups);
  const T* gy = static_cast<const T*>(grad_y);
  const T* xt = static_cast<const T*>(x);
  T* gx = static_cast<T*>(grad_x);
  const bool packed = s.hw % kV == 0 && aligned16(grad_y) && aligned16(x) && aligned16(grad_x);
  const int64_t iters = (s.hw + 32 * kV - 1) / (32 * kV);  // packs per lane and channel
  if (cached && packed && s.c / s.groups <= threads / 32 && iters <= 4) {
#define DMTRAIN_CACHED_BACKWARD(I)                                   \
  backward_cached_kernel<T, kV, I><<<grid, threads, smem, stream>>>( \
      s, gy, xt, mean, rstd, gamma, beta, scale, shift, silu, gx, sum_dy, sum_dy_xhat)
    if (iters == 1) {
      DMTRAIN_CACHED_BACKWARD(1);
    } else if (iters == 2) {
      DMTRAIN_CACHED_BACKWARD(2);
    } else {
      DMTRAIN_CACHED_BACKWARD(4);
    }
#undef DMTRAIN_CACHED_BACKWARD
    return static_cast<int>(cudaGetLastError());
  }
  if (packed) {
    backward_kernel<T, kV><<<grid, threads, smem, stream>>>(
        s, gy, xt, mean, rstd, gamma, beta, scale, shift, silu, gx, sum_dy, sum_dy_xhat);
  } else {
    backward_kernel<T, 1><<<grid, threads, smem, stream>>>(
        s, gy, xt, mean, rstd, gamma, beta, scale, shift, silu, gx, sum_dy, sum_dy_xhat);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

bool group_norm_act_supported(GroupNormActShape shape) {
  return !shape.channels_last || nhwc_supported(shape);
}

int64_t group_norm_act_workspace(GroupNormActShape shape) {
  return shape.channels_last ? nhwc_tiled_workspace(shape) : 0;
}

int group_norm_act_forward(ElementType type, GroupNormActShape shape, const void* x,
                           const float* gamma, const float* beta, const float* scale,
                           const float* shift, bool silu, float eps, void* y, float* mean,
                           float* rstd, float* workspace, void* stream) {
  auto* st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case ElementType::kFloat32:
      return forward_typed<float>(shape, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd,
                                  workspace, st);
    case ElementType::kBFloat16:
      return forward_typed<__nv_bfloat16>(shape, x, gamma, beta, scale, shift, silu, eps, y, mean,
                                          rstd, workspace, st);
    case ElementType::kFloat16:
      return forward_typed<__half>(shape, x, gamma, beta, scale, shift, silu, eps, y, mean, rstd,
                                   workspace, st);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int group_norm_act_backward(ElementType type, GroupNormActShape shape, const void* grad_y,
                            const void* x, const float* mean, const float* rstd, const float* gamma,
                            const float* beta, const float* scale, const float* shift, bool silu,
                            void* grad_x, float* sum_dy, float* sum_dy_xhat, float* workspace,
                            void* stream, bool cached) {
  auto* st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case ElementType::kFloat32:
      return backward_typed<float>(shape, grad_y, x, mean, rstd, gamma, beta, scale, shift, silu,
                                   grad_x, sum_dy, sum_dy_xhat, workspace, st, cached);
    case ElementType::kBFloat16:
      return backward_typed<__nv_bfloat16>(shape, grad_y, x, mean, rstd, gamma, beta, scale, shift,
                                           silu, grad_x, sum_dy, sum_dy_xhat, workspace, st,
                                           cached);
    case ElementType::kFloat16:
      return backward_typed<__half>(shape, grad_y, x, mean, rstd, gamma, beta, scale, shift, silu,
                                    grad_x, sum_dy, sum_dy_xhat, workspace, st, cached);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace dmtrain::models::cuda
