#include "dmtrain/timestep/speed_sampler.hpp"

#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>

#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

void validate(const SpeedOptions& o, const std::string& prefix) {
  const std::string p = prefix + ".speed.";
  if (!(o.tau > 0.0 && o.tau <= 1.0)) {
    throw Error(c10::str(p, "tau = ", o.tau, ": expected a fraction of T in (0, 1]"));
  }
  if (!(o.k > 0.0) || !std::isfinite(o.k)) {
    throw Error(c10::str(p, "k = ", o.k, ": expected a finite value > 0"));
  }
  if (!(o.lambda >= 0.0 && o.lambda <= 1.0)) {
    throw Error(c10::str(p, "lambda = ", o.lambda, ": expected a value in [0, 1]"));
  }
  if (!(o.threshold > 0.0)) {
    throw Error(c10::str(p, "threshold = ", o.threshold, ": expected > 0"));
  }
}

at::Tensor numpy_gradient(const at::Tensor& f) {
  TORCH_CHECK(f.dim() == 1 && f.size(0) >= 2, "numpy_gradient: expects a 1-D tensor of >= 2");
  const int64_t n = f.size(0);
  at::Tensor g = at::empty_like(f);
  g[0] = f[1] - f[0];
  g[n - 1] = f[n - 1] - f[n - 2];
  if (n > 2) g.slice(0, 1, n - 1).copy_((f.slice(0, 2, n) - f.slice(0, 0, n - 2)) / 2.0);
  return g;
}

SpeedSampler::SpeedSampler(const at::Tensor& alphas_cumprod, const SpeedOptions& options)
    : TimestepSampler(alphas_cumprod.numel()), options_(options) {
  validate(options_);
  const int64_t T = num_timesteps();
  TORCH_CHECK(T >= 2, "SpeedSampler: needs at least 2 timesteps");
  const at::Tensor abar = alphas_cumprod.to(at::kCPU, at::kDouble).contiguous();
  tau_steps_ = std::clamp<int64_t>(std::llround(options_.tau * static_cast<double>(T)), 1, T);

  p_ = at::ones({T}, at::kDouble);
  p_.slice(0, 0, tau_steps_).fill_(options_.k);
  p_ = p_ / p_.sum();

  // m: as numpy's argmax(grad < thr) + 1 (argmax of an all-false mask is 0, giving m = 1).
  const at::Tensor grad = numpy_gradient((1.0 - abar).sqrt());
  const double thr = options_.threshold / static_cast<double>(T);
  const auto below = (grad < thr).to(at::kLong);
  meaningful_steps_ = below.argmax().item<int64_t>() + 1;

  const at::Tensor g = numpy_gradient(1.0 - abar);
  const double c = 1.0 - options_.lambda;
  const double lo = g.min().item<double>(), hi = g.max().item<double>();
  const at::Tensor scaled = hi > lo ? (g - lo) / (hi - lo) : at::zeros_like(g);
  weights_ = at::ones({T}, at::kDouble);
  weights_.slice(0, 0, tau_steps_).copy_((c + (1.0 - 2.0 * c) * scaled).slice(0, 0, tau_steps_));
}

at::Tensor SpeedSampler::probabilities(int64_t /*iteration*/) const {
  return p_;
}

TimestepSampler::Draw SpeedSampler::sample(int64_t batch, int64_t iteration, at::Generator& gen) {
  if (!options_.dual) return TimestepSampler::sample(batch, iteration, gen);
  TORCH_CHECK(batch >= 1, "SpeedSampler::sample: batch must be >= 1, got ", batch);
  const at::Tensor t = at::multinomial(p_, batch / 2 + 1, /*replacement=*/true, gen);
  const int64_t m = meaningful_steps_;
  const at::Tensor dual =
      at::where(t < m, m - t, t - m).clamp_max(num_timesteps() - 1).to(at::kLong);
  const at::Tensor all = at::cat({t, dual}).slice(0, 0, batch).contiguous();
  return {all, weights_for(p_, all), loss_weights_for(all)};
}

at::Tensor SpeedSampler::weights_for(const at::Tensor& /*p*/, const at::Tensor& t) const {
  return at::ones({t.size(0)}, at::kFloat);
}

at::Tensor SpeedSampler::loss_weights_for(const at::Tensor& t) const {
  if (!options_.weighting) return {};
  return weights_.index_select(0, t).to(at::kFloat);
}

}  // namespace dmtrain::timestep
