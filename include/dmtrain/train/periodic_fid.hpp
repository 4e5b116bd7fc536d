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
#include "dmtrain/eval/fid.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/train/ema.hpp"

namespace dmtrain::train {

class PeriodicFid {
 public:
  PeriodicFid(const config::RunConfig& cfg, const at::Device& device);
  double evaluate(const models::UNetModelImpl& model, const Ema& ema,
                  const diffusion::GaussianDiffusion& diffusion);

 private:
  config::RunConfig cfg_;
  at::Device device_;
  std::unique_ptr<eval::FidEvaluator> evaluator_;
};

}  // namespace dmtrain::train
