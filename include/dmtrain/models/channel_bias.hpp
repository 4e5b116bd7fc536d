// Convolutions whose bias is added by dmtrain's own kernels (train.fast_conv_bias).
//
//   h = conv2d_forward(*conv, x);   // conv->forward(x), or the bias-free convolution + the bias
//
// LibTorch runs a biased convolution on cuDNN as the bias-free convolution followed by a
// broadcasting add of the bias (a non-vectorised element-wise pass over the output) and takes the
// bias gradient as a sum over the gradient's N, H and W. With the switch on, on CUDA, the bias is
// added by one vectorised pass (rounded to the output's type first, as autocast does with the
// bias it casts) and its gradient is taken by row or column sums of our own, in float32 (one
// rounding less than the bf16 sum autocast takes); on the CPU the same split runs on ATen ops (so
// that it is tested there). With the switch off (the default until it is measured on a GPU),
// conv->forward(x) as before. Same weights, same results up to the order of the sums.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/modules/conv.h>

namespace dmtrain::models {

// `fast_bias` (KernelOptions::fast_conv_bias): the bias-free convolution + add_channel_bias;
// else conv.forward(x).
at::Tensor conv2d_forward(torch::nn::Conv2dImpl& conv, const at::Tensor& x, bool fast_bias);

// y + bias[c] for y [N, C, *] (dense NCHW or channels-last), bias float32 [C], differentiable in
// both; the kernels above on CUDA, ATen ops elsewhere.
at::Tensor add_channel_bias(const at::Tensor& y, const at::Tensor& bias);

}  // namespace dmtrain::models
