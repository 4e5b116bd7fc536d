// PeriodicFid: the trainer's FID of its first EMA every eval.fid_every iterations (rank 0 only),
// with KID and precision/recall from the same features when eval.reference has feature vectors
// (a features .npz from `dmtrain fid --cache-ref`, or a reference batch with arr_0 images; a
// mu/sigma-only file gives FID alone, said once when the run starts). Built once at the start of a
// run (so a bad network or reference file fails before training, and the reference's k-NN radii
// are computed once); each call copies the EMA weights into a spare network (training state
// untouched), samples eval.fid_samples images with the same noise every time
// (eval::FidEvaluator), and returns the scores against eval.reference. report() writes them as one
// FID record: fid, fid_samples, fid_seconds, and kid, kid_std, precision, recall when computed.
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
  eval::Scores evaluate(const models::UNetModelImpl& model, const ema::Ema& ema,
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
