#include "dmtrain/optim/mdlrc_adam.hpp"

#include <ATen/ATen.h>
#include <c10/util/StringUtil.h>

#include <cmath>
#include <map>
#include <tuple>

#include "dmtrain/util/error.hpp"

namespace dmtrain::optim {

MdlrcAdamOptions::MdlrcAdamOptions(double lr) : lr_(lr) {}

MdlrcSchedule MdlrcAdamOptions::schedule() const {
  MdlrcSchedule s;
  s.momentum_decay = momentum_decay();
  s.lr_compensation = lr_compensation();
  s.beta1_0 = beta1();
  s.beta1_min = beta1_min();
  s.lr0 = lr();
  s.total_iterations = total_iterations();
  s.lr_schedule = lr_schedule();
  s.lr_min_ratio = lr_min_ratio();
  s.warmup_iterations = warmup_iterations();
  return s;
}

void MdlrcAdamOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(decoupled_weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr_compensation);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1_min);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(total_iterations);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(implementation);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr_schedule);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr_min_ratio);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(warmup_iterations);
}

void MdlrcAdamOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, decoupled_weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, momentum_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, lr_compensation);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1_min);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, total_iterations);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::string, implementation);
  // Added after the first checkpoints were written: older files have neither (constant lr).
  c10::IValue v;
  if (archive.try_read("lr_schedule", v)) lr_schedule(v.toStringRef());
  if (archive.try_read("lr_min_ratio", v)) lr_min_ratio(v.toDouble());
  if (archive.try_read("warmup_iterations", v)) warmup_iterations(v.toInt());  // later still
}

void validate(const MdlrcAdamOptions& o, const std::string& prefix) {
  validate(o.schedule(), prefix);
  if (!(o.beta2() >= 0.0 && o.beta2() < 1.0)) {
    throw Error(c10::str(prefix, ".beta2 = ", o.beta2(), ": expected a value in [0, 1)"));
  }
  if (!(o.eps() >= 0.0)) throw Error(c10::str(prefix, ".eps = ", o.eps(), ": expected >= 0"));
  if (!(o.weight_decay() >= 0.0)) {
    throw Error(c10::str(prefix, ".weight_decay = ", o.weight_decay(), ": expected >= 0"));
  }
  const auto& impl = o.implementation();
  if (impl != "auto" && impl != "plain" && impl != "fused") {
    throw Error(
        c10::str(prefix, ".implementation = '", impl, "': expected one of auto, plain, fused"));
  }
}

void MdlrcAdamParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}

void MdlrcAdamParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

MdlrcAdam::MdlrcAdam(const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
                     MdlrcAdamOptions defaults)
    : Optimizer(param_groups, std::make_unique<MdlrcAdamOptions>(defaults)) {
  validate(defaults);
  for (const auto& group : param_groups_) {
    validate(static_cast<const MdlrcAdamOptions&>(group.options()));
  }
}

void MdlrcAdam::set_iteration(int64_t k) {
  TORCH_CHECK(k >= 0, "MdlrcAdam::set_iteration: k must be >= 0, got ", k);
  iteration_ = k;
}

double MdlrcAdam::beta1(size_t group) const {
  TORCH_CHECK(group < param_groups_.size(), "MdlrcAdam::beta1: no param group ", group);
  return static_cast<const MdlrcAdamOptions&>(param_groups_[group].options())
      .schedule()
      .beta1(iteration_);
}

double MdlrcAdam::lr(size_t group) const {
  TORCH_CHECK(group < param_groups_.size(), "MdlrcAdam::lr: no param group ", group);
  return static_cast<const MdlrcAdamOptions&>(param_groups_[group].options())
      .schedule()
      .lr(iteration_);
}

MdlrcAdamParamState& MdlrcAdam::state_for(const torch::Tensor& p) {
  auto it = state_.find(p.unsafeGetTensorImpl());
  if (it == state_.end()) {
    auto s = std::make_unique<MdlrcAdamParamState>();
    s->step(0);
    s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
    s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
    it = state_.emplace(p.unsafeGetTensorImpl(), std::move(s)).first;
  }
  return static_cast<MdlrcAdamParamState&>(*it->second);
}

torch::Tensor MdlrcAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const MdlrcAdamOptions&>(group.options());
    const auto sched = o.schedule();
    const double b1 = sched.beta1(iteration_);
    const double lr_k = sched.lr(iteration_);
    std::vector<torch::Tensor> plain, fused;
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "MdlrcAdam does not support sparse gradients");
      const bool use_fused =
          o.implementation() == "fused" || (o.implementation() == "auto" && p.device().is_cuda());
      (use_fused ? fused : plain).push_back(p);
    }
    if (!plain.empty()) step_plain(o, b1, lr_k, plain);
    if (!fused.empty()) step_fused(o, b1, lr_k, fused);
  }
  ++iteration_;
  return loss;
}

void MdlrcAdam::step_plain(const MdlrcAdamOptions& o, double b1, double lr_k,
                           const std::vector<torch::Tensor>& params) {
  for (const auto& p : params) {
    auto grad = p.grad();
    auto& st = state_for(p);
    st.step(st.step() + 1);
    if (o.weight_decay() != 0.0) {
      if (o.decoupled_weight_decay()) {
        p.mul_(1.0 - lr_k * o.weight_decay());
      } else {
        grad = grad.add(p, o.weight_decay());
      }
    }
    auto& m = st.exp_avg();
    auto& v = st.exp_avg_sq();
    m.mul_(b1).add_(grad, 1.0 - b1);
    v.mul_(o.beta2()).addcmul_(grad, grad, 1.0 - o.beta2());
    const auto s = static_cast<double>(st.step());
    const double bc1 = 1.0 - std::pow(b1, s);
    const double bc2 = 1.0 - std::pow(o.beta2(), s);
    const auto denom = (v.sqrt() / std::sqrt(bc2)).add_(o.eps());
    p.addcdiv_(m, denom, -lr_k / bc1);
  }
}

void MdlrcAdam::step_fused(const MdlrcAdamOptions& o, double b1, double lr_k,
                           const std::vector<torch::Tensor>& params) {
  // One kernel per (device, dtype) bucket, as the fused kernels require.
  struct Bucket {
    std::vector<torch::Tensor> p, g, m, v, steps;
  };
  std::map<std::tuple<std::string, int>, Bucket> buckets;
  // The kernels read (do not increment) one float step tensor per parameter; parameters of a
  // bucket share one scalar tensor per distinct step value (usually one in all).
  std::map<std::tuple<std::string, int64_t>, torch::Tensor> step_tensors;
  for (const auto& p : params) {
    auto& st = state_for(p);
    st.step(st.step() + 1);
    const std::string dev = p.device().str();
    auto& b = buckets[{dev, static_cast<int>(p.scalar_type())}];
    b.p.push_back(p);
    b.g.push_back(p.grad());
    b.m.push_back(st.exp_avg());
    b.v.push_back(st.exp_avg_sq());
    auto& s = step_tensors[{dev, st.step()}];
    if (!s.defined()) {
      s = at::full({}, static_cast<double>(st.step()), p.options().dtype(at::kFloat));
    }
    b.steps.push_back(s);
  }
  for (auto& [key, b] : buckets) {
    (void)key;
    if (o.decoupled_weight_decay()) {
      at::_fused_adamw_(b.p, b.g, b.m, b.v, /*max_exp_avg_sqs=*/{}, b.steps, lr_k, b1, o.beta2(),
                        o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false);
    } else {
      at::_fused_adam_(b.p, b.g, b.m, b.v, /*max_exp_avg_sqs=*/{}, b.steps, lr_k, b1, o.beta2(),
                       o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false);
    }
  }
}

void MdlrcAdam::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<MdlrcAdamParamState, MdlrcAdamOptions>(archive, *this);
  archive.write("mdlrc/iteration", c10::IValue(iteration_));
}

void MdlrcAdam::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<MdlrcAdamParamState, MdlrcAdamOptions>(archive, *this);
  c10::IValue k;
  if (!archive.try_read("mdlrc/iteration", k)) {
    throw Error("optimizer state has no 'mdlrc/iteration' entry (not an MdlrcAdam checkpoint?)");
  }
  iteration_ = k.toInt();
}

}  // namespace dmtrain::optim
