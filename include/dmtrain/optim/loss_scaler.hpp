// LossScaler: dynamic loss scaling for fp16 training (as torch.cuda.amp.GradScaler): the loss is
// multiplied by S before backward so small fp16 gradients do not flush to zero; gradients are
// divided by S before clipping and the step; a step with non-finite gradients is skipped and S
// halves; after `growth_interval` finite steps in a row S doubles. Disabled (S = 1, no-ops) for
// fp32 and bf16, whose exponent range needs no scaling. Its state is checkpointed.
#pragma once
#include <ATen/ATen.h>
#include <torch/serialize/archive.h>

#include <vector>

namespace dmtrain::optim {

class LossScaler {
 public:
  explicit LossScaler(bool enabled, double init_scale = 65536.0, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  double scale_value() const { return enabled_ ? scale_ : 1.0; }
  at::Tensor scale(const at::Tensor& loss) const;
  // Divides every defined gradient by the scale (one multi-tensor op).
  void unscale(const std::vector<at::Tensor>& params) const;
  // Call once per step with whether the step's loss and gradients were finite.
  void update(bool finite);

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
};

}  // namespace dmtrain::optim
