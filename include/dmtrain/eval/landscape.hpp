// Loss landscape probes of paper Sec. 3.3 (after Li et al.'s 1D interpolation and Hessian
// spectrum): (a) the training loss along the straight line theta(a) = (1 - a) theta_A + a theta_B
// between two checkpoints, and (b) the top eigenvalues of the Hessian of the loss w.r.t. the
// parameters, by Lanczos on Hessian-vector products.
//
// Every number is measured on one FixedBatch -- images, timesteps t and noise drawn once from a
// seed -- so the loss is a deterministic function of the parameters (the model must be in eval
// mode: dropout would make it random). The loss is the diffusion's training loss
// (GaussianDiffusion::training_losses, the configured mse/kl/rescaled variant) averaged over the
// batch, i.e. the objective the optimizer sees with uniform timesteps and no loss weighting.
//
// Parameters are passed as the live tensors of a module (module->parameters()); loss_along_line
// overwrites them in place for each a and restores the original values before returning.
//
// Hessian-vector products are a double backward: g = d loss / d theta with create_graph = true,
// then d (g . v) / d theta. The gradient graph is built once per make_hvp and reused for every
// product. Double backward needs every op of the model to have a twice-differentiable backward:
// GroupNorm and the matmul/softmax attention do, but the fused scaled_dot_product_attention
// kernels do not (on the CPU: "derivative for _scaled_dot_product_flash_attention_for_cpu_backward
// is not implemented"; CUDA flash / memory-efficient kernels likewise). MathAttentionGuard
// therefore switches SDPA to its math backend (at::globalContext() flags, process-wide, restored
// on destruction) while make_hvp builds the graph. Same numbers, more memory. dmtrain's fused
// GroupNorm kernels have a fixed-formula backward: the model's KernelOptions::fused_group_norm
// must be off (UNetModelImpl::set_kernels) while its Hessian is taken.
//
// Lanczos with full reorthogonalisation: `steps` Krylov vectors (each a full copy of the
// parameters, so memory is steps x model size), the Ritz values of the tridiagonal matrix as
// eigenvalue estimates, the k largest (algebraically) returned in decreasing order. With steps >=
// the number of parameters the result is exact up to round-off; the extreme eigenvalues converge
// first, which is why a few tens of steps suffice for the top ones.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/diffusion/model_fn.hpp"

namespace dmtrain::eval {

struct FixedBatch {
  at::Tensor x_start;  // float32 N,C,H,W in [-1, 1]
  at::Tensor t;        // int64 [N], uniform in [0, T)
  at::Tensor noise;    // float32 like x_start
  at::Tensor y;        // int64 [N] labels, or undefined
};

// images: uint8 N,H,W,C mapped with x / 127.5 - 1; t and noise from a CPU generator seeded
// `seed` (t first, then the noise), moved to `device`.
FixedBatch make_fixed_batch(const at::Tensor& images, const at::Tensor& labels,
                            int64_t num_timesteps, uint64_t seed, at::Device device = at::kCPU);

// mean over the batch of training_losses(...).loss; differentiable w.r.t. the model.
at::Tensor fixed_batch_loss(const diffusion::GaussianDiffusion& diffusion,
                            const diffusion::ModelFn& model, const FixedBatch& batch);

using LossFn = std::function<at::Tensor()>;  // the scalar loss at the current parameters

struct LinePoint {
  double alpha = 0.0;
  double loss = 0.0;
};

// `points` values evenly spaced over [lo, hi] (both ends included); points >= 2.
std::vector<double> linspace(double lo, double hi, int64_t points);

// loss((1 - a) theta_a + a theta_b) for each a (no gradients). params, theta_a and theta_b are
// lists of tensors of equal shapes. Throws dmtrain::Error if the lists do not match (checkpoints
// of different architectures).
std::vector<LinePoint> loss_along_line(const std::vector<at::Tensor>& params,
                                       const std::vector<at::Tensor>& theta_a,
                                       const std::vector<at::Tensor>& theta_b,
                                       const std::vector<double>& alphas, const LossFn& loss);

// v -> H v (lists shaped like the parameters).
using HvpFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& v)>;

// Evaluates loss() once (under MathAttentionGuard) and its gradient w.r.t. params with
// create_graph; the returned function keeps that graph alive. Changing the parameters in place
// afterwards invalidates it (autograd then reports a modified saved variable): make a new one.
HvpFn make_hvp(const LossFn& loss, const std::vector<at::Tensor>& params);

struct LanczosOptions {
  int64_t k = 3;       // eigenvalues returned
  int64_t steps = 20;  // Krylov dimension (capped at the number of parameters)
  uint64_t seed = 0;   // the random start vector
};

// The k largest Ritz values (decreasing). `like` gives the shapes, dtype and device of vectors.
std::vector<double> top_hessian_eigenvalues(const HvpFn& hvp, const std::vector<at::Tensor>& like,
                                            const LanczosOptions& options);

// Routes at::scaled_dot_product_attention to its (twice differentiable) math backend while alive.
class MathAttentionGuard {
 public:
  MathAttentionGuard();
  ~MathAttentionGuard();
  MathAttentionGuard(const MathAttentionGuard&) = delete;
  MathAttentionGuard& operator=(const MathAttentionGuard&) = delete;

 private:
  bool flash_, mem_efficient_, cudnn_, math_;
};

}  // namespace dmtrain::eval
