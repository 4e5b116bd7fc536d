// Private interface between channel_bias.cpp (LibTorch side) and channel_bias_cuda.cu (raw CUDA
// kernels, free of LibTorch headers). y, out and grad are dense [N, C, HW] (NCHW) or, with
// channels_last, [N, HW, C] in memory; bias float32 [C]; partial float32, sized by
// channel_bias_partial_rows(). All device pointers; the functions return a cudaError_t value.
#pragma once
#include <cstdint>

#include "group_norm_act_cuda.hpp"  // ElementType

namespace dmtrain::models::cuda {

struct ChannelBiasShape {
  int64_t n = 0, c = 0, hw = 0;
  bool channels_last = false;
};

// out = y + bias[c], the bias rounded to y's type first (as LibTorch's autocast convolution
// adds a bias it has cast).
int channel_bias_add(ElementType type, ChannelBiasShape shape, const void* y, const float* bias,
                     void* out, void* stream);

// Rows of the float32 partial sums channel_bias_grad writes: partial[rows][C], whose sum over
// rows is the gradient of the bias.
int64_t channel_bias_partial_rows(ChannelBiasShape shape);
// -1: not taken (channels-last with more than 256 packs in a pixel row).
int channel_bias_grad(ElementType type, ChannelBiasShape shape, const void* grad, float* partial,
                      void* stream);

}  // namespace dmtrain::models::cuda
