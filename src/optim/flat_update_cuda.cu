// The fused optimizer + EMA step over flat buffers (flat_update.hpp): one grid-stride element-wise
// kernel that updates every parameter, its Adam moments and every EMA copy in one pass over N
// elements, so that it can be captured into the training step's CUDA graph after the backward.
//
// Guarantees: the kernel does nothing (writes no element) unless isfinite(loss) and
// isfinite(grad_norm), both read on the device, so a skipped step needs no host decision before
// it; per element it evaluates the formulas of MdlrcAdam::step_plain and Ema::update (see
// flat_update.hpp) in float32 with the host-rounded scalars of FlatScalar. nvcc may contract
// a * b + c into one FMA, so results can differ from the ATen reference by an ulp per operation.
#include <cuda_runtime.h>

#include <cstdint>

#include "flat_update_cuda.hpp"

namespace dmtrain::optim::flat {
namespace {

// The step's scalars, read once per thread.
struct Coefficients {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, sqrt_bc2, eps, wd;
  float clip_coef;  // min(1, clip / (norm + 1e-6)) or 1
  float ema_weight[kMaxEmas];
};

__device__ __forceinline__ Coefficients load_coefficients(const FlatUpdateArgs& a, float norm) {
  const float* s = a.scalars;
  Coefficients c;
  c.beta1 = s[kBeta1];
  c.one_minus_beta1 = s[kOneMinusBeta1];
  c.beta2 = s[kBeta2];
  c.one_minus_beta2 = s[kOneMinusBeta2];
  c.neg_step_size = s[kNegStepSize];
  c.sqrt_bc2 = s[kSqrtBc2];
  c.eps = s[kEps];
  c.wd = s[kWeightDecay];
  // As torch::nn::utils::clip_grad_norm_: clamp(max_norm / (norm + 1e-6), max = 1).
  c.clip_coef = a.clip ? fminf(s[kGradClip] / (norm + 1e-6f), 1.f) : 1.f;
  for (int j = 0; j < kMaxEmas; ++j) c.ema_weight[j] = j < a.ema_count ? s[kEmaWeight0 + j] : 0.f;
  return c;
}

// ATen's lerp (ATen/native/Lerp.h), which _foreach_lerp_ evaluates: exact at weight 0 and 1.
__device__ __forceinline__ float lerp(float self, float end, float w) {
  return fabsf(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.f - w);
}

// One element: Adam / AdamW (step_plain's order of operations), then the parameter's EMAs.
__device__ __forceinline__ void update_element(const FlatUpdateArgs& a, const Coefficients& c,
                                               int64_t i, float& p, float g, float& m, float& v) {
  if (a.clip) g = g * c.clip_coef;
  if (a.weight_decay) {
    if (a.decoupled) {
      p = p * c.wd;
    } else {
      g = g + c.wd * p;
    }
  }
  m = m * c.beta1 + c.one_minus_beta1 * g;
  v = v * c.beta2 + c.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / c.sqrt_bc2 + c.eps;
  p = p + c.neg_step_size * m / denom;
  for (int j = 0; j < a.ema_count; ++j) a.ema[j][i] = lerp(a.ema[j][i], p, c.ema_weight[j]);
}

// Elements [0, n4 * 4) as float4 (all buffers 16-byte aligned), then the tail one by one.
template <bool kVector>
__global__ void flat_update_kernel(FlatUpdateArgs a) {
  const float norm = *a.grad_norm;
  if (!(isfinite(*a.loss) && isfinite(norm))) return;  // a skipped step writes nothing
  const Coefficients c = load_coefficients(a, norm);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (kVector) {
    const int64_t n4 = a.n / 4;
    auto* p4 = reinterpret_cast<float4*>(a.params);
    const auto* g4 = reinterpret_cast<const float4*>(a.grads);
    auto* m4 = reinterpret_cast<float4*>(a.exp_avg);
    auto* v4 = reinterpret_cast<float4*>(a.exp_avg_sq);
    for (int64_t q = first; q < n4; q += stride) {
      float4 p = p4[q], m = m4[q], v = v4[q];
      const float4 g = g4[q];
      update_element(a, c, 4 * q + 0, p.x, g.x, m.x, v.x);
      update_element(a, c, 4 * q + 1, p.y, g.y, m.y, v.y);
      update_element(a, c, 4 * q + 2, p.z, g.z, m.z, v.z);
      update_element(a, c, 4 * q + 3, p.w, g.w, m.w, v.w);
      p4[q] = p;
      m4[q] = m;
      v4[q] = v;
    }
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < a.n; i += stride) {
    float p = a.params[i], m = a.exp_avg[i], v = a.exp_avg_sq[i];
    update_element(a, c, i, p, a.grads[i], m, v);
    a.params[i] = p;
    a.exp_avg[i] = m;
    a.exp_avg_sq[i] = v;
  }
}

bool aligned16(const void* ptr) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

}  // namespace

int flat_update(const FlatUpdateArgs& a, void* stream) {
  if (a.n == 0) return 0;
  if (a.ema_count < 0 || a.ema_count > kMaxEmas) return static_cast<int>(cudaErrorInvalidValue);
  bool vector =
      aligned16(a.params) && aligned16(a.grads) && aligned16(a.exp_avg) && aligned16(a.exp_avg_sq);
  for (int j = 0; j < a.ema_count; ++j) vector = vector && aligned16(a.ema[j]);
  // A grid that covers the device a few times over; the grid-stride loop takes the rest. The
  // float4 loop reads EMA copies element-wise (they share the float4's cache lines).
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  constexpr int kThreads = 256;
  const int64_t work = vector ? (a.n + 3) / 4 : a.n;
  const int64_t wanted = (work + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(wanted < int64_t{sms} * 8 ? wanted : int64_t{sms} * 8);
  const int grid = blocks > 0 ? blocks : 1;
  auto s = static_cast<cudaStream_t>(stream);
  if (vector) {
    flat_update_kernel<true><<<grid, kThreads, 0, s>>>(a);
  } else {
    flat_update_kernel<false><<<grid, kThreads, 0, s>>>(a);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace dmtrain::optim::flat
