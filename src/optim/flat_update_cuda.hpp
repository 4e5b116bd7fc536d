// Private interface between flat_update.cpp (LibTorch side) and flat_update_cuda.cu (the raw CUDA
// kernel). Free of LibTorch headers so nvcc compiles the kernel in seconds, as the models' kernels.
//
// The layout of the per-step scalars tensor (float32, on the buffers' device) is shared by the
// kernel, the ATen reference (flat_update.cpp) and the host code that fills it before each replay:
// index i of FlatScalar is element i; EMA j's weight 1 - rate_k is element kEmaWeight0 + j.
#pragma once
#include <cstdint>

namespace dmtrain::optim::flat {

enum FlatScalar : int {
  kBeta1 = 0,      // beta1_k
  kOneMinusBeta1,  // 1 - beta1_k (rounded once from double, as step_plain's Scalar)
  kBeta2,
  kOneMinusBeta2,
  kNegStepSize,  // -lr_k / (1 - beta1_k^s)
  kSqrtBc2,      // sqrt(1 - beta2^s)
  kEps,
  kWeightDecay,  // AdamW: 1 - lr_k wd (the factor p is multiplied by); Adam: wd
  kGradClip,     // optim.grad_clip (used when clipping is on)
  kEmaWeight0,   // EMA j: 1 - rate_k(j) at kEmaWeight0 + j
};

inline constexpr int kMaxEmas = 8;  // EMA pointers travel by value in the launch arguments

struct FlatUpdateArgs {
  int64_t n = 0;  // elements of every buffer
  float* params = nullptr;
  const float* grads = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  float* ema[kMaxEmas] = {};
  int ema_count = 0;
  const float* scalars = nullptr;    // FlatScalar layout
  const float* loss = nullptr;       // the step's loss (a float32 scalar on the device)
  const float* grad_norm = nullptr;  // the global L2 norm of grads before clipping
  bool clip = false;                 // optim.grad_clip > 0
  bool weight_decay = false;         // wd != 0
  bool decoupled = false;            // AdamW
};

// Launches the update on `stream` (a cudaStream_t). Returns a cudaError_t value (0: launched).
int flat_update(const FlatUpdateArgs& args, void* stream);

}  // namespace dmtrain::optim::flat
