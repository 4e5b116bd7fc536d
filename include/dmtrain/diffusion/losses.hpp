// Likelihood helpers of the diffusion losses (ID/GD losses.py, after Ho et al.), in nats.
//
// Contract: pure, element-wise, broadcasting functions on float tensors; the evaluation order of
// every formula follows the reference so float32 results agree to rounding.
#pragma once
#include <ATen/ATen.h>

namespace dmtrain::diffusion {

// KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), element-wise.
at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2);

// 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))): the tanh approximation of Phi(x).
at::Tensor approx_standard_normal_cdf(const at::Tensor& x);

// log P(bin of x) under N(means, exp(log_scales)^2), bins of width 2/255 over [-1, 1] with the
// outermost bins extended to -inf / +inf (x < -0.999 or x > 0.999). x is uint8 data rescaled to
// [-1, 1]; all three tensors have the same shape. Probabilities are clamped at 1e-12.
at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales);

// Mean over all dimensions but the first (batch): [N, ...] -> [N].
at::Tensor mean_flat(const at::Tensor& x);

}  // namespace dmtrain::diffusion
