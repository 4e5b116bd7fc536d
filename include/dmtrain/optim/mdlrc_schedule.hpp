// MDLRC, momentum decay with learning-rate compensation (paper Sec. 4.2, method.md Sec. 2), as
// pure functions of the optimizer iteration k (0-based) and the run's total iterations K.
//
//   r_k     = 1 - k / K                       (clamped to [0, 1]: k >= K gives r = 0)
//   beta1_k = max(beta1_min, beta1_0 r_k / ((1 - beta1_0) + beta1_0 r_k))      (Eq. 9, Demon)
//   lr_k    = lr_0 (1 - beta1_0) / (1 - beta1_k)                               (Eq. 10)
//
// Why Eq. 10: a new gradient enters Adam's first moment with weight (1 - beta1); keeping
// lr_k (1 - beta1_k) constant keeps the current gradient's share of each update (and so of the
// EMA model) constant. lr therefore goes DOWN as beta1 falls, to lr_0 (1 - beta1_0)/(1 - beta1_min)
// at the floor.
//
// MdlrcSchedule switches the two parts independently (the paper's MD / LRC ablation): with
// momentum_decay off beta1 stays beta1_0, with lr_compensation off lr follows lr_schedule.
//
// lr_schedule, the controls that tell momentum decay from a plain learning-rate decay (used when
// lr_compensation is off; the two together are refused), with s = min(k / K, 1) and
// lr_min = lr_min_ratio lr_0:
//   constant: lr_k = lr_0
//   mdlrc:    lr_k = lr_0 (1 - beta1_0) / (1 - beta1^Demon_k), beta1^Demon_k the Eq. 9 value with
//             beta1_min, whether or not momentum_decay is on: MDLRC's exact learning rate with
//             beta1 held at beta1_0 (the "lr decay only" control)
//   linear:   lr_k = lr_min + (lr_0 - lr_min) (1 - s)
//   cosine:   lr_k = lr_min + (lr_0 - lr_min) (1 + cos(pi s)) / 2
//
// Warm-up (warmup_iterations W > 0) multiplies whichever rule above by min(1, (k + 1) / W): a
// linear ramp whose first step already trains (lr_0 / W, not 0) and which reaches lr_0's rule at
// k = W - 1. Beta1 is not warmed up.
#pragma once
#include <cstdint>
#include <string>

namespace dmtrain::optim {

double mdlrc_beta1(int64_t k, int64_t total_iterations, double beta1_0, double beta1_min);
double mdlrc_lr(int64_t k, int64_t total_iterations, double lr0, double beta1_0, double beta1_min,
                bool compensate);
// The lr_schedule formulas above (lr_compensation aside); throws on an unknown schedule.
double scheduled_lr(const std::string& schedule, int64_t k, int64_t total_iterations, double lr0,
                    double lr_min_ratio, double beta1_0, double beta1_min);

struct MdlrcSchedule {
  bool momentum_decay = true;
  bool lr_compensation = true;
  double beta1_0 = 0.9;
  double beta1_min = 0.5;  // [reading]
  double lr0 = 1e-4;
  int64_t total_iterations = 1;  // K, the run's total iterations
  std::string lr_schedule = "constant";  // constant | mdlrc | linear | cosine (see above)
  double lr_min_ratio = 0.0;             // linear / cosine: the floor as a fraction of lr_0
  int64_t warmup_iterations = 0;         // W: linear warm-up factor min(1, (k + 1) / W); 0: off

  double beta1(int64_t k) const;
  double lr(int64_t k) const;
};

// Throws dmtrain::Error naming `<prefix>.lr` (lr0 < 0 or not finite), `<prefix>.beta1`
// (beta1_0 outside [0, 1)), and, when momentum_decay is on, `<prefix>.beta1_min` (outside
// [0, beta1_0]) and `<prefix>.total_iterations` (<= 0). With momentum decay off those two are
// unused and not checked; `<prefix>.lr_schedule` (unknown, or not constant together with
// lr_compensation), `<prefix>.lr_min_ratio` (outside [0, 1]) and `<prefix>.warmup_iterations`
// (< 0).
void validate(const MdlrcSchedule& schedule, const std::string& prefix = "optim");

}  // namespace dmtrain::optim
