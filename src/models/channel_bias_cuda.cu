// A per-channel bias added to a convolution's output, and its gradient, as two vectorised
// kernels. LibTorch runs a biased convolution on cuDNN as the bias-free convolution followed by
// `out.add_(bias.view(1, C, 1, 1))`, a broadcasting element-wise op that takes the non-vectorised
// path (22 us a call in the CIFAR10 step), and takes the bias gradient as
// `grad.sum({0, 2, 3})` (19 us in NCHW, 33 us channels-last). Here:
//   add:  one pass of 16-byte packs; a pack lies in one channel (NCHW: HW % V == 0) or covers V
//         consecutive channels (channels-last: C % V == 0), so its bias values are known;
//   grad: per-(sample, channel) row sums, one warp a row (NCHW), or per tile of pixels and
//         channel, all channels of a pixel row read at once (channels-last); written as float32
//         partial sums [rows][C] that the caller sums over rows (a small reduction), so the
//         result does not depend on scheduling (no atomics).
#include <cstdint>

#include "channel_bias_cuda.hpp"
#include "cuda_common.cuh"

namespace dmtrain::models::cuda {
namespace {

template <typename T, int V>
__global__ void bias_add_kernel(ChannelBiasShape s, const T* __restrict__ y,
                                const float* __restrict__ bias, T* __restrict__ out) {
  const int64_t packs = s.n * s.c * s.hw / V;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t e = i * V;
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(y + e);
    Pack<T, V> q;
    if (s.channels_last) {
      const int64_t c0 = e % s.c;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        q.v[j] = from_float<T>(to_float(v.v[j]) + to_float(from_float<T>(bias[c0 + j])));
      }
    } else {
      const float b = to_float(from_float<T>(bias[(e / s.hw) % s.c]));
#pragma unroll
      for (int j = 0; j < V; ++j) q.v[j] = from_float<T>(to_float(v.v[j]) + b);
    }
    *reinterpret_cast<Pack<T, V>*>(out + e) = q;
  }
}

// NCHW: partial[n][c] = sum over the row (n, c) of HW values; one warp a row.
template <typename T, int V>
__global__ void row_sum_kernel(ChannelBiasShape s, const T* __restrict__ g,
                               float* __restrict__ partial) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= s.n * s.c) return;  // whole warps leave together: the shuffles below stay full
  const int lane = threadIdx.x & 31;
  const T* r = g + row * s.hw;
  float sum = 0.f;
  for (int64_t p = lane; p < s.hw / V; p += 32) {
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(r + p * V);
#pragma unroll
    for (int j = 0; j < V; ++j) sum += to_float(v.v[j]);
  }
  sum = warp_sum(sum);
  if (lane == 0) partial[row] = sum;
}

// Channels-last: partial[tile][c] = sum over the tile's pixel rows of g[row][c]; the block's
// threads cover the C / V packs of a row and as many rows at once as fit in 256 threads.
template <typename T, int V>
__global__ void column_sum_kernel(ChannelBiasShape s, int64_t rows_per_tile,
                                  const T* __restrict__ g, float* __restrict__ partial) {
  extern __shared__ float red[];  // [rows at once][C]
  const int lanes = static_cast<int>(s.c / V);
  const int c0 = (threadIdx.x % lanes) * V;
  const int row = threadIdx.x / lanes, rows = blockDim.x / lanes;
  const int64_t total = s.n * s.hw;
  const int64_t begin = blockIdx.x * rows_per_tile;
  const int64_t end = begin + rows_per_tile < total ? begin + rows_per_tile : total;
  float acc[V];
#pragma unroll
  for (int j = 0; j < V; ++j) acc[j] = 0.f;
  for (int64_t r = begin + row; r < end; r += rows) {
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(g + r * s.c + c0);
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] += to_float(v.v[j]);
  }
#pragma unroll
  for (int j = 0; j < V; ++j) red[row * s.c + c0 + j] = acc[j];
  __syncthreads();
  for (int c = threadIdx.x; c < s.c; c += blockDim.x) {
    float sum = 0.f;
    for (int q = 0; q < rows; ++q) sum += red[q * s.c + c];
    partial[blockIdx.x * s.c + c] = sum;
  }
}

bool aligned(const void* p, int bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// The widest pack (<= 16 bytes) the layout and the pointers allow; for channels-last also at
// most 256 threads across a row.
template <typename T>
int pack_of(const ChannelBiasShape& s, const void* a, const void* b) {
  for (int v = 16 / static_cast<int>(sizeof(T)); v > 1; v /= 2) {
    const bool fits = s.channels_last ? (s.c % v == 0 && s.c / v <= 256) : s.hw % v == 0;
    if (fits && aligned(a, v * sizeof(T)) && (b == nullptr || aligned(b, v * sizeof(T)))) return v;
  }
  return 1;
}

// Column-sum tiles: about four blocks per multiprocessor, at least 16 pixel rows each.
int64_t rows_per_tile(const ChannelBiasShape& s) {
  const int64_t tiles = 4 * static_cast<int64_t>(multiprocessors());
  const int64_t total = s.n * s.hw;
  const int64_t per = (total + tiles - 1) / tiles;
  return per < 16 ? 16 : per;
}

template <typename T, int V>
int launch_add(const ChannelBiasShape& s, const void* y, const float* bias, void* out,
               cudaStream_t stream) {
  const int64_t packs = s.n * s.c * s.hw / V;
  const int64_t blocks = (packs + 255) / 256;
  bias_add_kernel<T, V>
      <<<static_cast<unsigned>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096), 256, 0, stream>>>(
          s, static_cast<const T*>(y), bias, static_cast<T*>(out));
  return static_cast<int>(cudaGetLastError());
}

template <typename T, int V>
int launch_grad(const ChannelBiasShape& s, const void* g, float* partial, cudaStream_t stream) {
  const T* gt = static_cast<const T*>(g);
  if (!s.channels_last) {
    const int64_t rows = s.n * s.c;
    row_sum_kernel<T, V><<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream>>>(s, gt, partial);
  } else {
    const int lanes = static_cast<int>(s.c / V);
    const int threads = lanes * (256 / lanes > 1 ? 256 / lanes : 1);
    const int64_t per = rows_per_tile(s);
    const int64_t tiles = (s.n * s.hw + per - 1) / per;
    column_sum_kernel<T, V>
        <<<static_cast<unsigned>(tiles), threads, sizeof(float) * (threads / lanes) * s.c,
           stream>>>(s, per, gt, partial);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int add_typed(const ChannelBiasShape& s, const void* y, const float* bias, void* out,
              cudaStream_t stream) {
  switch (pack_of<T>(s, y, out)) {
    case 8:
      return launch_add<T, 8>(s, y, bias, out, stream);
    case 4:
      return launch_add<T, 4>(s, y, bias, out, stream);
    case 2:
      return launch_add<T, 2>(s, y, bias, out, stream);
    default:
      return launch_add<T, 1>(s, y, bias, out, stream);
  }
}

template <typename T>
int grad_typed(const ChannelBiasShape& s, const void* g, float* partial, cudaStream_t stream) {
  const int v = pack_of<T>(s, g, nullptr);
  if (s.channels_last && s.c / v > 256) return -1;  // not taken: channel_bias.cpp uses ATen
  switch (v) {
    case 8:
      return launch_grad<T, 8>(s, g, partial, stream);
    case 4:
      return launch_grad<T, 4>(s, g, partial, stream);
    case 2:
      return launch_grad<T, 2>(s, g, partial, stream);
    default:
      return launch_grad<T, 1>(s, g, partial, stream);
  }
}

}  // namespace

int channel_bias_add(ElementType type, ChannelBiasShape shape, const void* y, const float* bias,
                     void* out, void* stream) {
  auto* st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case ElementType::kFloat32:
      return add_typed<float>(shape, y, bias, out, st);
    case ElementType::kBFloat16:
      return add_typed<__nv_bfloat16>(shape, y, bias, out, st);
    case ElementType::kFloat16:
      return add_typed<__half>(shape, y, bias, out, st);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int64_t channel_bias_partial_rows(ChannelBiasShape shape) {
  if (!shape.channels_last) return shape.n;
  const int64_t per = rows_per_tile(shape);
  return (shape.n * shape.hw + per - 1) / per;
}

int channel_bias_grad(ElementType type, ChannelBiasShape shape, const void* grad, float* partial,
                      void* stream) {
  auto* st = static_cast<cudaStream_t>(stream);
  switch (type) {
    case ElementType::kFloat32:
      return grad_typed<float>(shape, grad, partial, st);
    case ElementType::kBFloat16:
      return grad_typed<__nv_bfloat16>(shape, grad, partial, st);
    case ElementType::kFloat16:
      return grad_typed<__half>(shape, grad, partial, st);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace dmtrain::models::cuda
