// FID end to end: images -> Inception features -> Gaussian statistics -> Frechet distance, and
// FidEvaluator, the object a training loop holds to score its model every so often.
//
// compute_stats streams the images through the network `batch` at a time (features never all in
// memory), accumulating FeatureStats in float64 (feature_stats.hpp). FID is frechet_distance of
// the two statistics (frechet_distance.hpp). The reference statistics come from a .npz (`mu`,
// `sigma`: pytorch-fid / guided-diffusion reference batches, or one written by `dmtrain fid
// --cache-ref`) or from reference images through compute_stats.
//
// FidEvaluator: draws `n` samples with eval::sample_images (sample i depends only on (seed, i), so
// successive evaluations of one run see the same noise and differ only by the model), scores them
// against the reference and returns FID. It owns the network and the reference statistics; it
// holds no reference to the model or the diffusion between calls. The caller passes the model it
// wants scored (normally the EMA weights) already in eval mode.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/diffusion/model_fn.hpp"
#include "dmtrain/eval/feature_stats.hpp"
#include "dmtrain/eval/inception.hpp"

namespace dmtrain::eval {

// images: uint8 N,H,W,C (C in {1, 3}, CPU). The network runs on its own options().device.
// `logits`, when given, receives the concatenated logits [N, K] (undefined if the network has
// none). `progress(done, total)` is called after each batch. Throws dmtrain::Error for N < 2 or
// batch < 1.
FeatureStats compute_stats(const at::Tensor& images, const InceptionNet& net, int64_t batch,
                           at::Tensor* logits = nullptr,
                           const std::function<void(int64_t, int64_t)>& progress = {});

// FID between two statistics; throws dmtrain::Error when their feature dimensions differ
// (statistics of different networks).
double fid_from_stats(const FeatureStats& a, const FeatureStats& b);

struct FidEvaluatorOptions {
  std::string inception;         // TorchScript file (see inception.hpp)
  std::string reference;         // .npz with mu, sigma; or leave empty and set reference_stats
  FeatureStats reference_stats;  // used when `reference` is empty
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
  // Loads the network and the reference statistics (dmtrain::Error for bad files or options).
  explicit FidEvaluator(FidEvaluatorOptions options);

  // Samples options.n images of shape image_shape = {C, H, W} from `model` under `diffusion`
  // (the trained process; respaced here with options.steps) and returns their FID against the
  // reference. labels: int64 [n] for class-conditional models (e.g. make_labels("", n, K, seed)),
  // else undefined.
  double evaluate(const diffusion::GaussianDiffusion& diffusion, const diffusion::ModelFn& model,
                  const std::vector<int64_t>& image_shape, const at::Tensor& labels = {});

  // The statistics of the last evaluate()'s samples (empty before the first call).
  const FeatureStats& last_stats() const { return last_; }
  const FeatureStats& reference() const { return reference_; }
  const FidEvaluatorOptions& options() const { return options_; }

 private:
  FidEvaluatorOptions options_;
  std::unique_ptr<InceptionNet> net_;
  FeatureStats reference_, last_;
};

}  // namespace dmtrain::eval
