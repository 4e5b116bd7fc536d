// Device helpers shared by dmtrain's CUDA kernels (src/models/*.cu): float32 conversions of the
// storage types, 16-byte packs, warp and block sums. Header-only, included by .cu files only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>

namespace dmtrain::models::cuda {

__device__ __forceinline__ float to_float(float v) {
  return v;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float to_float(__half v) {
  return __half2float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// V consecutive elements moved as one 16-byte (or smaller) access.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

__device__ __forceinline__ float sigmoid(float v) {
  return 1.f / (1.f + __expf(-v));
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sums (a, b) over the block; every thread receives the totals.
__device__ __forceinline__ float2 block_sum(float a, float b) {
  __shared__ float2 partial[32];
  a = warp_sum(a);
  b = warp_sum(b);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = make_float2(a, b);
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    float2 p = lane < warps ? partial[lane] : make_float2(0.f, 0.f);
    p.x = warp_sum(p.x);
    p.y = warp_sum(p.y);
    if (lane == 0) partial[0] = p;
  }
  __syncthreads();
  const float2 total = partial[0];
  __syncthreads();  // partial[] may be reused by the caller's next reduction
  return total;
}

// The current device's multiprocessor count, read once (80 if it cannot be read), for kernels
// that size their grids to fill the device.
inline int multiprocessors() {
  static const int count = [] {
    int device = 0, value = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return 80;
    }
    return value;
  }();
  return count;
}

// dL/d(pre-activation) from dL/dy.
__device__ __forceinline__ float pre_grad(float dy, float pre, bool silu) {
  if (!silu) return dy;
  const float sg = sigmoid(pre);
  return dy * sg * (1.f + pre * (1.f - sg));
}

}  // namespace dmtrain::models::cuda
