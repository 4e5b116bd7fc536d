#include "dmtrain/timestep/sampler.hpp"

#include <c10/util/StringUtil.h>

#include "dmtrain/util/error.hpp"

namespace dmtrain::timestep {

TimestepSampler::TimestepSampler(int64_t num_timesteps) : num_timesteps_(num_timesteps) {
  TORCH_CHECK(num_timesteps >= 1, "TimestepSampler: num_timesteps must be >= 1");
}

TimestepSampler::Draw TimestepSampler::sample(int64_t batch, int64_t iteration,
                                              at::Generator& gen) {
  TORCH_CHECK(batch >= 1, "TimestepSampler::sample: batch must be >= 1, got ", batch);
  const auto p = probabilities(iteration);
  // multinomial with replacement on the caller's generator: reproducible from its state.
  auto t = at::multinomial(p, batch, /*replacement=*/true, gen);
  auto w = weights_for(p, t);
  auto lw = loss_weights_for(t);
  return {t, w, lw};
}

at::Tensor TimestepSampler::importance_weights(const at::Tensor& p, const at::Tensor& t) const {
  return (1.0 / (p.index_select(0, t) * static_cast<double>(num_timesteps_))).to(at::kFloat);
}

void TimestepSampler::save(torch::serialize::OutputArchive& archive) const {
  archive.write("kind", c10::IValue(name()));
  archive.write("num_timesteps", c10::IValue(num_timesteps_));
}

void TimestepSampler::load(torch::serialize::InputArchive& archive) {
  c10::IValue kind;
  if (!archive.try_read("kind", kind) || !kind.isString()) {
    throw Error("timestep sampler state: missing 'kind' entry");
  }
  if (kind.toStringRef() != name()) {
    throw Error(c10::str("timestep sampler state is of kind '", kind.toStringRef(),
                         "' but the configured sampler is '", name(), "'"));
  }
  c10::IValue t;
  if (archive.try_read("num_timesteps", t) && t.toInt() != num_timesteps_) {
    throw Error(c10::str("timestep sampler state has num_timesteps = ", t.toInt(),
                         " but the configured sampler has ", num_timesteps_));
  }
}

}  // namespace dmtrain::timestep
