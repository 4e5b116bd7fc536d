// LossSecondMomentSampler: importance sampling of t by the root mean square of recent losses,
// with the semantics of improved-diffusion's LossSecondMomentResampler:
//  - it keeps the last `history_per_term` losses of every t (oldest shifted out first);
//  - until every t has a full history it samples uniformly (weights 1);
//  - then p(t) = (1 - uniform_prob) w(t) / sum w + uniform_prob / T, w(t) = sqrt(mean(loss_t^2)),
//    and each draw is weighted 1/(T p(t)), keeping the objective unbiased.
// update_with_losses consumes (t, loss) pairs in order. Its history (float64 [T, H]) and counts
// (int64 [T]) are the whole state, saved and loaded with save/load. Independent of k.
#pragma once
#include <string>

#include "dmtrain/timestep/options.hpp"
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::timestep {

// Throws dmtrain::Error naming `<prefix>.loss_second_moment.history_per_term` (< 1) or
// `<prefix>.loss_second_moment.uniform_prob` (outside [0, 1]).
void validate(const LossSecondMomentOptions& options, const std::string& prefix = "timestep");

class LossSecondMomentSampler : public TimestepSampler {
 public:
  LossSecondMomentSampler(int64_t num_timesteps, const LossSecondMomentOptions& options = {});
  LossSecondMomentSampler(int64_t num_timesteps, int64_t history_per_term, double uniform_prob)
      : LossSecondMomentSampler(num_timesteps,
                                LossSecondMomentOptions{history_per_term, uniform_prob}) {}

  at::Tensor probabilities(int64_t iteration) const override;
  void update_with_losses(const at::Tensor& t, const at::Tensor& losses) override;
  bool uses_losses() const override { return true; }
  std::string name() const override { return "loss-second-moment"; }
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  bool warmed_up() const;
  const at::Tensor& loss_history() const { return history_; }
  const at::Tensor& loss_counts() const { return counts_; }

 protected:
  at::Tensor weights_for(const at::Tensor& p, const at::Tensor& t) const override;

 private:
  LossSecondMomentOptions options_;
  at::Tensor history_;  // float64 [T, H]
  at::Tensor counts_;   // int64 [T]
};

}  // namespace dmtrain::timestep
