#include "dmtrain/diffusion/beta_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dmtrain/util/error.hpp"

namespace dmtrain::diffusion {
namespace {

at::Tensor from_vector(const std::vector<double>& v) {
  return at::tensor(at::ArrayRef<double>(v), at::TensorOptions().dtype(at::kDouble));
}

// numpy.linspace's arithmetic (i * step + start, last element forced to stop), not torch's
// two-sided one, so the float64 betas match the reference to the last bit.
std::vector<double> numpy_linspace(double start, double stop, int64_t n) {
  std::vector<double> out(static_cast<size_t>(n));
  if (n == 1) {
    out[0] = start;
    return out;
  }
  const double step = (stop - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = static_cast<double>(i) * step + start;
  out.back() = stop;
  return out;
}

}  // namespace

at::Tensor betas_for_alpha_bar(int64_t num_timesteps,
                               const std::function<double(double)>& alpha_bar, double max_beta) {
  TORCH_CHECK(num_timesteps >= 1, "betas_for_alpha_bar: num_timesteps must be >= 1");
  std::vector<double> betas;
  betas.reserve(static_cast<size_t>(num_timesteps));
  const double n = static_cast<double>(num_timesteps);
  for (int64_t i = 0; i < num_timesteps; ++i) {
    const double t1 = static_cast<double>(i) / n;
    const double t2 = static_cast<double>(i + 1) / n;
    betas.push_back(std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), max_beta));
  }
  return from_vector(betas);
}

at::Tensor named_beta_schedule(const std::string& name, int64_t num_timesteps) {
  if (num_timesteps < 1) {
    throw Error(c10::str("diffusion: number of diffusion steps must be >= 1, got ", num_timesteps));
  }
  if (name == "linear") {
    const double scale = 1000.0 / static_cast<double>(num_timesteps);
    return from_vector(numpy_linspace(scale * 0.0001, scale * 0.02, num_timesteps));
  }
  if (name == "cosine") {
    return betas_for_alpha_bar(num_timesteps, [](double t) {
      const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
      return c * c;
    });
  }
  throw Error(c10::str("diffusion: unknown beta schedule '", name,
                       "' (expected \"linear\" or \"cosine\")"));
}

}  // namespace dmtrain::diffusion
