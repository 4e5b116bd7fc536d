#include "dmtrain/diffusion/noise_source.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <utility>

#include "dmtrain/util/error.hpp"

namespace dmtrain::diffusion {

NoiseSource::NoiseSource(uint64_t seed, std::vector<int64_t> shape)
    : shape_(std::move(shape)),
      generator_(at::make_generator<at::CPUGeneratorImpl>(seed)),
      generator_fallback_(true) {}

NoiseSource::NoiseSource(const at::Tensor& initial, uint64_t seed)
    : NoiseSource(seed, initial.sizes().vec()) {
  given_.push_back(initial.detach().to(at::kFloat).cpu());
}

NoiseSource NoiseSource::from_draws(std::vector<at::Tensor> draws) {
  if (draws.empty()) throw Error("diffusion: NoiseSource::from_draws needs at least one draw");
  NoiseSource s;
  s.shape_ = draws.front().sizes().vec();
  for (const at::Tensor& d : draws) {
    if (d.sizes().vec() != s.shape_) {
      throw Error(c10::str("diffusion: NoiseSource draws must all have shape ", draws[0].sizes(),
                           ", got ", d.sizes()));
    }
    s.given_.push_back(d.detach().to(at::kFloat).cpu());
  }
  return s;
}

at::Tensor NoiseSource::next(const at::Device& device) {
  at::Tensor draw;
  if (generator_fallback_) {
    // Always advance the generator, so a given draw replaces but never shifts the stream.
    draw = at::randn(shape_, *generator_, at::TensorOptions().dtype(at::kFloat));
  }
  if (taken_ < static_cast<int64_t>(given_.size())) {
    draw = given_[static_cast<size_t>(taken_)];
  } else if (!generator_fallback_) {
    throw Error(c10::str("diffusion: NoiseSource ran out of its ", given_.size(),
                         " given draws (the sampler needs one per step plus the initial noise)"));
  }
  ++taken_;
  return draw.to(device);
}

}  // namespace dmtrain::diffusion
