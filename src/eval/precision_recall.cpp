#include "dmtrain/eval/precision_recall.hpp"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <limits>

#include "dmtrain/util/error.hpp"

namespace dmtrain::eval {
namespace {

int64_t block_of(const PrecisionRecallOptions& o) {
  return std::max<int64_t>(1, o.block);
}

at::Tensor tile(const at::Tensor& x, int64_t start, int64_t bs, const at::Device& device) {
  return x.narrow(0, start, std::min(bs, x.size(0) - start)).to(device, at::kDouble);
}

// Squared Euclidean distances between the rows of a [r, D] and b [c, D] (float64), >= 0.
at::Tensor squared_distances(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor na = a.square().sum(1, /*keepdim=*/true);
  const at::Tensor nb = b.square().sum(1).unsqueeze(0);
  return (na + nb - 2.0 * at::matmul(a, b.t())).clamp_min(0.0);
}

void check_set(const at::Tensor& x, int64_t k, const char* what) {
  if (x.dim() != 2) {
    throw Error(
        c10::str("precision/recall: ", what, " features are ", x.sizes(), ", expected [N, D]"));
  }
  if (x.size(0) <= k) {
    throw Error(c10::str("precision/recall: the ", what, " set has ", x.size(0),
                         " vectors; the k = ", k, " nearest-neighbour radii need at least ",
                         k + 1));
  }
}

}  // namespace

at::Tensor knn_squared_radii(const at::Tensor& features, const PrecisionRecallOptions& o) {
  at::NoGradGuard no_grad;
  if (o.k < 1) throw Error(c10::str("precision/recall: k must be >= 1, got ", o.k));
  check_set(features, o.k, "feature");
  const at::Tensor x = features.detach().to(o.device);
  const int64_t n = x.size(0), bs = block_of(o);
  at::Tensor out = at::empty({n}, at::kDouble);
  for (int64_t i = 0; i < n; i += bs) {
    const at::Tensor a = tile(x, i, bs, o.device);
    const int64_t rows = a.size(0);
    // The k + 1 smallest distances so far (self included, at 0), ascending.
    at::Tensor best =
        at::full({rows, o.k + 1}, std::numeric_limits<double>::infinity(), a.options());
    for (int64_t j = 0; j < n; j += bs) {
      at::Tensor d = squared_distances(a, tile(x, j, bs, o.device));
      if (i == j) d.diagonal().zero_();  // exactly 0 to itself, whatever the round-off
      best = std::get<0>(at::topk(at::cat({best, d}, 1), o.k + 1, 1, /*largest=*/false));
    }
    // Index 0 is the vector itself (or a duplicate of it: the same distance); index k is the
    // k-th nearest other vector.
    out.narrow(0, i, rows).copy_(best.select(1, o.k));
  }
  return out;
}

PrecisionRecall precision_recall(const at::Tensor& samples, const at::Tensor& reference,
                                 const PrecisionRecallOptions& o) {
  return precision_recall(samples, knn_squared_radii(samples, o), reference,
                          knn_squared_radii(reference, o), o);
}

PrecisionRecall precision_recall(const at::Tensor& samples, const at::Tensor& sample_radii,
                                 const at::Tensor& reference, const at::Tensor& reference_radii,
                                 const PrecisionRecallOptions& o) {
  at::NoGradGuard no_grad;
  check_set(samples, o.k, "sample");
  check_set(reference, o.k, "reference");
  if (samples.size(1) != reference.size(1)) {
    throw Error(c10::str("precision/recall: the samples have ", samples.size(1),
                         " features, the reference ", reference.size(1),
                         " (computed with different networks?)"));
  }
  TORCH_CHECK(sample_radii.dim() == 1 && sample_radii.size(0) == samples.size(0) &&
                  reference_radii.dim() == 1 && reference_radii.size(0) == reference.size(0),
              "precision_recall: one radius per vector expected");
  const at::Tensor s = samples.detach().to(o.device), r = reference.detach().to(o.device);
  const at::Tensor rs = sample_radii.to(o.device, at::kDouble);
  const at::Tensor rr = reference_radii.to(o.device, at::kDouble);
  const int64_t bs = block_of(o);
  at::Tensor sample_in = at::zeros({s.size(0)}, at::TensorOptions(o.device).dtype(at::kBool));
  at::Tensor reference_in = at::zeros({r.size(0)}, sample_in.options());
  for (int64_t i = 0; i < s.size(0); i += bs) {
    const at::Tensor a = tile(s, i, bs, o.device);
    const int64_t rows = a.size(0);
    for (int64_t j = 0; j < r.size(0); j += bs) {
      const at::Tensor b = tile(r, j, bs, o.device);
      const int64_t cols = b.size(0);
      const at::Tensor d = squared_distances(a, b);
      // Sample i inside reference ball j, and reference j inside sample ball i.
      sample_in.narrow(0, i, rows).logical_or_(d.le(rr.narrow(0, j, cols).unsqueeze(0)).any(1));
      reference_in.narrow(0, j, cols).logical_or_(d.le(rs.narrow(0, i, rows).unsqueeze(1)).any(0));
    }
  }
  PrecisionRecall pr;
  pr.precision = sample_in.to(at::kDouble).mean().item<double>();
  pr.recall = reference_in.to(at::kDouble).mean().item<double>();
  return pr;
}

}  // namespace dmtrain::eval
