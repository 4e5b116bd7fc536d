// Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric
// for Assessing Generative Models"), the k-NN manifold estimate of NVlabs' precision-recall code
// and guided-diffusion's evaluator (ManifoldEstimator, nhood_sizes = (3,)):
//   * each vector of a set gets a ball whose radius is the distance to its k-th nearest neighbour
//     in its own set, itself excluded (the set must hold at least k + 1 vectors);
//   * precision = the fraction of sample vectors inside at least one reference ball
//     (|s - r_j| <= radius(r_j), boundary included as the references' `<=`);
//   * recall = the fraction of reference vectors inside at least one sample ball.
// Distances are Euclidean between Inception pool features; squared distances are compared with
// squared radii, so no square root enters the decisions.
//
// Memory stays bounded: squared distances |a|^2 + |b|^2 - 2 a.b are formed in float64 on
// `device`, `block` x `block` entries at a time (128 MiB at 4096), so 50k x 50k sets never need a
// 50k^2 matrix; the k nearest so far are merged tile by tile. Cost: N_s^2 + N_r^2 + N_s N_r
// distances (the radii of a fixed reference can be computed once and passed in). Inputs: [N, D]
// features of any float dtype and device.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace dmtrain::eval {

struct PrecisionRecallOptions {
  int64_t k = 3;         // neighbourhood size, the paper's and the references' default
  int64_t block = 4096;  // distance-tile rows/columns
  at::Device device = at::kCPU;
};

struct PrecisionRecall {
  double precision = 0.0;
  double recall = 0.0;
};

// Squared distance of each vector to its k-th nearest neighbour in `features`, itself excluded:
// float64 [N], CPU. Throws dmtrain::Error when N <= k.
at::Tensor knn_squared_radii(const at::Tensor& features,
                             const PrecisionRecallOptions& options = {});

// Precision and recall of `samples` against `reference` (same D). Throws dmtrain::Error when a
// set has <= k vectors or the dimensions differ.
PrecisionRecall precision_recall(const at::Tensor& samples, const at::Tensor& reference,
                                 const PrecisionRecallOptions& options = {});
// The same with the radii given (knn_squared_radii of each set), e.g. a reference's, kept
// between evaluations.
PrecisionRecall precision_recall(const at::Tensor& samples, const at::Tensor& sample_radii,
                                 const at::Tensor& reference, const at::Tensor& reference_radii,
                                 const PrecisionRecallOptions& options = {});

}  // namespace dmtrain::eval
