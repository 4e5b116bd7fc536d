// FID end to end: images -> Inception features -> Gaussian statistics -> Frechet distance; from
// the same pool features, where the reference's vectors are known, KID (kid.hpp) and precision /
// recall (precision_recall.hpp); and FidEvaluator, the object a training loop holds to score its
// model every so often.
//
// compute_stats streams the images through the network `batch` at a time (features never all in
// memory), accumulating FeatureStats in float64 (feature_stats.hpp); compute_feature_set also
// keeps the vectors (float32, N x D x 4 bytes: 400 MB for 50k x 2048). FID is frechet_distance of
// the two statistics (frechet_distance.hpp). load_reference reads a reference .npz in any of the
// forms below; the reference can also be images through compute_feature_set.
//   `features` [N, D] (+ mu, sigma)   a features file (`dmtrain fid --cache-ref`): all metrics
//   `mu`, `sigma` + `arr_0` images    guided-diffusion's reference batches: FID from the file's
//                                     statistics, the vectors from the images through the network
//   `arr_0` images                    everything from the images
//   `mu`, `sigma` only                pytorch-fid --save-stats: FID only; KID and precision /
//                                     recall are reported unavailable (Scores::unavailable)
//
// FidEvaluator: draws `n` samples with eval::sample_images (sample i depends only on (seed, i), so
// successive evaluations of one run see the same noise and differ only by the model), scores them
// against the reference and returns the Scores. It owns the network, the reference and (when the
// reference has vectors) their k-NN radii, computed once; it holds no reference to the model or
// the diffusion between calls. The caller passes the model it wants scored (normally the EMA
// weights) already in eval mode.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/diffusion/model_fn.hpp"
#include "dmtrain/eval/feature_stats.hpp"
#include "dmtrain/eval/inception.hpp"
#include "dmtrain/eval/kid.hpp"
#include "dmtrain/eval/precision_recall.hpp"

namespace dmtrain::eval {

// images: uint8 N,H,W,C (C in {1, 3}, CPU). The network runs on its own options().device.
// `logits`, when given, receives the concatenated logits [N, K] (undefined if the network has
// none). `progress(done, total)` is called after each batch. Throws dmtrain::Error for N < 2 or
// batch < 1.
FeatureStats compute_stats(const at::Tensor& images, const InceptionNet& net, int64_t batch,
                           at::Tensor* logits = nullptr,
                           const std::function<void(int64_t, int64_t)>& progress = {});
// compute_stats, keeping the feature vectors too (same arguments and errors).
FeatureSet compute_feature_set(const at::Tensor& images, const InceptionNet& net, int64_t batch,
                               at::Tensor* logits = nullptr,
                               const std::function<void(int64_t, int64_t)>& progress = {});

// A reference .npz in one of the forms above (images go through `net`, `batch` at a time).
// `from_images`, when given, is set to whether the vectors were computed here. Throws
// dmtrain::Error naming the file when it holds none of the forms, when arr_0 is not uint8
// N,H,W,C, or when the file's mu has another dimension than the network's features.
FeatureSet load_reference(const std::string& path, const InceptionNet& net, int64_t batch,
                          const std::function<void(int64_t, int64_t)>& progress = {},
                          bool* from_images = nullptr);

// FID between two statistics; throws dmtrain::Error when their feature dimensions differ
// (statistics of different networks).
double fid_from_stats(const FeatureStats& a, const FeatureStats& b);

// FID, and from the vectors KID and precision/recall. NaN marks a metric not computed, and
// `unavailable` then says why (a mu/sigma-only reference; too few vectors for k-NN radii).
struct Scores {
  double fid = NAN;
  double kid = NAN, kid_std = NAN;
  int64_t kid_subsets = 0, kid_subset_size = 0;
  double precision = NAN, recall = NAN;
  int64_t k = 0;            // precision/recall's neighbourhood size
  std::string unavailable;  // "" when every metric was computed
};
struct ScoreOptions {
  KidOptions kid;
  PrecisionRecallOptions pr;
};
// Scores of `samples` against `reference` (FID always; the rest when both sets have vectors).
// reference_radii: knn_squared_radii of the reference's vectors if already known, else undefined.
Scores score_sets(const FeatureSet& samples, const FeatureSet& reference,
                  const ScoreOptions& options = {}, const at::Tensor& reference_radii = {});

struct FidEvaluatorOptions {
  std::string inception;         // TorchScript file (see inception.hpp)
  std::string reference;         // a reference .npz (load_reference), or leave empty and set
  FeatureSet reference_set;      // used when `reference` is empty
  int64_t n = 5000;              // samples per evaluation (FID is biased upward for small n)
  uint64_t seed = 0;             // sample i uses sample_seed(seed, i), the same every call
  std::string sampler = "ddim";  // ddpm | ddim
  std::string steps = "ddim50";  // respacing spec of the trained process
  double eta = 0.0;
  int64_t batch = 64;            // samples per model forward and images per network forward
  at::Device device = at::kCPU;  // where sampling and the network run
  ResizeMode resize = ResizeMode::kTfBilinear;
};

class FidEvaluator {
 public:
  // Loads the network and the reference, and the reference vectors' k-NN radii when it has
  // vectors (dmtrain::Error for bad files or options).
  explicit FidEvaluator(FidEvaluatorOptions options);

  // Samples options.n images of shape image_shape = {C, H, W} from `model` under `diffusion`
  // (the trained process; respaced here with options.steps) and returns their scores against the
  // reference (KID and precision/recall on options.device). labels: int64 [n] for
  // class-conditional models (e.g. make_labels("", n, K, seed)), else undefined.
  Scores evaluate(const diffusion::GaussianDiffusion& diffusion, const diffusion::ModelFn& model,
                  const std::vector<int64_t>& image_shape, const at::Tensor& labels = {});

  // The statistics and vectors of the last evaluate()'s samples (empty before the first call).
  const FeatureSet& last() const { return last_; }
  const FeatureSet& reference() const { return reference_; }
  const FidEvaluatorOptions& options() const { return options_; }

 private:
  FidEvaluatorOptions options_;
  std::unique_ptr<InceptionNet> net_;
  FeatureSet reference_, last_;
  at::Tensor reference_radii_;  // knn_squared_radii of reference_.features, or undefined
};

}  // namespace dmtrain::eval
