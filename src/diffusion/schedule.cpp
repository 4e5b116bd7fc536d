#include "dmtrain/diffusion/schedule.hpp"

#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "dmtrain/util/error.hpp"

namespace dmtrain::diffusion {

Schedule Schedule::from_betas(const at::Tensor& betas_in) {
  if (!betas_in.defined() || betas_in.dim() != 1 || betas_in.numel() < 1) {
    throw Error("diffusion: betas must be a non-empty 1-D tensor");
  }
  const at::Tensor b = betas_in.to(at::kDouble).cpu().contiguous().clone();
  if (!(b.gt(0).all().item<bool>() && b.le(1).all().item<bool>())) {
    throw Error("diffusion: every beta must lie in (0, 1]");
  }
  const int64_t n = b.size(0);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  Schedule s;
  s.betas = b;
  const at::Tensor alphas = 1.0 - b;
  // A sequential product, as numpy's cumprod.
  std::vector<double> cum(static_cast<size_t>(n));
  double acc = 1.0;
  const double* a = alphas.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) cum[static_cast<size_t>(i)] = acc *= a[i];
  s.alphas_cumprod = at::tensor(at::ArrayRef<double>(cum), f64);
  s.alphas_cumprod_prev = at::cat({at::ones({1}, f64), s.alphas_cumprod.slice(0, 0, n - 1)});
  s.alphas_cumprod_next = at::cat({s.alphas_cumprod.slice(0, 1, n), at::zeros({1}, f64)});
  s.sqrt_alphas_cumprod = at::sqrt(s.alphas_cumprod);
  s.one_minus_alphas_cumprod = 1.0 - s.alphas_cumprod;
  s.sqrt_one_minus_alphas_cumprod = at::sqrt(s.one_minus_alphas_cumprod);
  s.log_one_minus_alphas_cumprod = at::log(s.one_minus_alphas_cumprod);
  s.sqrt_recip_alphas_cumprod = at::sqrt(1.0 / s.alphas_cumprod);
  s.sqrt_recipm1_alphas_cumprod = at::sqrt(1.0 / s.alphas_cumprod - 1.0);
  s.posterior_variance = b * (1.0 - s.alphas_cumprod_prev) / s.one_minus_alphas_cumprod;
  // beta~_0 is 0 (log -inf), so the chain's first entry borrows beta~_1. With T = 1 there is no
  // beta~_1; ID would fail there, we fall back to beta~_0's own value.
  const at::Tensor first_var =
      n > 1 ? s.posterior_variance.slice(0, 1, 2) : s.posterior_variance.slice(0, 0, 1);
  s.posterior_log_variance_clipped =
      at::log(at::cat({first_var, s.posterior_variance.slice(0, 1, n)}));
  s.posterior_mean_coef1 = b * at::sqrt(s.alphas_cumprod_prev) / s.one_minus_alphas_cumprod;
  s.posterior_mean_coef2 =
      (1.0 - s.alphas_cumprod_prev) * at::sqrt(alphas) / s.one_minus_alphas_cumprod;
  s.log_betas = at::log(b);
  s.fixed_large_variance = at::cat({first_var, b.slice(0, 1, n)});
  s.fixed_large_log_variance = at::log(s.fixed_large_variance);
  return s;
}

at::Tensor on_device(const at::Tensor& table, const at::Device& device) {
  if (table.device() == device) return table;
  // Why a cache: copying a table from pageable host memory on every call makes the host wait
  // for the device queue to drain (a pageable cudaMemcpy is synchronous), once per extract, a
  // dozen times per training step. Each table is copied once per device and kept with its source
  // (holding the source keeps its address from being reused by another table).
  static std::mutex mu;
  static std::map<std::pair<const void*, std::string>, std::pair<at::Tensor, at::Tensor>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(static_cast<const void*>(table.unsafeGetTensorImpl()), device.str());
  auto it = cache.find(key);
  if (it == cache.end() || it->second.first.data_ptr() != table.data_ptr() ||
      it->second.first._version() != table._version()) {
    // Every respaced process (one per sample grid or FID evaluation) brings new tables: bound
    // the cache so that a long run does not keep them all.
    if (it == cache.end() && cache.size() >= 1024) cache.clear();
    it = cache.insert_or_assign(key, std::make_pair(table, table.to(device))).first;
  }
  return it->second.second;
}

at::Tensor extract(const at::Tensor& table, const at::Tensor& t, int64_t ndim) {
  TORCH_CHECK(t.dim() == 1, "extract: t must be 1-D, got ", t.sizes());
  at::Tensor res = on_device(table, t.device()).index_select(0, t.to(at::kLong)).to(at::kFloat);
  std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(ndim, 1)), 1);
  shape[0] = t.size(0);
  return res.view(shape);
}

}  // namespace dmtrain::diffusion
