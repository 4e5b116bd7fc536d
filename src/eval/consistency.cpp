#include "dmtrain/eval/consistency.hpp"

#include <cmath>
#include <limits>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"

namespace dmtrain::eval {

double psnr(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.scalar_type() == at::kByte && b.scalar_type() == at::kByte,
              "psnr: expected uint8 images, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.sizes() == b.sizes(), "psnr: shapes differ: ", a.sizes(), " vs ", b.sizes());
  const double mse =
      (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).square().mean().item<double>();
  if (mse == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

ConsistencyResult pairwise_psnr(const std::vector<at::Tensor>& sets) {
  const int64_t k = static_cast<int64_t>(sets.size());
  if (k < 2) throw Error(c10::str("consistency needs at least 2 models, got ", k));
  for (const auto& s : sets) {
    if (s.sizes() != sets[0].sizes() || s.scalar_type() != at::kByte) {
      throw Error(c10::str("consistency: image sets differ: ", s.sizes(), " vs ", sets[0].sizes(),
                           " (every model must make images of one shape)"));
    }
  }
  ConsistencyResult r;
  r.table = at::full({k, k}, std::numeric_limits<double>::infinity(), at::kDouble);
  auto t = r.table.accessor<double, 2>();
  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i + 1; j < k; ++j) {
      t[i][j] = t[j][i] = psnr(sets[static_cast<size_t>(i)], sets[static_cast<size_t>(j)]);
      sum += t[i][j];
    }
  }
  r.mean = sum / static_cast<double>(k * (k - 1) / 2);
  return r;
}

at::Tensor consistency_grid(const std::vector<at::Tensor>& sets, int64_t padding) {
  TORCH_CHECK(!sets.empty(), "consistency_grid: no image sets");
  const int64_t n = sets[0].size(0);
  // make_grid takes model-space floats and truncates (x + 1) * 127.5; the centre of pixel v's
  // bin, (v + 0.5) / 127.5 - 1, maps back to v exactly.
  const at::Tensor all = at::cat(sets, 0).permute({0, 3, 1, 2}).to(at::kFloat);
  return util::make_grid(all.add(0.5).div(127.5).sub(1.0), n, padding);
}

}  // namespace dmtrain::eval
