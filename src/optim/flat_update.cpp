// Flat buffers and the fused optimizer + EMA update (flat_update.hpp): flattening, the per-step
// scalars, the ATen reference of the update and the launch of the CUDA kernel
// (flat_update_cuda.cu).
#include "dmtrain/optim/flat_update.hpp"

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>

#include <cmath>

#include "dmtrain/util/error.hpp"
#include "flat_update_cuda.hpp"

#ifdef DMTRAIN_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace dmtrain::optim {
namespace {

MdlrcAdamParamState* state_of(MdlrcAdam& optimizer, const at::Tensor& p) {
  auto& states = optimizer.state();
  auto it = states.find(p.unsafeGetTensorImpl());
  return it == states.end() ? nullptr : static_cast<MdlrcAdamParamState*>(it->second.get());
}

const MdlrcAdamOptions& group_options(const MdlrcAdam& optimizer) {
  return static_cast<const MdlrcAdamOptions&>(optimizer.param_groups().front().options());
}

// The step every parameter's state has (0 when none has state yet); -1 when they differ.
int64_t common_step(MdlrcAdam& optimizer, const std::vector<at::Tensor>& params) {
  int64_t step = -1;
  for (const auto& p : params) {
    const MdlrcAdamParamState* st = state_of(optimizer, p);
    if (!st) continue;
    if (step >= 0 && st->step() != step) return -1;
    step = st->step();
  }
  return step < 0 ? 0 : step;
}

}  // namespace

std::string flat_unsupported(const std::vector<at::Tensor>& params, MdlrcAdam& optimizer,
                             const std::vector<std::vector<at::Tensor>>& ema_copies) {
  if (params.empty()) return "no parameters";
  const at::Device device = params.front().device();
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    if (p.scalar_type() != at::kFloat) return c10::str("parameter ", i, " is not float32");
    if (p.device() != device) return c10::str("parameter ", i, " is on another device");
    if (!p.is_non_overlapping_and_dense()) return c10::str("parameter ", i, " is not dense");
  }
  if (optimizer.param_groups().size() != 1) return "the optimizer has several param groups";
  const auto& group = optimizer.param_groups().front().params();
  bool same = group.size() == params.size();
  for (size_t i = 0; same && i < params.size(); ++i) {
    same = group[i].unsafeGetTensorImpl() == params[i].unsafeGetTensorImpl();
  }
  if (!same) return "the optimizer holds other parameters than the model";
  if (common_step(optimizer, params) < 0) return "the parameters' optimizer steps differ";
  if (ema_copies.size() > static_cast<size_t>(flat::kMaxEmas)) {
    return c10::str(ema_copies.size(), " EMAs (the fused update takes at most ", flat::kMaxEmas,
                    ")");
  }
  for (const auto& copies : ema_copies) {
    if (copies.size() != params.size()) return "the EMA copies do not match the parameters";
    for (size_t i = 0; i < params.size(); ++i) {
      if (copies[i].sizes() != params[i].sizes() || copies[i].scalar_type() != at::kFloat ||
          copies[i].device() != device) {
        return c10::str("EMA copy of parameter ", i, " does not match it");
      }
    }
  }
  return "";
}

FlatBuffers flatten(const std::vector<at::Tensor>& params, MdlrcAdam& optimizer,
                    const std::vector<std::vector<at::Tensor>>& ema_copies) {
  const std::string why = flat_unsupported(params, optimizer, ema_copies);
  if (!why.empty()) throw Error("flat optimizer buffers: " + why);
  at::NoGradGuard no_grad;
  int64_t n = 0;
  for (const auto& p : params) n += p.numel();
  const auto options = params.front().options().dtype(at::kFloat).requires_grad(false);
  FlatBuffers b;
  b.params = at::empty({n}, options);
  b.grads = at::zeros({n}, options);
  b.exp_avg = at::zeros({n}, options);
  b.exp_avg_sq = at::zeros({n}, options);
  for (size_t j = 0; j < ema_copies.size(); ++j) b.ema.push_back(at::empty({n}, options));
  const int64_t step = common_step(optimizer, params);
  int64_t offset = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    // The parameter's own strides (channels-last weights stay channels-last) in every buffer, so
    // that element e of each buffer belongs to the same weight.
    const auto slice = [&](const at::Tensor& flat) {
      return flat.as_strided(p.sizes(), p.strides(), offset);
    };
    at::Tensor pv = slice(b.params), gv = slice(b.grads);
    at::Tensor mv = slice(b.exp_avg), vv = slice(b.exp_avg_sq);
    pv.copy_(p);
    if (p.grad().defined()) gv.copy_(p.grad());
    MdlrcAdamParamState* st = state_of(optimizer, p);
    if (st) {
      if (st->exp_avg().defined()) mv.copy_(st->exp_avg());
      if (st->exp_avg_sq().defined()) vv.copy_(st->exp_avg_sq());
    } else {
      auto fresh = std::make_unique<MdlrcAdamParamState>();
      fresh->step(step);
      st = fresh.get();
      optimizer.state()[p.unsafeGetTensorImpl()] = std::move(fresh);
    }
    for (size_t j = 0; j < ema_copies.size(); ++j) {
      at::Tensor ev = slice(b.ema[j]);
      ev.copy_(ema_copies[j][i]);
      ema_copies[j][i].set_data(ev);  // the Ema's own tensor object, now on the buffer
    }
    // set_data keeps the tensor objects (the model's parameter, with its autograd identity and
    // the optimizer's state key) and moves their storage to the buffer.
    p.set_data(pv);
    p.mutable_grad() = gv;  // the backward accumulates into it in place (AccumulateGrad)
    st->exp_avg(mv);
    st->exp_avg_sq(vv);
    b.grad_views.push_back(gv);
    offset += p.numel();
  }
  return b;
}

FlatUpdateOptions flat_update_options(const MdlrcAdamOptions& o, double grad_clip) {
  FlatUpdateOptions f;
  f.clip = grad_clip > 0;
  f.weight_decay = o.weight_decay() != 0.0;
  f.decoupled = o.decoupled_weight_decay();
  return f;
}

at::Tensor flat_step_scalars(const MdlrcAdamOptions& o, int64_t k, int64_t s, double grad_clip,
                             const std::vector<double>& ema_weights) {
  TORCH_CHECK(s >= 1, "flat_step_scalars: the state step s must be >= 1, got ", s);
  const MdlrcSchedule sched = o.schedule();
  const double b1 = sched.beta1(k), lr = sched.lr(k);
  // As MdlrcAdam::step_plain: double arithmetic, each scalar rounded to float32 once (where
  // step_plain hands a double Scalar to a float32 tensor op).
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(s));
  const double bc2 = 1.0 - std::pow(o.beta2(), static_cast<double>(s));
  std::vector<float> v(flat::kEmaWeight0 + ema_weights.size());
  v[flat::kBeta1] = static_cast<float>(b1);
  v[flat::kOneMinusBeta1] = static_cast<float>(1.0 - b1);
  v[flat::kBeta2] = static_cast<float>(o.beta2());
  v[flat::kOneMinusBeta2] = static_cast<float>(1.0 - o.beta2());
  v[flat::kNegStepSize] = static_cast<float>(-lr / bc1);
  v[flat::kSqrtBc2] = static_cast<float>(std::sqrt(bc2));
  v[flat::kEps] = static_cast<float>(o.eps());
  v[flat::kWeightDecay] = static_cast<float>(
      o.decoupled_weight_decay() ? 1.0 - lr * o.weight_decay() : o.weight_decay());
  v[flat::kGradClip] = static_cast<float>(grad_clip);
  for (size_t j = 0; j < ema_weights.size(); ++j) {
    v[flat::kEmaWeight0 + j] = static_cast<float>(ema_weights[j]);
  }
  return at::tensor(v, at::kFloat);
}

at::Tensor flat_update_reference(FlatBuffers& b, const at::Tensor& loss, const at::Tensor& scalars,
                                 const FlatUpdateOptions& o) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(scalars.dim() == 1 && scalars.size(0) == flat::kEmaWeight0 + int64_t(b.ema.size()),
              "flat_update: scalars do not match the buffers' EMAs");
  const auto sc = [&](int i) { return scalars.select(0, i); };  // 0-dim: no host read
  const at::Tensor norm = at::linalg_vector_norm(b.grads, 2).to(at::kFloat);
  const at::Tensor finite = at::isfinite(loss.to(at::kFloat)).logical_and(at::isfinite(norm));
  at::Tensor g = b.grads;
  // clip_grad_norm_'s coefficient, with its arithmetic: clamp(max_norm / (norm + 1e-6), max=1).
  if (o.clip) g = g * at::clamp_max(sc(flat::kGradClip) / (norm + 1e-6), 1.0);
  at::Tensor p = b.params;
  if (o.weight_decay) {
    if (o.decoupled) {
      p = p * sc(flat::kWeightDecay);
    } else {
      g = g + sc(flat::kWeightDecay) * p;
    }
  }
  // step_plain's order of operations; where it passes a double Scalar (m.add_(g, 1 - b1)), the
  // CPU kernels may evaluate a * s + b as one FMA, here two roundings (see the tests' tolerance).
  const at::Tensor m = b.exp_avg * sc(flat::kBeta1) + sc(flat::kOneMinusBeta1) * g;
  const at::Tensor v = b.exp_avg_sq * sc(flat::kBeta2) + sc(flat::kOneMinusBeta2) * g * g;
  const at::Tensor denom = v.sqrt() / sc(flat::kSqrtBc2) + sc(flat::kEps);
  p = p + sc(flat::kNegStepSize) * m / denom;
  std::vector<at::Tensor> ema;
  for (size_t j = 0; j < b.ema.size(); ++j) {
    ema.push_back(at::lerp(b.ema[j], p, sc(flat::kEmaWeight0 + static_cast<int>(j))));
  }
  // Every write masked by the device-side flag: a non-finite step leaves all buffers as they were.
  b.params.copy_(at::where(finite, p, b.params));
  b.exp_avg.copy_(at::where(finite, m, b.exp_avg));
  b.exp_avg_sq.copy_(at::where(finite, v, b.exp_avg_sq));
  for (size_t j = 0; j < b.ema.size(); ++j) b.ema[j].copy_(at::where(finite, ema[j], b.ema[j]));
  return norm;
}

bool flat_update_kernel_available() {
#ifdef DMTRAIN_HAS_FLAT_UPDATE_KERNEL
  return true;
#else
  return false;
#endif
}

at::Tensor flat_update(FlatBuffers& b, const at::Tensor& loss, const at::Tensor& scalars,
                       const FlatUpdateOptions& o) {
#ifdef DMTRAIN_HAS_FLAT_UPDATE_KERNEL
  if (b.params.is_cuda()) {
    at::NoGradGuard no_grad;
    const c10::cuda::CUDAGuard guard(b.params.device());
    TORCH_CHECK(
        loss.scalar_type() == at::kFloat && loss.numel() == 1 && loss.device() == b.params.device(),
        "flat_update: the loss must be a float32 scalar on the buffers' device (got ",
        loss.scalar_type(), ", ", loss.numel(), " elements, on ", loss.device(), "; buffers on ",
        b.params.device(), ")");
    TORCH_CHECK(scalars.scalar_type() == at::kFloat && scalars.is_contiguous() &&
                    scalars.device() == b.params.device() &&
                    scalars.numel() == flat::kEmaWeight0 + int64_t(b.ema.size()),
                "flat_update: scalars must be float32 on the buffers' device, one per EMA more "
                "than the fixed ones");
    const at::Tensor norm = at::linalg_vector_norm(b.grads, 2);
    flat::FlatUpdateArgs a;
    a.n = b.numel();
    a.params = b.params.data_ptr<float>();
    a.grads = b.grads.data_ptr<float>();
    a.exp_avg = b.exp_avg.data_ptr<float>();
    a.exp_avg_sq = b.exp_avg_sq.data_ptr<float>();
    a.ema_count = static_cast<int>(b.ema.size());
    for (size_t j = 0; j < b.ema.size(); ++j) a.ema[j] = b.ema[j].data_ptr<float>();
    a.scalars = scalars.data_ptr<float>();
    a.loss = loss.data_ptr<float>();
    a.grad_norm = norm.data_ptr<float>();
    a.clip = o.clip;
    a.weight_decay = o.weight_decay;
    a.decoupled = o.decoupled;
    const int err = flat::flat_update(a, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == 0, "flat_update: kernel launch failed: ",
                cudaGetErrorString(static_cast<cudaError_t>(err)));
    return norm;
  }
#endif
  return flat_update_reference(b, loss, scalars, o);
}

// ---- FlatOptimizerStep ------------------------------------------------------------------------

struct FlatOptimizerStep::Pending {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  at::cuda::CUDAEvent copied;  // the last host-to-device copy of the scalars
  bool recorded = false;
#endif
};

FlatOptimizerStep::FlatOptimizerStep(const std::vector<at::Tensor>& params, MdlrcAdam& optimizer,
                                     const std::vector<std::vector<at::Tensor>>& ema_copies,
                                     EmaWeight ema_weight, double grad_clip)
    : optimizer_(optimizer),
      params_(params),
      buffers_(flatten(params, optimizer, ema_copies)),
      options_(flat_update_options(group_options(optimizer), grad_clip)),
      ema_weight_(std::move(ema_weight)),
      grad_clip_(grad_clip),
      pending_(std::make_unique<Pending>()) {
  const int64_t count = flat::kEmaWeight0 + static_cast<int64_t>(ema_copies.size());
  const bool cuda = buffers_.params.is_cuda();
  // Pinned, so the copy is asynchronous and capturable-order safe (the replay follows it on the
  // same stream); the device tensor's address is what the graph's kernel reads.
  host_scalars_ = at::empty({count}, at::TensorOptions().dtype(at::kFloat).pinned_memory(cuda));
  device_scalars_ = cuda ? at::empty({count}, buffers_.params.options()) : host_scalars_;
}

FlatOptimizerStep::~FlatOptimizerStep() = default;

void FlatOptimizerStep::prepare(int64_t k) {
  std::vector<double> weights;
  for (size_t j = 0; j < buffers_.ema.size(); ++j) weights.push_back(ema_weight_(j, k));
  const MdlrcAdamParamState* st = state_of(optimizer_, params_.front());
  const int64_t s = (st ? st->step() : 0) + 1;
  const at::Tensor values = flat_step_scalars(group_options(optimizer_), k, s, grad_clip_, weights);
#ifdef DMTRAIN_TORCH_HAS_CUDA
  // The previous copy may still be reading the pinned buffer (in practice the step's host sync
  // has waited for it already).
  if (pending_->recorded) pending_->copied.synchronize();
#endif
  host_scalars_.copy_(values);
  if (device_scalars_.is_cuda()) {
    device_scalars_.copy_(host_scalars_, /*non_blocking=*/true);
#ifdef DMTRAIN_TORCH_HAS_CUDA
    pending_->copied.record(c10::cuda::getCurrentCUDAStream());
    pending_->recorded = true;
#endif
  }
}

void FlatOptimizerStep::zero_grads() {
  buffers_.grads.zero_();
}

at::Tensor FlatOptimizerStep::update(const at::Tensor& loss) {
  return flat_update(buffers_, loss.to(at::kFloat), device_scalars_, options_);
}

void FlatOptimizerStep::commit(int64_t k) {
  for (const auto& p : params_) {
    MdlrcAdamParamState* st = state_of(optimizer_, p);
    TORCH_CHECK(st, "FlatOptimizerStep::commit: a parameter lost its optimizer state");
    st->step(st->step() + 1);
  }
  optimizer_.set_iteration(k + 1);
}

}  // namespace dmtrain::optim
