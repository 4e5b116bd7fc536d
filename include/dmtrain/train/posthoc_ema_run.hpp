// The trainer's side of post-hoc EMA (ema/posthoc_ema.hpp): the profiles of
// train.posthoc_ema live through the run, are saved in every checkpoint and snapshotted on their
// own cadence.
#pragma once
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/config/run_config.hpp"
#include "dmtrain/ema/posthoc_ema.hpp"

namespace dmtrain::train {

// The trainer's hook (rank 0): the profiles of train.posthoc_ema, registered in `state` as
// checkpoint file posthoc_ema.pt, and their snapshots.
class PosthocEmaRun {
 public:
  // nullptr when train.posthoc_ema.sigma_rels is empty. Call after the resume: `resume` is
  // TrainOptions::resume and `iteration` the resumed one; a checkpoint without posthoc_ema.pt or
  // with other gammas restarts the profiles there (warning). Snapshots after `iteration` (of the
  // interrupted continuation) are removed: they are trained again.
  static std::unique_ptr<PosthocEmaRun> start(const config::RunConfig& cfg,
                                              const torch::nn::Module& model,
                                              checkpoint::TrainState& state,
                                              const std::string& resume, int64_t iteration);
  // After train_step() made `iteration` iterations done; `taken`: the step was not skipped.
  void after_step(const torch::nn::Module& model, int64_t iteration, bool taken);
  const ema::PowerEma& ema() const { return ema_; }

 private:
  PosthocEmaRun(const config::RunConfig& cfg, const torch::nn::Module& model);
  std::string run_dir_;
  int64_t every_, total_;
  ema::PowerEma ema_;
};

}  // namespace dmtrain::train
