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

namespace {

FeatureStats checked_stats(const at::Tensor& mu, const at::Tensor& sigma, const std::string& path) {
  if (!mu.is_floating_point() || !sigma.is_floating_point() || mu.dim() != 1 || sigma.dim() != 2 ||
      sigma.size(0) != mu.size(0) || sigma.size(1) != mu.size(0)) {
    throw Error(c10::str("'", path, "': mu ", mu.sizes(), " / sigma ", sigma.sizes(),
                         " are not float [D] and [D, D]"));
  }
  FeatureStats s;
  s.mu = mu.to(at::kDouble);
  s.sigma = sigma.to(at::kDouble);
  return s;
}

}  // namespace

FeatureStats load_stats(const std::string& path) {
  at::Tensor mu, sigma;
  for (auto& [name, array] : util::read_npz(path)) {
    if (name == "mu") mu = array;
    if (name == "sigma") sigma = array;
  }
  if (!mu.defined() || !sigma.defined()) {
    throw Error("'" + path + "' holds no 'mu' and 'sigma' arrays (expected FID statistics)");
  }
  return checked_stats(mu, sigma, path);
}

void save_feature_set(const std::string& path, const FeatureSet& set) {
  TORCH_CHECK(set.stats.mu.defined() && set.stats.sigma.defined(),
              "save_feature_set: empty statistics");
  const std::string names[3] = {"mu", "sigma", "features"};  // see save_stats
  std::vector<std::pair<std::string, at::Tensor>> arrays;
  arrays.push_back(std::make_pair(names[0], set.stats.mu.to(at::kCPU, at::kDouble)));
  arrays.push_back(std::make_pair(names[1], set.stats.sigma.to(at::kCPU, at::kDouble)));
  if (set.has_features()) {
    arrays.push_back(std::make_pair(names[2], set.features.to(at::kCPU, at::kFloat)));
  }
  util::write_npz(path, arrays);
}

FeatureSet feature_set_of(const std::vector<std::pair<std::string, at::Tensor>>& arrays,
                          const std::string& path) {
  at::Tensor mu, sigma, features;
  for (const auto& [name, array] : arrays) {
    if (name == "mu") mu = array;
    if (name == "sigma") sigma = array;
    if (name == "features") features = array;
  }
  FeatureSet set;
  if (features.defined()) {
    if (!features.is_floating_point() || features.dim() != 2 || features.size(0) < 2) {
      throw Error(c10::str("'", path, "': features is ", features.scalar_type(), " ",
                           features.sizes(), ", expected float [N, D] with N >= 2"));
    }
    set.features = features.to(at::kFloat);
    if (mu.defined() && sigma.defined()) {
      set.stats = checked_stats(mu, sigma, path);
      if (set.stats.mu.size(0) != features.size(1)) {
        throw Error(c10::str("'", path, "': mu has ", set.stats.mu.size(0), " entries, the ",
                             "features ", features.size(1), " dimensions"));
      }
      set.stats.count = features.size(0);
    } else {
      set.stats = feature_stats(features);
    }
  } else if (mu.defined() && sigma.defined()) {
    set.stats = checked_stats(mu, sigma, path);
  }
  return set;
}

FeatureSet load_feature_set(const std::string& path) {
  FeatureSet set = feature_set_of(util::read_npz(path), path);
  if (!set.stats.mu.defined()) {
    throw Error("'" + path +
                "' holds neither 'features' [N, D] nor 'mu' and 'sigma' (expected FID "
                "statistics or features, e.g. from dmtrain fid --cache-ref)");
  }
  return set;
}

}  // namespace dmtrain::eval
