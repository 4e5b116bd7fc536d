#include "dmtrain/ema/ema.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "dmtrain/util/error.hpp"

namespace dmtrain::ema {
namespace {

std::vector<at::Tensor> param_list(const torch::nn::Module& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.named_parameters()) out.push_back(p.value());
  return out;
}

}  // namespace

Ema::Ema(const torch::nn::Module& model, std::vector<double> rates) : rates_(std::move(rates)) {
  for (const auto& p : model.named_parameters()) names_.push_back(p.key());
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < rates_.size(); ++i) {
    std::vector<at::Tensor> copy;
    for (const auto& p : param_list(model)) copy.push_back(p.detach().clone());
    ema_.push_back(std::move(copy));
  }
}

void Ema::update(const torch::nn::Module& model) {
  at::NoGradGuard no_grad;
  auto params = param_list(model);
  for (size_t i = 0; i < rates_.size(); ++i) {
    // lerp(ema, p, 1 - rate) = ema + (1 - rate)(p - ema) = rate * ema + (1 - rate) * p
    at::_foreach_lerp_(ema_[i], params, at::Scalar(1.0 - rates_[i]));
  }
}

std::string ema_rate_text(double rate) {
  std::ostringstream os;
  os << std::setprecision(6) << rate;
  return os.str();
}

double Ema::rate_at(size_t i, int64_t step) const {
  const double k = static_cast<double>(step);
  return warmup_ ? std::min(rates_[i], (1.0 + k) / (10.0 + k)) : rates_[i];
}

void Ema::update(const torch::nn::Module& model, int64_t step) {
  at::NoGradGuard no_grad;
  auto params = param_list(model);
  for (size_t i = 0; i < rates_.size(); ++i) {
    at::_foreach_lerp_(ema_[i], params, at::Scalar(1.0 - rate_at(i, step)));
  }
}

void Ema::copy_to(size_t i, torch::nn::Module& model) const {
  at::NoGradGuard no_grad;
  auto params = param_list(model);
  for (size_t j = 0; j < params.size(); ++j) params[j].copy_(ema_[i][j]);
}

void Ema::save(size_t i, torch::serialize::OutputArchive& archive) const {
  for (size_t j = 0; j < names_.size(); ++j) archive.write(names_[j], ema_[i][j]);
}

void Ema::load(size_t i, torch::serialize::InputArchive& archive) {
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < names_.size(); ++j) {
    at::Tensor t;
    if (!archive.try_read(names_[j], t)) {
      throw Error("EMA state has no parameter '" + names_[j] + "'");
    }
    if (t.sizes() != ema_[i][j].sizes()) {
      throw Error("EMA parameter '" + names_[j] + "' has shape " + c10::str(t.sizes()) +
                  ", the model has " + c10::str(ema_[i][j].sizes()));
    }
    ema_[i][j].copy_(t);
  }
}

}  // namespace dmtrain::ema
