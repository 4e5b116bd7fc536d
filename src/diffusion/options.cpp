#include "dmtrain/diffusion/options.hpp"

#include "dmtrain/util/error.hpp"

namespace dmtrain::diffusion {

MeanType parse_mean_type(const std::string& s) {
  if (s == "epsilon") return MeanType::kEpsilon;
  if (s == "x0") return MeanType::kStartX;
  if (s == "v") return MeanType::kV;
  throw Error("diffusion: unknown mean_type '" + s + "' (expected epsilon, x0 or v)");
}

VarType parse_var_type(const std::string& s) {
  if (s == "fixed_small") return VarType::kFixedSmall;
  if (s == "fixed_large") return VarType::kFixedLarge;
  if (s == "learned") return VarType::kLearned;
  if (s == "learned_range") return VarType::kLearnedRange;
  throw Error("diffusion: unknown var_type '" + s +
              "' (expected fixed_small, fixed_large, learned or learned_range)");
}

LossType parse_loss_type(const std::string& s) {
  if (s == "mse") return LossType::kMse;
  if (s == "rescaled_mse") return LossType::kRescaledMse;
  if (s == "kl") return LossType::kKl;
  if (s == "rescaled_kl") return LossType::kRescaledKl;
  throw Error("diffusion: unknown loss_type '" + s +
              "' (expected mse, rescaled_mse, kl or rescaled_kl)");
}

std::string to_string(MeanType v) {
  switch (v) {
    case MeanType::kEpsilon:
      return "epsilon";
    case MeanType::kStartX:
      return "x0";
    case MeanType::kV:
      return "v";
  }
  return "?";
}

std::string to_string(VarType v) {
  switch (v) {
    case VarType::kFixedSmall:
      return "fixed_small";
    case VarType::kFixedLarge:
      return "fixed_large";
    case VarType::kLearned:
      return "learned";
    case VarType::kLearnedRange:
      return "learned_range";
  }
  return "?";
}

std::string to_string(LossType v) {
  switch (v) {
    case LossType::kMse:
      return "mse";
    case LossType::kRescaledMse:
      return "rescaled_mse";
    case LossType::kKl:
      return "kl";
    case LossType::kRescaledKl:
      return "rescaled_kl";
  }
  return "?";
}

}  // namespace dmtrain::diffusion
