#include "dmtrain/optim/mdlrc_schedule.hpp"

#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>

#include "dmtrain/util/error.hpp"

namespace dmtrain::optim {

double mdlrc_beta1(int64_t k, int64_t total_iterations, double beta1_0, double beta1_min) {
  TORCH_CHECK(k >= 0 && total_iterations > 0, "mdlrc_beta1: need k >= 0 and K > 0");
  const double r =
      std::clamp(1.0 - static_cast<double>(k) / static_cast<double>(total_iterations), 0.0, 1.0);
  const double decayed = beta1_0 * r / ((1.0 - beta1_0) + beta1_0 * r);
  return std::max(beta1_min, decayed);
}

double mdlrc_lr(int64_t k, int64_t total_iterations, double lr0, double beta1_0, double beta1_min,
                bool compensate) {
  if (!compensate) return lr0;
  const double b1 = mdlrc_beta1(k, total_iterations, beta1_0, beta1_min);
  return lr0 * (1.0 - beta1_0) / (1.0 - b1);
}

double MdlrcSchedule::beta1(int64_t k) const {
  if (!momentum_decay) return beta1_0;
  return mdlrc_beta1(k, total_iterations, beta1_0, beta1_min);
}

double MdlrcSchedule::lr(int64_t k) const {
  if (!lr_compensation) return lr0;
  // Eq. 10 against whatever beta1 is actually used, so with momentum decay off it is lr0.
  return lr0 * (1.0 - beta1_0) / (1.0 - beta1(k));
}

void validate(const MdlrcSchedule& s, const std::string& prefix) {
  if (!(s.lr0 >= 0.0) || !std::isfinite(s.lr0)) {
    throw Error(c10::str(prefix, ".lr = ", s.lr0, ": expected a finite value >= 0"));
  }
  if (!(s.beta1_0 >= 0.0 && s.beta1_0 < 1.0)) {
    throw Error(c10::str(prefix, ".beta1 = ", s.beta1_0, ": expected a value in [0, 1)"));
  }
  if (!s.momentum_decay) return;
  if (!(s.beta1_min >= 0.0 && s.beta1_min <= s.beta1_0)) {
    throw Error(c10::str(prefix, ".beta1_min = ", s.beta1_min, ": expected a value in [0, ", prefix,
                         ".beta1 = ", s.beta1_0, "]"));
  }
  if (s.total_iterations < 1) {
    throw Error(c10::str(prefix, ".total_iterations = ", s.total_iterations,
                         ": expected > 0 (momentum decay needs the run's length)"));
  }
}

}  // namespace dmtrain::optim
