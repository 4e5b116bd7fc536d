// Ema: exponential moving averages of a model's parameters, one copy per rate.
//
//   ema <- rate * ema + (1 - rate) * param     after every optimizer step
//
// as the references' update_ema. The update is one multi-tensor call per rate
// (at::_foreach_lerp_), so a 400-tensor UNet costs a few kernels, not a chain per tensor.
// Buffers are not averaged (the UNets have none). The averages live on the parameters' device;
// save/load go through a torch archive keyed by the parameter names.
#pragma once
#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include <string>
#include <vector>

namespace dmtrain::train {

class Ema {
 public:
  Ema(const torch::nn::Module& model, std::vector<double> rates);

  void update(const torch::nn::Module& model);
  const std::vector<double>& rates() const { return rates_; }
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
};

}  // namespace dmtrain::train
