// Implementation of dmtrain/observe/periodic_fid.hpp.
#include "dmtrain/observe/periodic_fid.hpp"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/util/StringUtil.h>

#include <chrono>
#include <cmath>
#include <string>

#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::observe {

PeriodicFid::PeriodicFid(const config::RunConfig& cfg, const at::Device& device)
    : cfg_(cfg), device_(device) {
  eval::FidEvaluatorOptions o;
  o.inception = cfg.eval.inception;
  o.reference = cfg.eval.reference;
  o.n = cfg.eval.fid_samples;
  o.seed = cfg.eval.seed;
  o.steps = cfg.eval.steps;
  o.batch = cfg.eval.batch;
  o.device = device;
  try {
    evaluator_ = std::make_unique<eval::FidEvaluator>(o);
  } catch (const Error& e) {
    throw Error(std::string("eval.inception / eval.reference (eval.fid_every is on): ") + e.what());
  }
  if (!evaluator_->reference().has_features()) {
    log::info("eval.reference '" + cfg.eval.reference +
              "' holds only mu/sigma statistics: the periodic evaluation reports FID alone "
              "(KID and precision/recall need reference features: dmtrain fid --cache-ref)");
  }
}

bool PeriodicFid::due(const config::RunConfig& cfg, const util::Progress& p) {
  return cfg.eval.fid_every > 0 && p.signal == 0 &&
         (util::every(cfg.eval.fid_every, p.done) || p.at_end());
}

void PeriodicFid::report(int64_t iteration, const models::UNetModelImpl& model, const ema::Ema& ema,
                         const diffusion::GaussianDiffusion& diffusion, MetricsLog& metrics) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const eval::Scores v = evaluate(model, ema, diffusion);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::string more;
  if (std::isfinite(v.kid)) more += c10::str(" | KID ", v.kid);
  if (std::isfinite(v.precision)) {
    more += c10::str(" | precision ", v.precision, " recall ", v.recall);
  }
  log::info(c10::str("iter ", iteration, " | FID ", v.fid, more, " (EMA ", ema.rates().front(),
                     ", ", cfg_.eval.fid_samples, " samples, ", cfg_.eval.steps, ", ", secs,
                     " s)"));
  FidRecord r{iteration, v.fid, cfg_.eval.fid_samples, secs};
  r.kid = v.kid;
  r.kid_std = v.kid_std;
  r.precision = v.precision;
  r.recall = v.recall;
  metrics.write(r);
  metrics.exclude(Clock::now() - t0);  // keep evaluation time out of img/s
}

eval::Scores PeriodicFid::evaluate(const models::UNetModelImpl& model, const ema::Ema& ema,
                                   const diffusion::GaussianDiffusion& diffusion) {
  auto copy = std::dynamic_pointer_cast<models::UNetModelImpl>(model.clone(device_));
  ema.copy_to(0, *copy);
  copy->eval();
  at::NoGradGuard no_grad;
  const diffusion::ModelFn fn = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    return copy->forward(x, t, y);
  };
  const auto& m = cfg_.model;
  const at::Tensor labels = m.num_classes > 0 ? eval::make_labels("", cfg_.eval.fid_samples,
                                                                  m.num_classes, cfg_.eval.seed)
                                              : at::Tensor();
  const eval::Scores scores =
      evaluator_->evaluate(diffusion, fn, {m.in_channels, m.image_size, m.image_size}, labels);
  // Inception at eval.batch 1000 leaves ~20 GiB cached in this process; runs that share the GPU
  // (sweeps, the study's arms) need it back more than this one needs it until the next FID.
  copy.reset();  // the EMA copy first, so that its memory is released too
  if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
  return scores;
}

}  // namespace dmtrain::observe
