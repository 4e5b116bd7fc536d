// KID, the Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the squared
// maximum mean discrepancy between two sets of Inception pool features under the cubic polynomial
// kernel
//     k(x, y) = (x . y / d + 1)^3,   d = the feature dimension,
// estimated without bias:
//     MMD^2_u = sum_{i != j} k(x_i, x_j) / (n (n - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
//               - 2 sum_{i, j} k(x_i, y_j) / (n m).
// The unbiased estimate can be negative (identical sets give 2 (mean_{i != j} k - mean_i k(x_i,
// x_i)) / n, not 0); it is reported as is, as the references do.
//
// kid() is the subset estimator of torch-fidelity (kid_subsets = 100, kid_subset_size = 1000)
// and clean-fid (num_subsets = 100, max_subset_size = 1000): `subsets` times, draw
// m = min(subset_size, n_x, n_y) vectors from each set without replacement and take MMD^2_u of
// the two subsets; report the mean and the population standard deviation (numpy's np.std, as
// torch-fidelity's kid_std) of the `subsets` values. Why subsets: a 1000 x 1000 kernel per subset
// keeps the cost at subsets x 3 m^2 d multiply-adds whatever the set sizes (1.2 TFLOP for the
// defaults at d = 2048), and the defaults are those of the tools whose numbers papers quote.
// Since MMD^2_u is a U-statistic, its expectation over random subsets is MMD^2_u of the full
// sets, so more subsets only reduce the spread. The draws come from a CPU generator seeded with
// `seed`: the same sets give the same KID.
//
// Numerics: kernels are computed in float64 on `device` (moved there block by block), in blocks
// of at most `block` x `block` entries, so full-set mmd2_unbiased of 50k x 50k needs no 50k^2
// matrix. Inputs: [N, D] features of any float dtype and device.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace dmtrain::eval {

struct KidOptions {
  int64_t subsets = 100;       // subsets averaged
  int64_t subset_size = 1000;  // vectors per subset (capped at the smaller set's size)
  uint64_t seed = 0;           // of the subset draws
  int64_t block = 4096;        // kernel rows/columns per block
  at::Device device = at::kCPU;
};

struct Kid {
  double mean = 0.0;
  double std = 0.0;  // over the subsets, population std
  int64_t subsets = 0, subset_size = 0;
};

// MMD^2_u of the full sets x [n, D], y [m, D] (n, m >= 2) under the kernel above. Throws
// dmtrain::Error when a set has fewer than 2 vectors or the dimensions differ.
double mmd2_unbiased(const at::Tensor& x, const at::Tensor& y, const KidOptions& options = {});

// The subset estimator above. Throws dmtrain::Error as mmd2_unbiased, or for subsets < 1.
Kid kid(const at::Tensor& x, const at::Tensor& y, const KidOptions& options = {});

}  // namespace dmtrain::eval
