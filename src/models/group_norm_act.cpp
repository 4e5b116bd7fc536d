#include "dmtrain/models/group_norm_act.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>

#ifdef DMTRAIN_HAS_FUSED_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "group_norm_act_cuda.hpp"
#include "kernel_tensors.hpp"
#endif

namespace dmtrain::models {

bool fused_kernels_built() {
#ifdef DMTRAIN_HAS_FUSED_KERNELS
  return true;
#else
  return false;
#endif
}

at::Tensor group_norm_act_reference(const at::Tensor& x, int64_t num_groups,
                                    const at::Tensor& weight, const at::Tensor& bias, double eps,
                                    const at::Tensor& scale, const at::Tensor& shift, bool silu) {
  // The references' GroupNorm32: normalise in float32, cast back, then scale/shift and SiLU in
  // the activations' dtype.
  at::Tensor h =
      at::group_norm(x.to(at::kFloat), num_groups, weight.to(at::kFloat), bias.to(at::kFloat), eps)
          .to(x.scalar_type());
  if (scale.defined()) h = h * (1 + scale) + shift;
  return silu ? at::silu(h) : h;
}

#ifdef DMTRAIN_HAS_FUSED_KERNELS
namespace {

using detail::element_type;
using detail::is_channels_last_dense;

cuda::GroupNormActShape shape_of(const at::Tensor& x, int64_t groups) {
  cuda::GroupNormActShape s;
  s.n = x.size(0);
  s.c = x.size(1);
  s.hw = x.numel() / (s.n * s.c);
  s.groups = groups;
  s.channels_last = !x.is_contiguous();  // the only other layout fused_path_applies lets in
  return s;
}

// `t` in x's dtype and exactly x's strides (the kernels index both the same way).
at::Tensor like_x(const at::Tensor& t, const at::Tensor& x) {
  if (t.scalar_type() == x.scalar_type() && t.strides() == x.strides()) return t;
  at::Tensor out = at::empty_like(x);
  out.copy_(t);
  return out;
}

// [N, C] float32 copies of scale/shift (given as [N, C, 1, 1] slices of the embedding output).
at::Tensor per_sample(const at::Tensor& v, int64_t n, int64_t c) {
  return v.defined() ? v.reshape({n, c}).to(at::kFloat).contiguous() : at::Tensor();
}

// Scratch memory for the channels-last kernels that read whole pixel rows
// (group_norm_act_nhwc_tiled.cu); undefined (the per-(sample, group) kernels) for NCHW or with
// those kernels switched off.
at::Tensor workspace_for(const cuda::GroupNormActShape& s, const at::Tensor& x, bool rows) {
  if (!s.channels_last || !rows) return at::Tensor();
  const int64_t n = cuda::group_norm_act_workspace(s);
  if (n == 0) return at::Tensor();
  return at::empty({n}, x.options().dtype(at::kFloat));
}

const float* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<float>() : nullptr;
}

void check_launch(int err, const char* what) {
  TORCH_CHECK(err == 0, "group_norm_act: ", what,
              " kernel launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}

// The op's forward and backward, shared by the two autograd Functions below (LibTorch's custom
// Functions cannot take undefined tensors, so "no scale/shift" is a Function of its own).
at::Tensor fused_forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                         const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& scale,
                         const at::Tensor& shift, int64_t groups, double eps, bool silu, bool rows,
                         bool cached) {
  const c10::cuda::CUDAGuard guard(x.device());
  const auto s = shape_of(x, groups);
  const at::Tensor gamma = weight.to(at::kFloat).contiguous();
  const at::Tensor beta = bias.to(at::kFloat).contiguous();
  const at::Tensor sc = per_sample(scale, s.n, s.c), sh = per_sample(shift, s.n, s.c);
  at::Tensor y = at::empty_like(x);
  const auto stats_opts = x.options().dtype(at::kFloat);
  at::Tensor mean = at::empty({s.n * groups}, stats_opts);
  at::Tensor rstd = at::empty({s.n * groups}, stats_opts);
  const at::Tensor ws = workspace_for(s, x, rows);
  check_launch(cuda::group_norm_act_forward(
                   element_type(x.scalar_type()), s, x.data_ptr(), gamma.data_ptr<float>(),
                   beta.data_ptr<float>(), ptr_or_null(sc), ptr_or_null(sh), silu,
                   static_cast<float>(eps), y.data_ptr(), mean.data_ptr<float>(),
                   rstd.data_ptr<float>(), ws.defined() ? ws.data_ptr<float>() : nullptr,
                   c10::cuda::getCurrentCUDAStream().stream()),
               "forward");
  if (sc.defined()) {
    ctx->save_for_backward({x, weight, bias, mean, rstd, sc, sh});
    ctx->saved_data["scale_dim"] = scale.dim();
    ctx->saved_data["scale_type"] = scale.scalar_type();
  } else {
    ctx->save_for_backward({x, weight, bias, mean, rstd});
  }
  ctx->saved_data["groups"] = groups;
  ctx->saved_data["silu"] = silu;
  ctx->saved_data["rows"] = rows;  // the backward takes the forward's kernel choices
  ctx->saved_data["cached"] = cached;
  return y;
}

// {dL/dx, dL/dweight, dL/dbias, dL/dscale, dL/dshift} (the last two undefined without them).
std::vector<at::Tensor> fused_backward(torch::autograd::AutogradContext* ctx,
                                       const at::Tensor& grad_out) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2], &mean = saved[3],
                   &rstd = saved[4];
  const at::Tensor sc = saved.size() > 5 ? saved[5] : at::Tensor();
  const at::Tensor sh = saved.size() > 6 ? saved[6] : at::Tensor();
  const int64_t groups = ctx->saved_data["groups"].toInt();
  const bool silu = ctx->saved_data["silu"].toBool();
  const bool rows = ctx->saved_data["rows"].toBool();
  const bool cached = ctx->saved_data["cached"].toBool();
  const c10::cuda::CUDAGuard guard(x.device());
  const auto s = shape_of(x, groups);
  const at::Tensor gamma = weight.to(at::kFloat).contiguous();
  const at::Tensor beta = bias.to(at::kFloat).contiguous();
  const at::Tensor grad_y = like_x(grad_out, x);
  at::Tensor grad_x = at::empty_like(x);
  const auto opts = x.options().dtype(at::kFloat);
  at::Tensor sum_dy = at::empty({s.n, s.c}, opts), sum_dy_xhat = at::empty({s.n, s.c}, opts);
  const at::Tensor ws = workspace_for(s, x, rows);
  check_launch(
      cuda::group_norm_act_backward(
          element_type(x.scalar_type()), s, grad_y.data_ptr(), x.data_ptr(), mean.data_ptr<float>(),
          rstd.data_ptr<float>(), gamma.data_ptr<float>(), beta.data_ptr<float>(), ptr_or_null(sc),
          ptr_or_null(sh), silu, grad_x.data_ptr(), sum_dy.data_ptr<float>(),
          sum_dy_xhat.data_ptr<float>(), ws.defined() ? ws.data_ptr<float>() : nullptr,
          c10::cuda::getCurrentCUDAStream().stream(), cached),
      "backward");
  // Per (n, c): dL/dshift = sum_dy; dL/dscale = sum over pixels of dL/dpre * GN(x)
  // = gamma * sum_dy_xhat + beta * sum_dy; dL/dgamma, dL/dbeta: the same through (1 + scale),
  // summed over the batch.
  at::Tensor grad_scale, grad_shift, dg = sum_dy_xhat, db = sum_dy;
  if (sc.defined()) {
    std::vector<int64_t> shape{s.n, s.c};
    shape.resize(static_cast<size_t>(ctx->saved_data["scale_dim"].toInt()), 1);
    const auto type = ctx->saved_data["scale_type"].toScalarType();
    grad_shift = sum_dy.view(shape).to(type);
    grad_scale = (sum_dy_xhat * gamma + sum_dy * beta).view(shape).to(type);
    dg = sum_dy_xhat * (1 + sc);
    db = sum_dy * (1 + sc);
  }
  return {grad_x, dg.sum(0).to(weight.scalar_type()), db.sum(0).to(bias.scalar_type()), grad_scale,
          grad_shift};
}

struct GroupNormActFunction : public torch::autograd::Function<GroupNormActFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias, int64_t groups,
                            double eps, bool silu, bool rows, bool cached) {
    return fused_forward(ctx, x, weight, bias, {}, {}, groups, eps, silu, rows, cached);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto g = fused_backward(ctx, grads[0]);
    return {g[0], g[1], g[2], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct GroupNormScaleShiftActFunction
    : public torch::autograd::Function<GroupNormScaleShiftActFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& scale, const at::Tensor& shift, int64_t groups,
                            double eps, bool silu, bool rows, bool cached) {
    return fused_forward(ctx, x, weight, bias, scale, shift, groups, eps, silu, rows, cached);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto g = fused_backward(ctx, grads[0]);
    return {g[0],         g[1],         g[2],         g[3],         g[4],
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool fused_path_applies(const at::Tensor& x, int64_t groups) {
  if (!x.is_cuda() || x.dim() < 3) return false;
  const auto t = x.scalar_type();
  if (t != at::kFloat && t != at::kBFloat16 && t != at::kHalf) return false;
  if (x.numel() == 0 || x.size(1) % groups != 0) return false;
  if (!x.is_contiguous() && !is_channels_last_dense(x)) return false;
  // Group lengths are indexed with 32-bit integers in the kernels.
  if (x.numel() / (x.size(0) * groups) >= (int64_t{1} << 31)) return false;
  return cuda::group_norm_act_supported(shape_of(x, groups));
}

}  // namespace
#endif

at::Tensor group_norm_act(const at::Tensor& x, int64_t num_groups, const at::Tensor& weight,
                          const at::Tensor& bias, double eps, const at::Tensor& scale,
                          const at::Tensor& shift, bool silu, const KernelOptions& kernels) {
  TORCH_CHECK(scale.defined() == shift.defined(), "group_norm_act: scale and shift go together");
#ifdef DMTRAIN_HAS_FUSED_KERNELS
  if (kernels.fused_group_norm && fused_path_applies(x, num_groups)) {
    const bool rows = kernels.group_norm_rows, cached = kernels.group_norm_cached_backward;
    if (scale.defined()) {
      return GroupNormScaleShiftActFunction::apply(x, weight, bias, scale, shift, num_groups, eps,
                                                   silu, rows, cached);
    }
    return GroupNormActFunction::apply(x, weight, bias, num_groups, eps, silu, rows, cached);
  }
#else
  (void)kernels;
#endif
  return group_norm_act_reference(x, num_groups, weight, bias, eps, scale, shift, silu);
}

}  // namespace dmtrain::models
