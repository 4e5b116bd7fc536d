// CltsSampler: draws t from the CLTS distribution p_k(t) of clts.hpp. Weight 1 per draw, or
// 1/(T p_k(t)) with importance_weighting. Its only state is the iteration k, which the trainer
// owns and passes to sample(); save/load therefore only record (and check) the kind.
#pragma once
#include "dmtrain/timestep/clts.hpp"
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::timestep {

class CltsSampler : public TimestepSampler {
 public:
  // Validates `options` (dmtrain::Error naming the key).
  explicit CltsSampler(const CltsOptions& options);
  at::Tensor probabilities(int64_t iteration) const override;
  std::string name() const override { return "clts"; }
  const CltsOptions& options() const { return options_; }

 protected:
  at::Tensor weights_for(const at::Tensor& p, const at::Tensor& t) const override;

 private:
  CltsOptions options_;
  at::Tensor gaussian_;  // Ghat, float64 [T], computed once
};

}  // namespace dmtrain::timestep
