// FeatureStats: the Gaussian FID fits to a set of feature vectors -- mean mu [D] and covariance
// sigma [D, D] with the N - 1 denominator (numpy.cov(features, rowvar=False), what pytorch-fid,
// clean-fid and guided-diffusion's evaluator compute) -- plus the .npz file format they share.
//
// StatsAccumulator takes the features batch by batch (so 50k x 2048 features never need to sit in
// memory at once) and keeps the running mean and centred scatter matrix in float64, merging each
// batch with Chan et al.'s pairwise update (mean and scatter of the batch about its own mean,
// then a rank-one correction). Unlike sum(x x^T) - N mu mu^T this does not cancel catastrophically
// when the features' mean is large against their spread; the result is that of numpy.cov on the
// concatenated batches up to float64 round-off, whatever the batching.
//
// File format: a .npz with float64 arrays `mu` [D] and `sigma` [D, D], the layout of pytorch-fid's
// --save-stats and of guided-diffusion's reference batches (which hold more arrays; only mu and
// sigma are read), stored (np.savez) or compressed (np.savez_compressed). load_stats accepts
// float32 files too. A features file adds `features` [N, D] (float32, the vectors the
// statistics came from): KID and precision/recall need the vectors, not only their Gaussian, so
// save_feature_set writes all three and load_feature_set returns the vectors where the file has
// them (mu and sigma are then optional: computed from the vectors when absent). Errors throw
// dmtrain::Error naming the file.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dmtrain::eval {

struct FeatureStats {
  at::Tensor mu;      // float64 [D], CPU
  at::Tensor sigma;   // float64 [D, D], CPU
  int64_t count = 0;  // number of feature vectors (0 when loaded from a file that does not say)
};

class StatsAccumulator {
 public:
  // features: [B, D] (any float dtype/device); D must be the same for every batch.
  void add(const at::Tensor& features);
  int64_t count() const { return count_; }
  // Throws dmtrain::Error with fewer than 2 vectors (the covariance is undefined).
  FeatureStats stats() const;

 private:
  int64_t count_ = 0;
  at::Tensor mean_;     // float64 [D]
  at::Tensor scatter_;  // float64 [D, D]: sum over vectors of (x - mean)(x - mean)^T
};

// A set of feature vectors as the metrics see it: its FID statistics, and the vectors themselves
// where known (undefined for a mu/sigma-only file, which gives FID but no KID or precision/recall).
struct FeatureSet {
  FeatureStats stats;
  at::Tensor features;  // float32 [N, D], CPU, or undefined
  bool has_features() const { return features.defined(); }
};

// Convenience: the stats of one [N, D] feature matrix.
FeatureStats feature_stats(const at::Tensor& features);

void save_stats(const std::string& path, const FeatureStats& stats);
FeatureStats load_stats(const std::string& path);
// mu, sigma (float64) and, when the set has them, features (float32) in one stored .npz.
void save_feature_set(const std::string& path, const FeatureSet& set);
// The statistics of one set of already-read .npz arrays (`path` names it in errors): `features`
// [N, D] -> the vectors, with the file's mu/sigma when present (else computed from the vectors);
// else mu and sigma alone. Returns an empty set (no stats) when the arrays hold neither.
FeatureSet feature_set_of(const std::vector<std::pair<std::string, at::Tensor>>& arrays,
                          const std::string& path);
// feature_set_of(read_npz(path)), and an error when the file holds neither form.
FeatureSet load_feature_set(const std::string& path);

}  // namespace dmtrain::eval
