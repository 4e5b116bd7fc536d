#include "dmtrain/eval/landscape.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>

#include "dmtrain/util/error.hpp"

namespace dmtrain::eval {
namespace {

// Flat float64 views of parameter-shaped lists (the Lanczos vectors live flat).
at::Tensor flatten(const std::vector<at::Tensor>& xs) {
  std::vector<at::Tensor> flat;
  flat.reserve(xs.size());
  for (const auto& x : xs) flat.push_back(x.reshape({-1}));
  return at::cat(flat);
}

std::vector<at::Tensor> unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& like) {
  std::vector<at::Tensor> out;
  out.reserve(like.size());
  int64_t at_ = 0;
  for (const auto& l : like) {
    out.push_back(flat.narrow(0, at_, l.numel()).view(l.sizes()).to(l.scalar_type()));
    at_ += l.numel();
  }
  return out;
}

double dot64(const at::Tensor& a, const at::Tensor& b) {
  return at::dot(a.to(at::kDouble), b.to(at::kDouble)).item<double>();
}

}  // namespace

MathAttentionGuard::MathAttentionGuard() {
  auto& ctx = at::globalContext();
  flash_ = ctx.userEnabledFlashSDP();
  mem_efficient_ = ctx.userEnabledMemEfficientSDP();
  cudnn_ = ctx.userEnabledCuDNNSDP();
  math_ = ctx.userEnabledMathSDP();
  ctx.setSDPUseFlash(false);
  ctx.setSDPUseMemEfficient(false);
  ctx.setSDPUseCuDNN(false);
  ctx.setSDPUseMath(true);
}

MathAttentionGuard::~MathAttentionGuard() {
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(flash_);
  ctx.setSDPUseMemEfficient(mem_efficient_);
  ctx.setSDPUseCuDNN(cudnn_);
  ctx.setSDPUseMath(math_);
}

FixedBatch make_fixed_batch(const at::Tensor& images, const at::Tensor& labels,
                            int64_t num_timesteps, uint64_t seed, at::Device device) {
  if (images.dim() != 4 || images.scalar_type() != at::kByte || images.size(0) < 1) {
    throw Error(c10::str("landscape: images must be uint8 N,H,W,C with N >= 1, got ",
                         images.scalar_type(), " ", images.sizes()));
  }
  const int64_t n = images.size(0);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  FixedBatch b;
  b.x_start = images.permute({0, 3, 1, 2}).to(at::kFloat).div(127.5).sub(1.0).contiguous();
  b.t = at::randint(0, num_timesteps, {n}, gen, at::kLong);
  b.noise = at::randn(b.x_start.sizes(), gen, at::kFloat);
  b.x_start = b.x_start.to(device);
  b.t = b.t.to(device);
  b.noise = b.noise.to(device);
  if (labels.defined()) b.y = labels.to(device, at::kLong);
  return b;
}

at::Tensor fixed_batch_loss(const diffusion::GaussianDiffusion& diffusion,
                            const diffusion::ModelFn& model, const FixedBatch& batch) {
  return diffusion.training_losses(model, batch.x_start, batch.t, batch.noise, batch.y).loss.mean();
}

std::vector<double> linspace(double lo, double hi, int64_t points) {
  if (points < 2) throw Error(c10::str("landscape: need at least 2 points, got ", points));
  std::vector<double> out;
  for (int64_t i = 0; i < points; ++i) {
    out.push_back(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(points - 1));
  }
  return out;
}

std::vector<LinePoint> loss_along_line(const std::vector<at::Tensor>& params,
                                       const std::vector<at::Tensor>& theta_a,
                                       const std::vector<at::Tensor>& theta_b,
                                       const std::vector<double>& alphas, const LossFn& loss) {
  if (theta_a.size() != params.size() || theta_b.size() != params.size()) {
    throw Error(c10::str("landscape: the models have ", theta_a.size(), " and ", theta_b.size(),
                         " parameter tensors, the evaluated model ", params.size(),
                         " (different architectures?)"));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (theta_a[i].sizes() != params[i].sizes() || theta_b[i].sizes() != params[i].sizes()) {
      throw Error(c10::str("landscape: parameter ", i, " has shapes ", theta_a[i].sizes(), " / ",
                           theta_b[i].sizes(), ", expected ", params[i].sizes()));
    }
  }
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> saved;
  saved.reserve(params.size());
  for (const auto& p : params) saved.push_back(p.detach().clone());
  std::vector<LinePoint> out;
  for (double a : alphas) {
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor ta = theta_a[i].to(params[i].device(), params[i].scalar_type());
      const at::Tensor tb = theta_b[i].to(params[i].device(), params[i].scalar_type());
      // (1 - a) theta_A + a theta_B, written so a = 0 and a = 1 reproduce the endpoints exactly.
      params[i].detach().copy_(a == 1.0 ? tb : ta + (tb - ta) * a);
    }
    out.push_back({a, loss().item<double>()});
  }
  for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(saved[i]);
  return out;
}

HvpFn make_hvp(const LossFn& loss, const std::vector<at::Tensor>& params) {
  TORCH_CHECK(!params.empty(), "make_hvp: no parameters");
  std::vector<at::Tensor> grads;
  {
    MathAttentionGuard math;
    at::AutoGradMode grad_mode(true);
    const at::Tensor l = loss();
    TORCH_CHECK(l.numel() == 1 && l.requires_grad(),
                "make_hvp: the loss must be a scalar that depends on the parameters");
    grads = torch::autograd::grad({l}, params, {}, /*retain_graph=*/true, /*create_graph=*/true,
                                  /*allow_unused=*/true);
  }
  // Parameters the loss does not touch have zero gradient and zero Hessian rows.
  std::vector<at::Tensor> used_grads, used_params;
  std::vector<size_t> used;
  for (size_t i = 0; i < params.size(); ++i) {
    if (grads[i].defined() && grads[i].requires_grad()) {
      used.push_back(i);
      used_grads.push_back(grads[i]);
      used_params.push_back(params[i]);
    }
  }
  return [used_grads, used_params, used, params](const std::vector<at::Tensor>& v) {
    TORCH_CHECK(v.size() == params.size(), "hvp: vector has ", v.size(), " parts, expected ",
                params.size());
    std::vector<at::Tensor> out;
    for (const auto& p : params) out.push_back(at::zeros_like(p));
    if (used.empty()) return out;
    std::vector<at::Tensor> vs;
    for (size_t i : used) vs.push_back(v[i].to(params[i].scalar_type()));
    at::AutoGradMode grad_mode(true);
    const auto hv = torch::autograd::grad(used_grads, used_params, vs, /*retain_graph=*/true,
                                          /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t j = 0; j < used.size(); ++j) {
      if (hv[j].defined()) out[used[j]] = hv[j].detach();
    }
    return out;
  };
}

std::vector<double> top_hessian_eigenvalues(const HvpFn& hvp, const std::vector<at::Tensor>& like,
                                            const LanczosOptions& o) {
  if (o.k < 1 || o.steps < 1) {
    throw Error(
        c10::str("hessian: need k >= 1 and steps >= 1, got k = ", o.k, ", steps = ", o.steps));
  }
  int64_t dim = 0;
  for (const auto& l : like) dim += l.numel();
  const int64_t steps = std::min(o.steps, dim);
  const auto opts = like[0].options().dtype(at::kDouble).requires_grad(false);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  at::Tensor v = at::randn({dim}, gen, at::kDouble).to(opts.device());
  v = v / std::sqrt(dot64(v, v));
  std::vector<at::Tensor> basis;
  std::vector<double> alpha, beta;
  at::NoGradGuard no_grad;
  for (int64_t j = 0; j < steps; ++j) {
    basis.push_back(v);
    at::Tensor w = flatten(hvp(unflatten(v, like))).to(at::kDouble);
    const double a = dot64(w, v);
    alpha.push_back(a);
    // Full reorthogonalisation (twice, "twice is enough"): keeps the Ritz values free of the
    // spurious copies plain three-term Lanczos produces in floating point.
    for (int pass = 0; pass < 2; ++pass) {
      for (const auto& q : basis) w = w - q * dot64(w, q);
    }
    const double b = std::sqrt(std::max(dot64(w, w), 0.0));
    if (j + 1 == steps || b <= 1e-10 * std::max(1.0, std::abs(a))) break;  // invariant subspace
    beta.push_back(b);
    v = w / b;
  }
  const int64_t m = static_cast<int64_t>(alpha.size());
  at::Tensor tri = at::zeros({m, m}, at::kDouble);
  for (int64_t i = 0; i < m; ++i) {
    tri[i][i] = alpha[static_cast<size_t>(i)];
    if (i + 1 < m) tri[i][i + 1] = tri[i + 1][i] = beta[static_cast<size_t>(i)];
  }
  const at::Tensor ritz = std::get<0>(at::linalg_eigvalsh(tri).sort(0, /*descending=*/true));
  std::vector<double> out;
  for (int64_t i = 0; i < std::min(o.k, m); ++i) out.push_back(ritz[i].item<double>());
  return out;
}

}  // namespace dmtrain::eval
