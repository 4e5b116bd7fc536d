#include "dmtrain/timestep/loss_second_moment_sampler.hpp"

#include <c10/util/StringUtil.h>

#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

void validate(const LossSecondMomentOptions& o, const std::string& prefix) {
  if (o.history_per_term < 1) {
    throw Error(c10::str(prefix, ".loss_second_moment.history_per_term = ", o.history_per_term,
                         ": expected >= 1"));
  }
  if (!(o.uniform_prob >= 0.0 && o.uniform_prob <= 1.0)) {
    throw Error(c10::str(prefix, ".loss_second_moment.uniform_prob = ", o.uniform_prob,
                         ": expected a value in [0, 1]"));
  }
}

LossSecondMomentSampler::LossSecondMomentSampler(int64_t num_timesteps,
                                                 const LossSecondMomentOptions& options)
    : TimestepSampler(num_timesteps), options_(options) {
  validate(options_);
  history_ = at::zeros({num_timesteps, options_.history_per_term}, at::kDouble);
  counts_ = at::zeros({num_timesteps}, at::kLong);
}

bool LossSecondMomentSampler::warmed_up() const {
  return counts_.eq(options_.history_per_term).all().item<bool>();
}

at::Tensor LossSecondMomentSampler::probabilities(int64_t /*iteration*/) const {
  const auto T = static_cast<double>(num_timesteps());
  if (!warmed_up()) return at::full({num_timesteps()}, 1.0 / T, at::kDouble);
  auto w = history_.square().mean(-1).sqrt();
  w = w / w.sum();
  return w * (1.0 - options_.uniform_prob) + options_.uniform_prob / T;
}

void LossSecondMomentSampler::update_with_losses(const at::Tensor& t, const at::Tensor& losses) {
  TORCH_CHECK(t.dim() == 1 && losses.dim() == 1 && t.size(0) == losses.size(0),
              "update_with_losses: t and losses must be 1-D of equal length");
  const auto ts = t.to(at::kCPU, at::kLong).contiguous();
  const auto ls = losses.detach().to(at::kCPU, at::kDouble).contiguous();
  const int64_t* tp = ts.data_ptr<int64_t>();
  const double* lp = ls.data_ptr<double>();
  auto hist = history_.accessor<double, 2>();
  auto cnt = counts_.accessor<int64_t, 1>();
  const int64_t H = options_.history_per_term;
  for (int64_t i = 0; i < ts.size(0); ++i) {
    const int64_t ti = tp[i];
    TORCH_CHECK(ti >= 0 && ti < num_timesteps(), "update_with_losses: t out of range: ", ti);
    if (cnt[ti] == H) {
      for (int64_t j = 0; j + 1 < H; ++j) hist[ti][j] = hist[ti][j + 1];  // drop the oldest
      hist[ti][H - 1] = lp[i];
    } else {
      hist[ti][cnt[ti]] = lp[i];
      cnt[ti] += 1;
    }
  }
}

at::Tensor LossSecondMomentSampler::weights_for(const at::Tensor& p, const at::Tensor& t) const {
  return importance_weights(p, t);
}

void LossSecondMomentSampler::save(torch::serialize::OutputArchive& archive) const {
  TimestepSampler::save(archive);
  archive.write("loss_history", history_);
  archive.write("loss_counts", counts_);
}

void LossSecondMomentSampler::load(torch::serialize::InputArchive& archive) {
  TimestepSampler::load(archive);
  at::Tensor history, counts;
  archive.read("loss_history", history);
  archive.read("loss_counts", counts);
  if (history.sizes() != history_.sizes() || counts.sizes() != counts_.sizes()) {
    throw Error(c10::str("loss-second-moment sampler state has history of shape ", history.sizes(),
                         " but the configured sampler expects ", history_.sizes(),
                         " (num_timesteps x history_per_term)"));
  }
  history_ = history.to(at::kDouble).contiguous().clone();
  counts_ = counts.to(at::kLong).contiguous().clone();
}

}  // namespace dmtrain::timestep
