// PeriodicFid: the trainer's FID of its first EMA every eval.fid_every iterations (rank 0 only).
// Built once at the start of a run (so a bad network or statistics file fails before training);
// each call copies the EMA weights into a spare network (training state untouched), samples
// eval.fid_samples images with the same noise every time (eval::FidEvaluator), and returns FID
// against eval.reference.
#pragma once
#include <ATen/ATen.h>

#include <memory>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/ema/ema.hpp"
#include "dmtrain/eval/fid.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/util/progress.hpp"

namespace dmtrain::observe {

class PeriodicFid {
 public:
  PeriodicFid(const config::RunConfig& cfg, const at::Device& device);
  // Due after p: every eval.fid_every iterations and after the run's last one, not when a stop
  // or checkpoint signal arrived (the job ends or pauses; the numbers stay those of the cadence).
  // Static: every rank decides alike, the evaluator lives on rank 0.
  static bool due(const config::RunConfig& cfg, const util::Progress& p);
  double evaluate(const models::UNetModelImpl& model, const ema::Ema& ema,
                  const diffusion::GaussianDiffusion& diffusion);
  // evaluate() after `iteration`, logged, written to `metrics` as a FID record, and its time
  // kept out of the interval's img/s.
  void report(int64_t iteration, const models::UNetModelImpl& model, const ema::Ema& ema,
              const diffusion::GaussianDiffusion& diffusion, MetricsLog& metrics);

 private:
  config::RunConfig cfg_;
  at::Device device_;
  std::unique_ptr<eval::FidEvaluator> evaluator_;
};

}  // namespace dmtrain::observe
