#include "dmtrain/diffusion/respace.hpp"

#include <cmath>
#include <stdexcept>

#include "dmtrain/util/error.hpp"

namespace dmtrain::diffusion {
namespace {

int64_t parse_count(const std::string& raw, const std::string& spec) {
  // Python's int() accepts surrounding blanks ("10, 15"), so do we.
  const size_t first = raw.find_first_not_of(" \t");
  const size_t last = raw.find_last_not_of(" \t");
  const std::string token = first == std::string::npos ? "" : raw.substr(first, last - first + 1);
  size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(token, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (token.empty() || used != token.size() || value < 1) {
    throw Error(c10::str("diffusion: timestep_respacing '", spec, "': '", token,
                         "' is not a positive integer step count"));
  }
  return static_cast<int64_t>(value);
}

// Python's round(): halves go to the even neighbour (banker's rounding), as std::nearbyint does in
// the default rounding mode.
int64_t py_round(double x) {
  return static_cast<int64_t>(std::nearbyint(x));
}

}  // namespace

std::set<int64_t> space_timesteps(int64_t num_timesteps, const std::string& spec) {
  if (num_timesteps < 1) {
    throw Error(c10::str("diffusion: cannot respace a process of ", num_timesteps, " steps"));
  }
  if (spec.rfind("ddim", 0) == 0) {
    const int64_t desired = parse_count(spec.substr(4), spec);
    for (int64_t stride = 1; stride < num_timesteps; ++stride) {
      if ((num_timesteps + stride - 1) / stride == desired) {
        std::set<int64_t> steps;
        for (int64_t i = 0; i < num_timesteps; i += stride) steps.insert(i);
        return steps;
      }
    }
    throw Error(c10::str("diffusion: timestep_respacing '", spec, "': cannot create exactly ",
                         desired, " steps out of ", num_timesteps, " with an integer stride"));
  }
  std::vector<int64_t> counts;
  size_t begin = 0;
  while (true) {
    const size_t comma = spec.find(',', begin);
    counts.push_back(parse_count(spec.substr(begin, comma - begin), spec));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  const int64_t sections = static_cast<int64_t>(counts.size());
  const int64_t size_per = num_timesteps / sections;
  const int64_t extra = num_timesteps % sections;
  int64_t start = 0;
  std::set<int64_t> steps;
  for (int64_t i = 0; i < sections; ++i) {
    const int64_t size = size_per + (i < extra ? 1 : 0);
    const int64_t count = counts[static_cast<size_t>(i)];
    if (size < count) {
      throw Error(c10::str("diffusion: timestep_respacing '", spec,
                           "': cannot divide a section of ", size, " steps (of ", num_timesteps,
                           ") into ", count));
    }
    const double stride =
        count <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(count - 1);
    double cur = 0.0;  // accumulated like ID (not i * stride) so rounding ties match
    for (int64_t k = 0; k < count; ++k) {
      steps.insert(start + py_round(cur));
      cur += stride;
    }
    start += size;
  }
  return steps;
}

Respacing respace_betas(const at::Tensor& base_betas, const std::set<int64_t>& use_timesteps) {
  TORCH_CHECK(base_betas.dim() == 1, "respace_betas: betas must be 1-D");
  const at::Tensor betas = base_betas.to(at::kDouble).contiguous().cpu();
  const double* b = betas.data_ptr<double>();
  const int64_t n = betas.size(0);
  TORCH_CHECK(!use_timesteps.empty() && *use_timesteps.rbegin() < n && *use_timesteps.begin() >= 0,
              "respace_betas: kept timesteps must be a non-empty subset of [0, ", n, ")");
  Respacing out;
  std::vector<double> new_betas;
  double cumprod = 1.0;
  double last = 1.0;
  for (int64_t i = 0; i < n; ++i) {
    cumprod *= 1.0 - b[i];
    if (use_timesteps.count(i) != 0) {
      new_betas.push_back(1.0 - cumprod / last);
      last = cumprod;
      out.timestep_map.push_back(i);
    }
  }
  out.betas = at::tensor(at::ArrayRef<double>(new_betas), at::TensorOptions().dtype(at::kDouble));
  return out;
}

}  // namespace dmtrain::diffusion
