#include "dmtrain/eval/kid.hpp"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dmtrain/util/error.hpp"

namespace dmtrain::eval {
namespace {

void check_sets(const at::Tensor& x, const at::Tensor& y) {
  if (x.dim() != 2 || y.dim() != 2 || x.size(1) != y.size(1)) {
    throw Error(c10::str("kid: the feature sets are ", x.sizes(), " and ", y.sizes(),
                         "; expected [N, D] with one D (features of one network)"));
  }
  if (x.size(0) < 2 || y.size(0) < 2) {
    throw Error(c10::str("kid: needs at least 2 feature vectors per set, got ", x.size(0), " and ",
                         y.size(0)));
  }
}

struct KernelSums {
  double total = 0.0;     // sum over all (i, j)
  double diagonal = 0.0;  // sum over i of k(a_i, b_i) (meaningful when a is b)
};

// Sums of k(a_i, b_j) = (a_i . b_j / d + 1)^3 over [block x block] tiles, in float64 on `device`.
KernelSums kernel_sums(const at::Tensor& a, const at::Tensor& b, bool same, const KidOptions& o) {
  const double d = static_cast<double>(a.size(1));
  const int64_t bs = std::max<int64_t>(1, o.block);
  KernelSums s;
  for (int64_t i = 0; i < a.size(0); i += bs) {
    const at::Tensor ai = a.narrow(0, i, std::min(bs, a.size(0) - i)).to(o.device, at::kDouble);
    for (int64_t j = 0; j < b.size(0); j += bs) {
      const at::Tensor bj = b.narrow(0, j, std::min(bs, b.size(0) - j)).to(o.device, at::kDouble);
      const at::Tensor k = (at::matmul(ai, bj.t()) / d + 1.0).pow(3);
      s.total += k.sum().item<double>();
      if (same && i == j) s.diagonal += k.diagonal().sum().item<double>();
    }
  }
  return s;
}

double mmd2(const at::Tensor& x, const at::Tensor& y, const KidOptions& o) {
  const double n = static_cast<double>(x.size(0)), m = static_cast<double>(y.size(0));
  const KernelSums xx = kernel_sums(x, x, true, o), yy = kernel_sums(y, y, true, o);
  const KernelSums xy = kernel_sums(x, y, false, o);
  return (xx.total - xx.diagonal) / (n * (n - 1.0)) + (yy.total - yy.diagonal) / (m * (m - 1.0)) -
         2.0 * xy.total / (n * m);
}

}  // namespace

double mmd2_unbiased(const at::Tensor& x, const at::Tensor& y, const KidOptions& options) {
  at::NoGradGuard no_grad;
  check_sets(x, y);
  return mmd2(x.detach(), y.detach(), options);
}

Kid kid(const at::Tensor& x, const at::Tensor& y, const KidOptions& options) {
  at::NoGradGuard no_grad;
  check_sets(x, y);
  if (options.subsets < 1 || options.subset_size < 2) {
    throw Error(c10::str("kid: needs subsets >= 1 and subset_size >= 2, got ", options.subsets,
                         " and ", options.subset_size));
  }
  const int64_t m = std::min({options.subset_size, x.size(0), y.size(0)});
  // Move each set to the device once (in its own dtype); subsets are gathered there.
  const at::Tensor xd = x.detach().to(options.device), yd = y.detach().to(options.device);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<double> values;
  values.reserve(static_cast<size_t>(options.subsets));
  for (int64_t s = 0; s < options.subsets; ++s) {
    const at::Tensor ix = at::randperm(x.size(0), gen, at::kLong).narrow(0, 0, m);
    const at::Tensor iy = at::randperm(y.size(0), gen, at::kLong).narrow(0, 0, m);
    values.push_back(mmd2(xd.index_select(0, ix.to(options.device)),
                          yd.index_select(0, iy.to(options.device)), options));
  }
  Kid k;
  k.subsets = options.subsets;
  k.subset_size = m;
  for (double v : values) k.mean += v;
  k.mean /= static_cast<double>(values.size());
  for (double v : values) k.std += (v - k.mean) * (v - k.mean);
  k.std = std::sqrt(k.std / static_cast<double>(values.size()));
  return k;
}

}  // namespace dmtrain::eval
