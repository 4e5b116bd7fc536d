#include "dmtrain/eval/feature_stats.hpp"

#include <ATen/core/grad_mode.h>

#include <utility>
#include <vector>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/npy.hpp"

namespace dmtrain::eval {

void StatsAccumulator::add(const at::Tensor& features) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(features.dim() == 2, "StatsAccumulator: features must be [B, D], got ",
              features.sizes());
  if (features.size(0) == 0) return;
  const at::Tensor x = features.detach().to(at::kCPU, at::kDouble);
  const int64_t nb = x.size(0);
  const at::Tensor mean_b = x.mean(0);
  const at::Tensor centred = x - mean_b;
  const at::Tensor scatter_b = at::matmul(centred.transpose(0, 1), centred);
  if (count_ == 0) {
    mean_ = mean_b;
    scatter_ = scatter_b;
    count_ = nb;
    return;
  }
  TORCH_CHECK(x.size(1) == mean_.size(0), "StatsAccumulator: batch has ", x.size(1),
              " features per vector, earlier batches ", mean_.size(0));
  const double na = static_cast<double>(count_), n = na + static_cast<double>(nb);
  const at::Tensor delta = mean_b - mean_;
  scatter_ = scatter_ + scatter_b + at::outer(delta, delta) * (na * static_cast<double>(nb) / n);
  mean_ = mean_ + delta * (static_cast<double>(nb) / n);
  count_ += nb;
}

FeatureStats StatsAccumulator::stats() const {
  if (count_ < 2) {
    throw Error(c10::str("feature statistics need at least 2 images, got ", count_));
  }
  FeatureStats s;
  s.mu = mean_.clone();
  s.sigma = scatter_ / static_cast<double>(count_ - 1);
  s.count = count_;
  return s;
}

FeatureStats feature_stats(const at::Tensor& features) {
  StatsAccumulator acc;
  acc.add(features);
  return acc.stats();
}

void save_stats(const std::string& path, const FeatureStats& stats) {
  TORCH_CHECK(stats.mu.defined() && stats.sigma.defined(), "save_stats: empty statistics");
  const std::string names[2] = {"mu", "sigma"};  // see write_samples_npz on GCC 12's warning
  std::vector<std::pair<std::string, at::Tensor>> arrays;
  arrays.push_back(std::make_pair(names[0], stats.mu.to(at::kCPU, at::kDouble)));
  arrays.push_back(std::make_pair(names[1], stats.sigma.to(at::kCPU, at::kDouble)));
  util::write_npz(path, arrays);
}

FeatureStats load_stats(const std::string& path) {
  FeatureStats s;
  for (auto& [name, array] : util::read_npz(path)) {
    if (name == "mu") s.mu = array;
    if (name == "sigma") s.sigma = array;
  }
  if (!s.mu.defined() || !s.sigma.defined()) {
    throw Error("'" + path + "' holds no 'mu' and 'sigma' arrays (expected FID statistics)");
  }
  if (!s.mu.is_floating_point() || !s.sigma.is_floating_point() || s.mu.dim() != 1 ||
      s.sigma.dim() != 2 || s.sigma.size(0) != s.mu.size(0) || s.sigma.size(1) != s.mu.size(0)) {
    throw Error(c10::str("'", path, "': mu ", s.mu.sizes(), " / sigma ", s.sigma.sizes(),
                         " are not float [D] and [D, D]"));
  }
  s.mu = s.mu.to(at::kDouble);
  s.sigma = s.sigma.to(at::kDouble);
  return s;
}

}  // namespace dmtrain::eval
