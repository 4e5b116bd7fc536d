// Test helpers: the reference fixtures of tests/fixtures/diffusion/fixtures.npz (made by
// make_fixtures.py with improved-diffusion) and the toy model both sides implement identically.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "dmtrain/diffusion/model_fn.hpp"
#include "dmtrain/util/npy.hpp"

namespace dmtrain::diffusion::testing {

// Keys as in make_fixtures.py ("loss/mse_linear/loss"); the .npz stores them with '.' for '/'.
inline const std::map<std::string, at::Tensor>& fixtures() {
  static const std::map<std::string, at::Tensor> all = [] {
    std::map<std::string, at::Tensor> m;
    for (auto& [name, tensor] :
         dmtrain::util::read_npz(std::string(DMTRAIN_FIXTURES_DIR) + "/diffusion/fixtures.npz")) {
      std::string key = name;
      std::replace(key.begin(), key.end(), '.', '/');
      m[key] = tensor;
    }
    return m;
  }();
  return all;
}

inline at::Tensor fx(const std::string& key) {
  const auto& all = fixtures();
  const auto it = all.find(key);
  TORCH_CHECK(it != all.end(), "fixture '", key, "' missing");
  return it->second;
}

inline bool fixtures_has(const std::string& key) {
  return fixtures().count(key) != 0;
}

// The toy model of make_fixtures.py: a fixed linear map of x plus sin(t) per channel plus labels.
inline ModelFn toy_model(int64_t c_out) {
  const at::Tensor weight = fx("model/W");
  return [weight, c_out](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
    const at::Tensor lin =
        at::matmul(x.flatten(1), weight.slice(0, 0, c_out * h * w).t()).view({n, c_out, h, w});
    const at::Tensor cvec = at::arange(1, c_out + 1, at::kFloat).view({1, c_out, 1, 1});
    at::Tensor res = lin + 0.1 * at::sin(t.to(at::kFloat).view({n, 1, 1, 1}) * 0.013 * cvec);
    if (y.defined()) res = res + 0.05 * y.to(at::kFloat).view({n, 1, 1, 1});
    return res;
  };
}

// Max |a - b| / max(|b|, floor): relative error that tolerates entries near 0.
inline double max_rel_err(const at::Tensor& a, const at::Tensor& b, double floor = 1e-3) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).abs() / b.to(at::kDouble).abs().clamp_min(floor))
      .max()
      .item<double>();
}

// PSNR in dB for images in [-1, 1] (peak-to-peak 2).
inline double psnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).mean().item<double>();
  return mse == 0 ? INFINITY : 10 * std::log10(4.0 / mse);
}

}  // namespace dmtrain::diffusion::testing
