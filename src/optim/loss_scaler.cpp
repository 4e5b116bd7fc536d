#include "dmtrain/optim/loss_scaler.hpp"

namespace dmtrain::optim {

LossScaler::LossScaler(bool enabled, double init_scale, int64_t growth_interval)
    : enabled_(enabled), scale_(init_scale), growth_interval_(growth_interval) {}

at::Tensor LossScaler::scale(const at::Tensor& loss) const {
  return enabled_ ? loss * scale_ : loss;
}

void LossScaler::unscale(const std::vector<at::Tensor>& params) const {
  if (!enabled_) return;
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (!grads.empty()) at::_foreach_mul_(grads, at::Scalar(1.0 / scale_));
}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ *= 0.5;
    good_steps_ = 0;
  } else if (++good_steps_ >= growth_interval_) {
    scale_ *= 2.0;
    good_steps_ = 0;
  }
}

void LossScaler::save(torch::serialize::OutputArchive& archive) const {
  archive.write("scale", at::tensor(scale_, at::kDouble));
  archive.write("good_steps", at::tensor(good_steps_));
}

void LossScaler::load(torch::serialize::InputArchive& archive) {
  at::Tensor s, g;
  archive.read("scale", s);
  archive.read("good_steps", g);
  scale_ = s.item<double>();
  good_steps_ = g.item<int64_t>();
}

}  // namespace dmtrain::optim
