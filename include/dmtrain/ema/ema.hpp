// Ema: exponential moving averages of a model's parameters, one copy per rate.
//
//   ema <- rate * ema + (1 - rate) * param     after every optimizer step
//
// as the references' update_ema. With warm-up (train.ema_warmup, off in the paper's recipes) the
// rate of the update after optimizer step k (0-based) is min(rate, (1 + k) / (10 + k)), as
// k-diffusion and EDM ramp it: early averages then follow the weights instead of holding the
// initialisation (at rate 0.9999 a plain EMA still holds 82% of it after 2,000 steps). The update
// is one multi-tensor call per rate (at::_foreach_lerp_), so a 400-tensor UNet costs a few kernels,
// not a chain per tensor. Buffers are not averaged (the UNets have none). The averages live on the
// parameters' device; save/load go through a torch archive keyed by the parameter names.
#pragma once
#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include <string>
#include <vector>

namespace dmtrain::ema {

// A rate as the EMA files, sample grids and tags name it: 6 significant digits (0.9999 ->
// "0.9999").
std::string ema_rate_text(double rate);

class Ema {
 public:
  Ema(const torch::nn::Module& model, std::vector<double> rates);

  void update(const torch::nn::Module& model);
  // The update after optimizer step k, with the warm-up when it is on.
  void update(const torch::nn::Module& model, int64_t step);
  void set_warmup(bool on) { warmup_ = on; }
  // The rate of EMA i's update after step k.
  double rate_at(size_t i, int64_t step) const;
  const std::vector<double>& rates() const { return rates_; }
  // The model's parameter names (the keys of save()'s archive), in named_parameters() order.
  const std::vector<std::string>& names() const { return names_; }
  // Parameter copies of rate index i, in model.named_parameters() order.
  const std::vector<at::Tensor>& params(size_t i) const { return ema_[i]; }
  // Copies the averages of rate index i into `model` (e.g. a sampling copy).
  void copy_to(size_t i, torch::nn::Module& model) const;

  void save(size_t i, torch::serialize::OutputArchive& archive) const;
  // Throws dmtrain::Error when a parameter is missing or mis-shaped.
  void load(size_t i, torch::serialize::InputArchive& archive);

 private:
  std::vector<std::string> names_;
  std::vector<double> rates_;
  std::vector<std::vector<at::Tensor>> ema_;
  bool warmup_ = false;
};

}  // namespace dmtrain::ema
