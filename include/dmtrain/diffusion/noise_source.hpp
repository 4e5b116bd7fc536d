// NoiseSource: the reproducible stream of Gaussian noise a sampler consumes.
//
// Why: the consistency experiments sample different models (other seeds, architectures, even
// other frameworks) with the same initial noise AND the same per-step noise. So noise never comes
// from the model's device RNG: it is drawn on the CPU from a generator seeded once, in a fixed
// order -- draw 0 is the initial x_T, then one draw per sampler step from the first step taken
// (even at t == 0, whose noise ID multiplies by 0, so the order matches ID's randn_like calls) --
// and then moved to the requested device. Same (seed, shape) => same stream, for any model.
//
// Three ways to build one:
//   NoiseSource(seed, shape)            every draw from a CPU generator seeded with `seed`
//                                       (torch.Generator().manual_seed(seed) + torch.randn(shape,
//                                       generator=g) in Python draws the very same numbers);
//   NoiseSource(initial, seed)          draw 0 is `initial` (e.g. loaded from another framework);
//                                       the generator still draws and discards its own draw 0, so
//                                       the step noises are those of NoiseSource(seed, shape);
//   NoiseSource::from_draws(draws)      every draw given; asking for more throws dmtrain::Error.
// Not thread-safe (a stream); owns its generator and tensors.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace dmtrain::diffusion {

class NoiseSource {
 public:
  NoiseSource(uint64_t seed, std::vector<int64_t> shape);
  NoiseSource(const at::Tensor& initial, uint64_t seed);
  static NoiseSource from_draws(std::vector<at::Tensor> draws);

  // The next draw (float32, `shape()`), on `device`.
  at::Tensor next(const at::Device& device = at::kCPU);
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t draws_taken() const { return taken_; }

 private:
  NoiseSource() = default;
  std::vector<int64_t> shape_;
  std::optional<at::Generator> generator_;
  std::vector<at::Tensor> given_;  // draws to hand out before (or instead of) the generator's
  bool generator_fallback_ = false;
  int64_t taken_ = 0;
};

}  // namespace dmtrain::diffusion
