// Channels-last fused GroupNorm (+ per-sample scale/shift) (+ SiLU) kernels that read the
// activations as they lie in memory ([N, HW, C]): a block takes a tile of pixels of one sample
// with all C channels, a thread a fixed pack of V channels, so a warp's loads are consecutive
// packs of a pixel row. (The per-(sample, group) kernels of group_norm_act_nhwc.cu walk a slab
// whose rows are C channels apart: each warp load touches 32 sectors for a few useful bytes
// each, which made channels-last GroupNorm twice as slow as NCHW in the CIFAR10 step.)
//
// The statistics cross tiles through a float32 workspace of [N, tiles, C] twice, written by one
// kernel and summed in a fixed order by the next (deterministic: no atomics). Each op is two
// kernels:
//   forward:  1. per tile and channel, the sums of d = x - k and d^2 (k: the group's value at
//                pixel 0 and its first channel, so E[d^2] - E[d]^2 does not cancel when the mean
//                is large against the spread, as in the other kernels);
//             2. the groups' mean and rstd from every tile's sums, then y for the tile.
//   backward: 1. per tile and channel, the sums of dL/dpre and dL/dpre * xhat;
//             2. the [N, C] sums (written out for the parameter gradients), each group's dL/dx
//                constants, then dL/dx for the tile.
#include <cstdint>

#include "group_norm_act_cuda.hpp"
#include "group_norm_act_device.cuh"

namespace dmtrain::models::cuda {
namespace {

constexpr int kMaxLanes = 256;  // threads across one pixel row: C / V

struct Tiles {
  int64_t n, c, hw, groups;
  int64_t tiles;        // per sample
  int64_t tile_pixels;  // the last tile may be shorter
};

// About four blocks per multiprocessor over the batch, and at least 16 pixels a tile. Depends on
// the shape only (the workspace is sized from it before the pack width is known).
int64_t tiles_per_sample(const GroupNormActShape& s) {
  const int64_t want = (4 * static_cast<int64_t>(multiprocessors()) + s.n - 1) / s.n;
  const int64_t most = s.hw / 16 > 1 ? s.hw / 16 : 1;
  return want < 1 ? 1 : (want > most ? most : want);
}

Tiles tiles_of(const GroupNormActShape& s) {
  Tiles t{s.n, s.c, s.hw, s.groups, tiles_per_sample(s), 0};
  t.tile_pixels = (s.hw + t.tiles - 1) / t.tiles;
  return t;
}

// The first and one-past-last pixel of this block's tile, and this thread's channels and rows.
struct Place {
  int64_t n, tile, p_begin, p_end;
  int c0;    // first of this thread's V channels
  int row;   // first pixel row of the tile this thread reads
  int rows;  // pixel rows the block reads at once
};

template <int V>
__device__ __forceinline__ Place place(const Tiles& t) {
  Place p;
  p.n = blockIdx.y;
  p.tile = blockIdx.x;
  p.p_begin = p.tile * t.tile_pixels;
  p.p_end = p.p_begin + t.tile_pixels < t.hw ? p.p_begin + t.tile_pixels : t.hw;
  const int lanes = static_cast<int>(t.c / V);
  p.c0 = (threadIdx.x % lanes) * V;
  p.row = threadIdx.x / lanes;
  p.rows = blockDim.x / lanes;
  return p;
}

// Sums the block's per-row partial sums red[2][rows][C] over rows and writes them to
// ws[0 or 1][n][tile][c].
__device__ __forceinline__ void write_tile_sums(const Tiles& t, const Place& p, const float* red,
                                                float* ws) {
  __syncthreads();
  const int64_t plane = t.n * t.tiles * t.c;
  for (int c = threadIdx.x; c < t.c; c += blockDim.x) {
    float s1 = 0.f, s2 = 0.f;
    for (int r = 0; r < p.rows; ++r) {
      s1 += red[r * t.c + c];
      s2 += red[(p.rows + r) * t.c + c];
    }
    const int64_t at = (p.n * t.tiles + p.tile) * t.c + c;
    ws[at] = s1;
    ws[plane + at] = s2;
  }
}

// Channel c's sums over every tile of sample n.
__device__ __forceinline__ float2 channel_total(const Tiles& t, int64_t n, int c, const float* ws) {
  const int64_t plane = t.n * t.tiles * t.c;
  float s1 = 0.f, s2 = 0.f;
  for (int64_t q = 0; q < t.tiles; ++q) {
    const int64_t at = (n * t.tiles + q) * t.c + c;
    s1 += ws[at];
    s2 += ws[plane + at];
  }
  return make_float2(s1, s2);
}

template <typename T, int V>
__global__ void tiled_stats_kernel(Tiles t, const T* __restrict__ x, float* __restrict__ ws) {
  extern __shared__ float red[];  // [2][rows][C]
  const Place p = place<V>(t);
  const int cpg = static_cast<int>(t.c / t.groups);
  const T* xs = x + p.n * t.hw * t.c;
  float k[V], s1[V], s2[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    k[j] = to_float(xs[(p.c0 + j) / cpg * cpg]);
    s1[j] = 0.f;
    s2[j] = 0.f;
  }
  for (int64_t px = p.p_begin + p.row; px < p.p_end; px += p.rows) {
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(xs + px * t.c + p.c0);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float d = to_float(v.v[j]) - k[j];
      s1[j] += d;
      s2[j] += d * d;
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) {
    red[p.row * t.c + p.c0 + j] = s1[j];
    red[(p.rows + p.row) * t.c + p.c0 + j] = s2[j];
  }
  write_tile_sums(t, p, red, ws);
}

template <typename T, int V>
__global__ void tiled_forward_kernel(Tiles t, const T* __restrict__ x,
                                     const float* __restrict__ gamma,
                                     const float* __restrict__ beta,
                                     const float* __restrict__ scale,
                                     const float* __restrict__ shift, bool silu, float eps,
                                     const float* __restrict__ ws, T* __restrict__ y,
                                     float* __restrict__ mean_out, float* __restrict__ rstd_out) {
  extern __shared__ float smem[];  // coef float2[C] | chan float2[C] | stat float2[groups]
  float2* coef = reinterpret_cast<float2*>(smem);
  float2* chan = coef + t.c;
  float2* stat = chan + t.c;
  const Place p = place<V>(t);
  const int cpg = static_cast<int>(t.c / t.groups);
  const T* xs = x + p.n * t.hw * t.c;
  for (int c = threadIdx.x; c < t.c; c += blockDim.x) chan[c] = channel_total(t, p.n, c, ws);
  __syncthreads();
  const float len = static_cast<float>(cpg) * static_cast<float>(t.hw);
  for (int g = threadIdx.x; g < t.groups; g += blockDim.x) {
    float s1 = 0.f, s2 = 0.f;
    for (int c = g * cpg; c < (g + 1) * cpg; ++c) {
      s1 += chan[c].x;
      s2 += chan[c].y;
    }
    const float dmean = s1 / len;
    const float mean = to_float(xs[g * cpg]) + dmean;
    const float rstd = rsqrtf(fmaxf(s2 / len - dmean * dmean, 0.f) + eps);
    stat[g] = make_float2(mean, rstd);
    if (p.tile == 0) {
      mean_out[p.n * t.groups + g] = mean;
      rstd_out[p.n * t.groups + g] = rstd;
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < t.c; c += blockDim.x) {
    const float2 ms = stat[c / cpg];
    coef[c] = group_norm_affine(c, p.n * t.c + c, ms.x, ms.y, gamma, beta, scale, shift);
  }
  __syncthreads();
  float2 ab[V];
#pragma unroll
  for (int j = 0; j < V; ++j) ab[j] = coef[p.c0 + j];
  T* ys = y + p.n * t.hw * t.c;
  for (int64_t px = p.p_begin + p.row; px < p.p_end; px += p.rows) {
    const int64_t off = px * t.c + p.c0;
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(xs + off);
    *reinterpret_cast<Pack<T, V>*>(ys + off) = affine_act_pack(v, ab, silu);
  }
}

// This thread's channels' affine maps and (mean, rstd) of their groups, from the saved
// statistics; coef is shared [C], filled by the whole block.
template <int V>
__device__ __forceinline__ void saved_coefficients(const Tiles& t, const Place& p,
                                                   const float* mean, const float* rstd,
                                                   const float* gamma, const float* beta,
                                                   const float* scale, const float* shift,
                                                   float2* coef, float2* ab, float2* ms) {
  const int cpg = static_cast<int>(t.c / t.groups);
  for (int c = threadIdx.x; c < t.c; c += blockDim.x) {
    const int64_t g = p.n * t.groups + c / cpg;
    coef[c] = group_norm_affine(c, p.n * t.c + c, mean[g], rstd[g], gamma, beta, scale, shift);
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int64_t g = p.n * t.groups + (p.c0 + j) / cpg;
    ab[j] = coef[p.c0 + j];
    ms[j] = make_float2(mean[g], rstd[g]);
  }
}

template <typename T, int V>
__global__ void tiled_grad_sums_kernel(
    Tiles t, const T* __restrict__ grad_y, const T* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ rstd, const float* __restrict__ gamma, const float* __restrict__ beta,
    const float* __restrict__ scale, const float* __restrict__ shift, bool silu,
    float* __restrict__ ws) {
  extern __shared__ float smem[];  // coef float2[C] | red [2][rows][C]
  float2* coef = reinterpret_cast<float2*>(smem);
  float* red = smem + 2 * t.c;
  const Place p = place<V>(t);
  float2 ab[V], ms[V];
  saved_coefficients<V>(t, p, mean, rstd, gamma, beta, scale, shift, coef, ab, ms);
  const int64_t base = p.n * t.hw * t.c + p.c0;
  float a1[V], a2[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    a1[j] = 0.f;
    a2[j] = 0.f;
  }
  for (int64_t px = p.p_begin + p.row; px < p.p_end; px += p.rows) {
    const int64_t off = base + px * t.c;
    const Pack<T, V> vx = *reinterpret_cast<const Pack<T, V>*>(x + off);
    const Pack<T, V> vg = *reinterpret_cast<const Pack<T, V>*>(grad_y + off);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float xv = to_float(vx.v[j]);
      const float dpre = pre_grad(to_float(vg.v[j]), xv * ab[j].x + ab[j].y, silu);
      a1[j] += dpre;
      a2[j] += dpre * (xv - ms[j].x) * ms[j].y;
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) {
    red[p.row * t.c + p.c0 + j] = a1[j];
    red[(p.rows + p.row) * t.c + p.c0 + j] = a2[j];
  }
  write_tile_sums(t, p, red, ws);
}

template <typename T, int V>
__global__ void tiled_backward_kernel(
    Tiles t, const T* __restrict__ grad_y, const T* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ rstd, const float* __restrict__ gamma, const float* __restrict__ beta,
    const float* __restrict__ scale, const float* __restrict__ shift, bool silu,
    const float* __restrict__ ws, T* __restrict__ grad_x, float* __restrict__ sum_dy,
    float* __restrict__ sum_dy_xhat) {
  extern __shared__ float smem[];  // coef float2[C] | weighted float2[C] | consts float2[groups]
  float2* coef = reinterpret_cast<float2*>(smem);
  float2* weighted = coef + t.c;
  float2* consts = weighted + t.c;
  const Place p = place<V>(t);
  const int cpg = static_cast<int>(t.c / t.groups);
  // w[c]: dL/dxhat = dL/dpre * w[c] (the affine weight and the sample's 1 + scale)
  const auto weight = [&](int c) {
    return (scale != nullptr ? 1.f + scale[p.n * t.c + c] : 1.f) * gamma[c];
  };
  for (int c = threadIdx.x; c < t.c; c += blockDim.x) {
    const float2 s = channel_total(t, p.n, c, ws);
    if (p.tile == 0) {
      sum_dy[p.n * t.c + c] = s.x;
      sum_dy_xhat[p.n * t.c + c] = s.y;
    }
    const float w = weight(c);
    weighted[c] = make_float2(s.x * w, s.y * w);
  }
  __syncthreads();
  const float len = static_cast<float>(cpg) * static_cast<float>(t.hw);
  for (int g = threadIdx.x; g < t.groups; g += blockDim.x) {
    float p1 = 0.f, p2 = 0.f;
    for (int c = g * cpg; c < (g + 1) * cpg; ++c) {
      p1 += weighted[c].x;
      p2 += weighted[c].y;
    }
    // the constants of input_grad_constants (group_norm_act_device.cuh), from whole-group sums
    const float m = mean[p.n * t.groups + g], r = rstd[p.n * t.groups + g];
    const float m1 = p1 / len, m2 = p2 / len;
    consts[g] = make_float2(-r * r * m2, r * r * m2 * m - r * m1);
  }
  float2 ab[V], ms[V];
  saved_coefficients<V>(t, p, mean, rstd, gamma, beta, scale, shift, coef, ab, ms);  // syncs
  float kc[V];
  float2 c23[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    kc[j] = ms[j].y * weight(p.c0 + j);
    c23[j] = consts[(p.c0 + j) / cpg];
  }
  const int64_t base = p.n * t.hw * t.c + p.c0;
  for (int64_t px = p.p_begin + p.row; px < p.p_end; px += p.rows) {
    const int64_t off = base + px * t.c;
    const Pack<T, V> vx = *reinterpret_cast<const Pack<T, V>*>(x + off);
    const Pack<T, V> vg = *reinterpret_cast<const Pack<T, V>*>(grad_y + off);
    *reinterpret_cast<Pack<T, V>*>(grad_x + off) =
        input_grad_pack_channels(vx, vg, ab, kc, c23, silu);
  }
}

// The widest pack (<= 16 bytes) that divides C and fits every pointer's alignment, with at most
// kMaxLanes threads across a row; 0 when there is none.
template <typename T>
int tiled_pack(const GroupNormActShape& s, const void* const* ptrs, int n_ptrs) {
  for (int v = 16 / static_cast<int>(sizeof(T)); v >= 1; v /= 2) {
    if (s.c % v != 0 || s.c / v > kMaxLanes) continue;
    bool ok = true;
    for (int i = 0; i < n_ptrs; ++i)
      ok = ok && reinterpret_cast<uintptr_t>(ptrs[i]) % (v * sizeof(T)) == 0;
    if (ok) return v;
  }
  return 0;
}

// Threads: a multiple of the C / V lanes of a row, about 256.
int tiled_threads(int64_t c, int v) {
  const int lanes = static_cast<int>(c / v);
  return lanes * (256 / lanes > 1 ? 256 / lanes : 1);
}

template <typename T, int V>
void launch_forward(const GroupNormActShape& s, const T* x, const float* gamma, const float* beta,
                    const float* scale, const float* shift, bool silu, float eps, T* y, float* mean,
                    float* rstd, float* ws, cudaStream_t stream) {
  const Tiles t = tiles_of(s);
  const dim3 grid(static_cast<unsigned>(t.tiles), static_cast<unsigned>(t.n));
  const int threads = tiled_threads(s.c, V);
  const int rows = threads / static_cast<int>(s.c / V);
  tiled_stats_kernel<T, V><<<grid, threads, sizeof(float) * 2 * rows * s.c, stream>>>(t, x, ws);
  tiled_forward_kernel<T, V><<<grid, threads, sizeof(float2) * (2 * s.c + s.groups), stream>>>(
      t, x, gamma, beta, scale, shift, silu, eps, ws, y, mean, rstd);
}

template <typename T, int V>
void launch_backward(const GroupNormActShape& s, const T* grad_y, const T* x, const float* mean,
                     const float* rstd, const float* gamma, const float* beta, const float* scale,
                     const float* shift, bool silu, T* grad_x, float* sum_dy, float* sum_dy_xhat,
                     float* ws, cudaStream_t stream) {
  const Tiles t = tiles_of(s);
  const dim3 grid(static_cast<unsigned>(t.tiles), static_cast<unsigned>(t.n));
  const int threads = tiled_threads(s.c, V);
  const int rows = threads / static_cast<int>(s.c / V);
  tiled_grad_sums_kernel<T, V>
      <<<grid, threads, sizeof(float) * (2 * s.c + 2 * rows * s.c), stream>>>(
          t, grad_y, x, mean, rstd, gamma, beta, scale, shift, silu, ws);
  tiled_backward_kernel<T, V><<<grid, threads, sizeof(float2) * (2 * s.c + s.groups), stream>>>(
      t, grad_y, x, mean, rstd, gamma, beta, scale, shift, silu, ws, grad_x, sum_dy, sum_dy_xhat);
}

}  // namespace

int64_t nhwc_tiled_workspace(GroupNormActShape s) {
  return 2 * s.n * tiles_per_sample(s) * s.c;
}

template <typename T>
int nhwc_tiled_forward(GroupNormActShape s, const void* x, const float* gamma, const float* beta,
                       const float* scale, const float* shift, bool silu, float eps, void* y,
                       float* mean, float* rstd, float* ws, cudaStream_t stream) {
  const void* ptrs[] = {x, y};
  const T* xt = static_cast<const T*>(x);
  T* yt = static_cast<T*>(y);
  switch (tiled_pack<T>(s, ptrs, 2)) {
    case 8:
      launch_forward<T, 8>(s, xt, gamma, beta, scale, shift, silu, eps, yt, mean, rstd, ws, stream);
      break;
    case 4:
      launch_forward<T, 4>(s, xt, gamma, beta, scale, shift, silu, eps, yt, mean, rstd, ws, stream);
      break;
    case 2:
      launch_forward<T, 2>(s, xt, gamma, beta, scale, shift, silu, eps, yt, mean, rstd, ws, stream);
      break;
    case 1:
      launch_forward<T, 1>(s, xt, gamma, beta, scale, shift, silu, eps, yt, mean, rstd, ws, stream);
      break;
    default:
      return -1;  // not taken: the caller uses the per-group kernels
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int nhwc_tiled_backward(GroupNormActShape s, const void* grad_y, const void* x, const float* mean,
                        const float* rstd, const float* gamma, const float* beta,
                        const float* scale, const float* shift, bool silu, void* grad_x,
                        float* sum_dy, float* sum_dy_xhat, float* ws, cudaStream_t stream) {
  const void* ptrs[] = {grad_y, x, grad_x};
  const T* gy = static_cast<const T*>(grad_y);
  const T* xt = static_cast<const T*>(x);
  T* gx = static_cast<T*>(grad_x);
#define DMTRAIN_TILED_BACKWARD(V)                                                           \
  launch_backward<T, V>(s, gy, xt, mean, rstd, gamma, beta, scale, shift, silu, gx, sum_dy, \
                        sum_dy_xhat, ws, stream)
  switch (tiled_pack<T>(s, ptrs, 3)) {
    case 8:
      DMTRAIN_TILED_BACKWARD(8);
      break;
    case 4:
      DMTRAIN_TILED_BACKWARD(4);
      break;
    case 2:
      DMTRAIN_TILED_BACKWARD(2);
      break;
    case 1:
      DMTRAIN_TILED_BACKWARD(1);
      break;
    default:
      return -1;
  }
#undef DMTRAIN_TILED_BACKWARD
  return static_cast<int>(cudaGetLastError());
}

template int nhwc_tiled_forward<float>(GroupNormActShape, const void*, const float*, const float*,
                                       const float*, const float*, bool, float, void*, float*,
                                       float*, float*, cudaStream_t);
template int nhwc_tiled_forward<__nv_bfloat16>(GroupNormActShape, const void*, const float*,
                                               const float*, const float*, const float*, bool,
                                               float, void*, float*, float*, float*, cudaStream_t);
template int nhwc_tiled_forward<__half>(GroupNormActShape, const void*, const float*, const float*,
                                        const float*, const float*, bool, float, void*, float*,
                                        float*, float*, cudaStream_t);
template int nhwc_tiled_backward<float>(GroupNormActShape, const void*, const void*, const float*,
                                        const float*, const float*, const float*, const float*,
                                        const float*, bool, void*, float*, float*, float*,
                                        cudaStream_t);
template int nhwc_tiled_backward<__nv_bfloat16>(GroupNormActShape, const void*, const void*,
                                                const float*, const float*, const float*,
                                                const float*, const float*, const float*, bool,
                                                void*, float*, float*, float*, cudaStream_t);
template int nhwc_tiled_backward<__half>(GroupNormActShape, const void*, const void*, const float*,
                                         const float*, const float*, const float*, const float*,
                                         const float*, bool, void*, float*, float*, float*,
                                         cudaStream_t);

}  // namespace dmtrain::models::cuda
