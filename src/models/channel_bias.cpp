// Implementation of dmtrain/models/channel_bias.hpp.
#include "dmtrain/models/channel_bias.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <variant>
#include <vector>

#ifdef DMTRAIN_HAS_FUSED_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "channel_bias_cuda.hpp"
#include "kernel_tensors.hpp"
#endif

namespace dmtrain::models {
namespace {

at::Tensor reference_add(const at::Tensor& y, const at::Tensor& bias) {
  std::vector<int64_t> shape(static_cast<size_t>(y.dim()), 1);
  shape[1] = y.size(1);
  return y + bias.to(y.scalar_type()).view(shape);
}

#ifdef DMTRAIN_HAS_FUSED_KERNELS
using detail::element_type;
using detail::is_channels_last_dense;

// y is dense NCHW or dense channels-last (kernels_apply); a tensor that is both (one pixel or one
// channel) reads the same either way.
cuda::ChannelBiasShape shape_of(const at::Tensor& y) {
  cuda::ChannelBiasShape s;
  s.n = y.size(0);
  s.c = y.size(1);
  s.hw = y.numel() / (s.n * s.c);
  s.channels_last = !y.is_contiguous();
  return s;
}

bool kernels_apply(const at::Tensor& y, const at::Tensor& bias) {
  const auto t = y.scalar_type();
  return y.is_cuda() && y.dim() >= 3 && y.numel() > 0 && bias.scalar_type() == at::kFloat &&
         bias.is_contiguous() && bias.numel() == y.size(1) &&
         (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf) &&
         (y.is_contiguous() || is_channels_last_dense(y));
}

struct AddChannelBias : public torch::autograd::Function<AddChannelBias> {
  static at::Tensor forward(torch::autograd::AutogradContext* /*ctx*/, const at::Tensor& y,
                            const at::Tensor& bias) {
    const c10::cuda::CUDAGuard guard(y.device());
    at::Tensor out = at::empty_like(y);
    const int err = cuda::channel_bias_add(element_type(y.scalar_type()), shape_of(y), y.data_ptr(),
                                           bias.data_ptr<float>(), out.data_ptr(),
                                           c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == 0, "add_channel_bias: kernel launch failed (CUDA error ", err, ")");
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* /*ctx*/,
                                                 torch::autograd::variable_list grads) {
    at::Tensor g = grads[0];
    const bool layout_ok = g.is_contiguous() || is_channels_last_dense(g);
    if (!layout_ok) g = g.contiguous();
    const c10::cuda::CUDAGuard guard(g.device());
    const auto s = shape_of(g);
    at::Tensor partial =
        at::empty({cuda::channel_bias_partial_rows(s), s.c}, g.options().dtype(at::kFloat));
    const int err = cuda::channel_bias_grad(element_type(g.scalar_type()), s, g.data_ptr(),
                                            partial.data_ptr<float>(),
                                            c10::cuda::getCurrentCUDAStream().stream());
    at::Tensor grad_bias;
    if (err == -1) {  // not taken: a wide channels-last row
      std::vector<int64_t> dims{0};
      for (int64_t d = 2; d < g.dim(); ++d) dims.push_back(d);
      grad_bias = g.sum(dims, /*keepdim=*/false, at::kFloat);
    } else {
      TORCH_CHECK(err == 0, "add_channel_bias: gradient kernel launch failed (CUDA error ", err,
                  ")");
      grad_bias = partial.sum(0);
    }
    return {grads[0], grad_bias};
  }
};
#endif

}  // namespace

at::Tensor add_channel_bias(const at::Tensor& y, const at::Tensor& bias) {
#ifdef DMTRAIN_HAS_FUSED_KERNELS
  if (kernels_apply(y, bias)) return AddChannelBias::apply(y, bias);
#endif
  return reference_add(y, bias);
}

at::Tensor conv2d_forward(torch::nn::Conv2dImpl& conv, const at::Tensor& x, bool fast_bias) {
  const auto& o = conv.options;
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!fast_bias || !conv.bias.defined() || padding == nullptr ||
      !std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode())) {
    return conv.forward(x);
  }
  const at::Tensor y =
      at::conv2d(x, conv.weight, /*bias=*/{}, o.stride(), *padding, o.dilation(), o.groups());
  return add_channel_bias(y, conv.bias);
}

}  // namespace dmtrain::models
