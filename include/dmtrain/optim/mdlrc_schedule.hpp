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
// momentum_decay off beta1 stays beta1_0, with lr_compensation off lr stays lr_0.
#pragma once
#include <cstdint>
#include <string>

namespace dmtrain::optim {

double mdlrc_beta1(int64_t k, int64_t total_iterations, double beta1_0, double beta1_min);
double mdlrc_lr(int64_t k, int64_t total_iterations, double lr0, double beta1_0, double beta1_min,
                bool compensate);

struct MdlrcSchedule {
  bool momentum_decay = true;
  bool lr_compensation = true;
  double beta1_0 = 0.9;
  double beta1_min = 0.5;  // [reading]
  double lr0 = 1e-4;
  int64_t total_iterations = 1;  // K, the run's total iterations

  double beta1(int64_t k) const;
  double lr(int64_t k) const;
};

// Throws dmtrain::Error naming `<prefix>.lr` (lr0 < 0 or not finite), `<prefix>.beta1`
// (beta1_0 outside [0, 1)), and, when momentum_decay is on, `<prefix>.beta1_min` (outside
// [0, beta1_0]) and `<prefix>.total_iterations` (<= 0). With momentum decay off those two are
// unused and not checked.
void validate(const MdlrcSchedule& schedule, const std::string& prefix = "optim");

}  // namespace dmtrain::optim
