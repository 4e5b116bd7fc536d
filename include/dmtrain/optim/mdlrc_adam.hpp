// MdlrcAdam: Adam / AdamW whose beta1 and learning rate follow the MDLRC schedule
// (mdlrc_schedule.hpp), shaped like torch::optim::Adam so torch::save / torch::load work on it.
//
// Semantics of one step() at optimizer iteration k (k = number of earlier step() calls):
//   for each param group: beta1_k = schedule.beta1(k), lr_k = schedule.lr(k), where the group's
//   options give lr_0 = lr(), beta1_0 = beta1() and the other schedule fields; then for every
//   parameter p with a gradient g (state step s incremented first, so s = 1 on the first update):
//     decoupled_weight_decay: p <- p (1 - lr_k wd)     else: g <- g + wd p   (AdamW / Adam L2)
//     m <- beta1_k m + (1 - beta1_k) g,   v <- beta2 v + (1 - beta2) g^2
//     p <- p - lr_k / (1 - beta1_k^s) * m / (sqrt(v) / sqrt(1 - beta2^s) + eps)
//   Bias correction is PyTorch-style, 1 - beta1_k^s with the CURRENT beta1_k (not the product of
//   the past betas): exact while beta1 is constant, and the ratio stays within [1, 1/(1-beta1_0)]
//   anyway; this is what a PyTorch Adam with a beta1 changed in place per step computes.
// With momentum_decay and lr_compensation off this is exactly torch::optim::Adam (AdamW with
// decoupled_weight_decay).
//
// Two implementations, same math: "plain" (a per-tensor loop of ATen ops, the reference) and
// "fused" (at::_fused_adam_ / at::_fused_adamw_, one multi-tensor kernel per device and dtype;
// these kernels exist for CUDA and CPU). implementation = "auto" uses fused for CUDA parameters
// and plain otherwise.
//
// State: per parameter step, exp_avg, exp_avg_sq (MdlrcAdamParamState); the optimizer's
// iteration k is saved by save() under "mdlrc/iteration" beside torch::optim's usual layout, so a
// loaded optimizer continues the schedule where it stopped (bit-identically, see the tests).
#pragma once
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>

#include <string>
#include <vector>

#include "dmtrain/optim/mdlrc_schedule.hpp"

namespace dmtrain::optim {

struct MdlrcAdamOptions : public torch::optim::OptimizerCloneableOptions<MdlrcAdamOptions> {
  MdlrcAdamOptions(double lr = 1e-4);  // NOLINT: implicit like AdamOptions (torch's load needs it)
  TORCH_ARG(double, lr) = 1e-4;        // lr_0
  TORCH_ARG(double, beta1) = 0.9;      // beta1_0
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(bool, decoupled_weight_decay) = false;  // true: AdamW
  // MDLRC; both off by default so the defaults are plain Adam. The config turns them on.
  TORCH_ARG(bool, momentum_decay) = false;
  TORCH_ARG(bool, lr_compensation) = false;
  TORCH_ARG(double, beta1_min) = 0.5;
  TORCH_ARG(int64_t, total_iterations) = 1;         // K
  TORCH_ARG(std::string, lr_schedule) = "constant";  // see mdlrc_schedule.hpp
  TORCH_ARG(double, lr_min_ratio) = 0.0;
  TORCH_ARG(int64_t, warmup_iterations) = 0;  // see mdlrc_schedule.hpp
  TORCH_ARG(std::string, implementation) = "auto";  // auto | plain | fused

 public:
  MdlrcSchedule schedule() const;
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

// Throws dmtrain::Error naming `<prefix>.lr|beta1|beta1_min|total_iterations|beta2|eps|
// weight_decay|implementation`.
void validate(const MdlrcAdamOptions& options, const std::string& prefix = "optim");

struct MdlrcAdamParamState
    : public torch::optim::OptimizerCloneableParamState<MdlrcAdamParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class MdlrcAdam : public torch::optim::Optimizer {
 public:
  // Validates the defaults and every group's options (dmtrain::Error naming the key).
  explicit MdlrcAdam(const std::vector<torch::optim::OptimizerParamGroup>& param_groups,
                     MdlrcAdamOptions defaults = {});
  explicit MdlrcAdam(std::vector<torch::Tensor> params, MdlrcAdamOptions defaults = {})
      : MdlrcAdam({torch::optim::OptimizerParamGroup(std::move(params))}, std::move(defaults)) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // Iteration k of the next step() (= number of steps taken so far).
  int64_t iteration() const { return iteration_; }
  // For resuming from a checkpoint that stores k elsewhere.
  void set_iteration(int64_t k);
  // beta1_k and lr_k that the next step() uses in param group `group` (for logging).
  double beta1(size_t group = 0) const;
  double lr(size_t group = 0) const;

 private:
  void step_plain(const MdlrcAdamOptions& o, double beta1, double lr,
                  const std::vector<torch::Tensor>& params);
  void step_fused(const MdlrcAdamOptions& o, double beta1, double lr,
                  const std::vector<torch::Tensor>& params);
  MdlrcAdamParamState& state_for(const torch::Tensor& p);

  int64_t iteration_ = 0;
};

}  // namespace dmtrain::optim
