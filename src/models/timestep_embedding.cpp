#include "dmtrain/models/timestep_embedding.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace dmtrain::models {

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, double max_period) {
  TORCH_CHECK(timesteps.dim() == 1, "timestep_embedding: timesteps must be 1-D, got ",
              timesteps.sizes());
  TORCH_CHECK(dim > 0, "timestep_embedding: dim must be positive");
  const int64_t half = dim / 2;
  // Same operations in the same order as the references (scalar * arange, then / half, in
  // float32 on the CPU), so the frequencies agree to the last bit.
  // The frequencies are made once per (dim, max_period, device) and kept: copying them from
  // pageable host memory at every forward would make the host wait for the device.
  static std::mutex mu;
  static std::map<std::tuple<int64_t, double, std::string>, at::Tensor> cache;
  at::Tensor freqs;
  {
    std::lock_guard<std::mutex> lock(mu);
    at::Tensor& cached = cache[{half, max_period, timesteps.device().str()}];
    if (!cached.defined()) {
      cached = at::exp(at::arange(0, half, at::TensorOptions().dtype(at::kFloat))
                           .mul(-std::log(max_period))
                           .div(half))
                   .to(timesteps.device());
    }
    freqs = cached;
  }
  const at::Tensor args = timesteps.unsqueeze(1).to(at::kFloat) * freqs.unsqueeze(0);
  at::Tensor embedding = at::cat({at::cos(args), at::sin(args)}, -1);
  if (dim % 2 != 0) {
    embedding = at::cat({embedding, at::zeros_like(embedding.slice(1, 0, 1))}, -1);
  }
  return embedding;
}

}  // namespace dmtrain::models
