#include "dmtrain/optim/mdlrc_schedule.hpp"

#include <c10/util/Exception.h>
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>
#include <string>

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

double scheduled_lr(const std::string& schedule, int64_t k, int64_t total_iterations, double lr0,
                    double lr_min_ratio, double beta1_0, double beta1_min) {
  if (schedule == "constant") return lr0;
  if (schedule == "mdlrc") {
    return lr0 * (1.0 - beta1_0) / (1.0 - mdlrc_beta1(k, total_iterations, beta1_0, beta1_min));
  }
  TORCH_CHECK(k >= 0 && total_iterations > 0, "scheduled_lr: need k >= 0 and K > 0");
  const double s = std::min(1.0, static_cast<double>(k) / static_cast<double>(total_iterations));
  const double lr_min = lr_min_ratio * lr0;
  if (schedule == "linear") return lr_min + (lr0 - lr_min) * (1.0 - s);
  constexpr double kPi = 3.14159265358979323846;
  if (schedule == "cosine") return lr_min + (lr0 - lr_min) * 0.5 * (1.0 + std::cos(kPi * s));
  throw Error("optim.lr_schedule = '" + schedule +
              "': expected one of constant, mdlrc, linear, cosine");
}

double MdlrcSchedule::beta1(int64_t k) const {
  if (!momentum_decay) return beta1_0;
  return mdlrc_beta1(k, total_iterations, beta1_0, beta1_min);
}

double MdlrcSchedule::lr(int64_t k) const {
  const double warmup =
      warmup_iterations > 0
          ? std::min(1.0, static_cast<double>(k + 1) / static_cast<double>(warmup_iterations))
          : 1.0;
  if (!lr_compensation) {
    return warmup *
           scheduled_lr(lr_schedule, k, total_iterations, lr0, lr_min_ratio, beta1_0, beta1_min);
  }
  // Eq. 10 against whatever beta1 is actually used, so with momentum decay off it is lr0.
  return warmup * lr0 * (1.0 - beta1_0) / (1.0 - beta1(k));
}

void validate(const MdlrcSchedule& s, const std::string& prefix) {
  if (!(s.lr0 >= 0.0) || !std::isfinite(s.lr0)) {
    throw Error(c10::str(prefix, ".lr = ", s.lr0, ": expected a finite value >= 0"));
  }
  if (!(s.beta1_0 >= 0.0 && s.beta1_0 < 1.0)) {
    throw Error(c10::str(prefix, ".beta1 = ", s.beta1_0, ": expected a value in [0, 1)"));
  }
  if (s.lr_schedule != "constant" && s.lr_schedule != "mdlrc" && s.lr_schedule != "linear" &&
      s.lr_schedule != "cosine") {
    throw Error(c10::str(prefix, ".lr_schedule = '", s.lr_schedule,
                         "': expected one of constant, mdlrc, linear, cosine"));
  }
  if (s.lr_compensation && s.lr_schedule != "constant") {
    throw Error(c10::str(prefix, ".lr_schedule = '", s.lr_schedule, "' together with ", prefix,
                         ".lr_compensation: true gives two rules for the learning rate; "
                         "use one (lr_schedule: mdlrc is the compensation's lr with beta1 held)"));
  }
  if (!(s.lr_min_ratio >= 0.0 && s.lr_min_ratio <= 1.0)) {
    throw Error(c10::str(prefix, ".lr_min_ratio = ", s.lr_min_ratio, ": expected a value in [0, 1]"));
  }
  if (s.warmup_iterations < 0) {
    throw Error(c10::str(prefix, ".warmup_iterations = ", s.warmup_iterations,
                         ": expected >= 0 (0: no warm-up)"));
  }
  const bool needs_k = s.momentum_decay || s.lr_schedule != "constant";
  if (needs_k && s.total_iterations < 1) {
    throw Error(c10::str(prefix, ".total_iterations = ", s.total_iterations,
                         ": expected > 0 (the schedule needs the run's length)"));
  }
  const bool uses_floor = s.momentum_decay || s.lr_schedule == "mdlrc";
  if (!uses_floor) return;
  if (!(s.beta1_min >= 0.0 && s.beta1_min <= s.beta1_0)) {
    throw Error(c10::str(prefix, ".beta1_min = ", s.beta1_min, ": expected a value in [0, ", prefix,
                         ".beta1 = ", s.beta1_0, "]"));
  }
}

}  // namespace dmtrain::optim
