#include "dmtrain/timestep/loss_weighting.hpp"

#include <c10/util/StringUtil.h>

#include <cmath>

#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

LossWeightingKind parse_loss_weighting(const std::string& kind, const std::string& key) {
  if (kind == "none") return LossWeightingKind::kNone;
  if (kind == "min-snr") return LossWeightingKind::kMinSnr;
  if (kind == "p2") return LossWeightingKind::kP2;
  throw Error(c10::str(key, " = '", kind, "': expected one of none, min-snr, p2"));
}

void validate(const LossWeightingOptions& o, const std::string& prefix) {
  const auto kind = parse_loss_weighting(o.kind, prefix + ".kind");
  if (o.terms != "mse" && o.terms != "all") {
    throw Error(c10::str(prefix, ".terms = '", o.terms, "': expected one of mse, all"));
  }
  if (kind == LossWeightingKind::kMinSnr && !(o.gamma > 0.0)) {
    throw Error(c10::str(prefix, ".gamma = ", o.gamma, ": expected > 0"));
  }
  if (kind == LossWeightingKind::kP2) {
    if (!(o.p2_k > 0.0)) throw Error(c10::str(prefix, ".p2_k = ", o.p2_k, ": expected > 0"));
    if (!(o.p2_gamma >= 0.0) || !std::isfinite(o.p2_gamma)) {
      throw Error(c10::str(prefix, ".p2_gamma = ", o.p2_gamma, ": expected a finite value >= 0"));
    }
  }
}

at::Tensor snr(const at::Tensor& alphas_cumprod) {
  const auto a = alphas_cumprod.to(at::kDouble);
  return a / (1.0 - a);
}

at::Tensor loss_weight(LossWeightingKind kind, const at::Tensor& alphas_cumprod,
                       const at::Tensor& t, const LossWeightingOptions& params) {
  TORCH_CHECK(alphas_cumprod.dim() == 1 && t.dim() == 1, "loss_weight: expects 1-D abar and t");
  if (kind == LossWeightingKind::kNone) return at::ones({t.size(0)}, t.options().dtype(at::kFloat));
  const auto s = snr(alphas_cumprod).index_select(0, t.to(alphas_cumprod.device(), at::kLong));
  at::Tensor w;
  if (kind == LossWeightingKind::kMinSnr) {
    w = (params.gamma / s).clamp_max(1.0);
  } else {
    w = (s + params.p2_k).pow(-params.p2_gamma);
  }
  return w.to(t.device(), at::kFloat);
}

at::Tensor loss_weight(const LossWeightingOptions& options, const at::Tensor& alphas_cumprod,
                       const at::Tensor& t) {
  validate(options);
  return loss_weight(parse_loss_weighting(options.kind), alphas_cumprod, t, options);
}

TermWeights split_weights(const LossWeightingOptions& options, const at::Tensor& alphas_cumprod,
                          const TimestepSampler::Draw& draw) {
  const auto kind = parse_loss_weighting(options.kind);
  at::Tensor w = draw.loss_weights;  // the sampler's own loss weighting, if any
  if (kind != LossWeightingKind::kNone) {
    const at::Tensor lw = loss_weight(kind, alphas_cumprod, draw.t, options);
    w = w.defined() ? w * lw : lw;
  }
  // Nothing but importance weights: the objective is exactly weights * loss.
  if (!w.defined()) return {draw.weights, {}};
  if (options.terms == "all") return {draw.weights * w, {}};
  return {draw.weights, w};
}

at::Tensor weighted_objective(const at::Tensor& loss, const at::Tensor& mse, const at::Tensor& vb,
                              const at::Tensor& whole, const at::Tensor& mse_weight) {
  if (!mse_weight.defined()) return loss.to(at::kFloat) * whole;
  TORCH_CHECK(mse.defined(), "weighted_objective: a weight of the MSE term needs the MSE term");
  at::Tensor objective = mse.to(at::kFloat) * mse_weight;
  if (vb.defined()) objective = objective + vb.to(at::kFloat);
  return objective * whole;
}

}  // namespace dmtrain::timestep
