// Consistency (paper Sec. 3.1, Eq. 1): how alike the images of K models are when every model is
// sampled from the same noise -- the same x_T and the same per-step noise (eval::sample_images
// makes sample i's noise depend only on (seed, i), so sampling each model with one seed does it).
//
// Definition used (the paper's Eq. 1 over "the matrix of images" X_k of model k):
//     PSNR(X_i, X_j) = 10 log10(255^2 / MSE(X_i, X_j)),
// MSE over every pixel and channel of all N images of the two sets at once (uint8 values), and
//     consistency = mean over the K (K - 1) / 2 pairs i < j of PSNR(X_i, X_j).
// Identical sets have MSE 0 and PSNR +infinity: it is returned as such, not capped (a cap would
// be an arbitrary number that averages into the mean); the mean is then +inf too, which is the
// honest answer for identical models. The paper reports ~20 dB for DMs and ~10 dB for GANs.
//
// The x0-prediction counterexample (paper Eq. 5) is the config key diffusion.mean_type: x0
// (epsilon is the default): train such a model and compare its consistency to epsilon models.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace dmtrain::eval {

// a, b: uint8 tensors of one shape (e.g. N,H,W,C). TORCH_CHECKs dtype and shape.
double psnr(const at::Tensor& a, const at::Tensor& b);

struct ConsistencyResult {
  at::Tensor table;   // float64 [K, K]: PSNR of every pair, +inf on the diagonal
  double mean = 0.0;  // mean over pairs i < j (+inf if any pair is identical)
};

// sets: K >= 2 image sets of one shape. Throws dmtrain::Error for K < 2 or mismatched shapes.
ConsistencyResult pairwise_psnr(const std::vector<at::Tensor>& sets);

// One row per model: the N images of set k (uint8 N,H,W,C) side by side in row k, with `padding`
// black pixels around the tiles (util::make_grid's layout). Returns uint8 H,W,C for write_png.
at::Tensor consistency_grid(const std::vector<at::Tensor>& sets, int64_t padding = 2);

}  // namespace dmtrain::eval
