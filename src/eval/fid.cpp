#include "dmtrain/eval/fid.hpp"

#include <utility>
#include <vector>

#include "dmtrain/eval/frechet_distance.hpp"
#include "dmtrain/eval/oom_batches.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/npy.hpp"
#include "dmtrain/util/stop_request.hpp"

namespace dmtrain::eval {

namespace {

// The images' statistics, and their vectors in *features when given.
FeatureStats run_network(const at::Tensor& images, const InceptionNet& net, int64_t batch,
                         at::Tensor* logits, at::Tensor* features,
                         const std::function<void(int64_t, int64_t)>& progress) {
  if (batch < 1) throw Error(c10::str("fid: batch must be >= 1, got ", batch));
  if (images.dim() != 4 || images.size(0) < 2) {
    throw Error(c10::str("fid: need at least 2 images (uint8 N,H,W,C), got ", images.sizes()));
  }
  const int64_t n = images.size(0);
  StatsAccumulator acc;
  std::vector<at::Tensor> all_logits, all_features;
  bool have_logits = true;
  // An out-of-memory forward leaves nothing behind (acc.add comes after it), so it can be
  // retried at half the batch (oom_batches.hpp); the features do not depend on the batching.
  for_each_batch(
      n, batch,
      [&](int64_t start, int64_t bs) {
        InceptionOutput out = net.forward(images.narrow(0, start, bs));
        acc.add(out.features);
        if (features != nullptr) all_features.push_back(out.features);
        have_logits = have_logits && out.logits.defined();
        if (logits != nullptr && have_logits) all_logits.push_back(out.logits);
        if (progress) progress(start + bs, n);
      },
      [](int64_t failed, int64_t to) {
        log::warn(c10::str("fid: the GPU ran out of memory at ", failed, " images per Inception ",
                           "forward; retrying at ", to, " (eval.batch sets the size)"));
      });
  if (logits != nullptr) *logits = have_logits ? at::cat(all_logits, 0) : at::Tensor();
  if (features != nullptr) *features = at::cat(all_features, 0);
  return acc.stats();
}

}  // namespace

FeatureStats compute_stats(const at::Tensor& images, const InceptionNet& net, int64_t batch,
                           at::Tensor* logits,
                           const std::function<void(int64_t, int64_t)>& progress) {
  return run_network(images, net, batch, logits, nullptr, progress);
}

FeatureSet compute_feature_set(const at::Tensor& images, const InceptionNet& net, int64_t batch,
                               at::Tensor* logits,
                               const std::function<void(int64_t, int64_t)>& progress) {
  FeatureSet set;
  set.stats = run_network(images, net, batch, logits, &set.features, progress);
  return set;
}

FeatureSet load_reference(const std::string& path, const InceptionNet& net, int64_t batch,
                          const std::function<void(int64_t, int64_t)>& progress,
                          bool* from_images) {
  if (from_images != nullptr) *from_images = false;
  const auto arrays = util::read_npz(path);
  FeatureSet set = feature_set_of(arrays, path);
  if (set.has_features()) return set;
  at::Tensor images;
  for (const auto& [name, a] : arrays) {
    if (name != "arr_0") continue;
    if (a.dim() != 4 || a.scalar_type() != at::kByte) {
      throw Error(c10::str("'", path, "': arr_0 is ", a.scalar_type(), " ", a.sizes(),
                           ", expected uint8 N,H,W,C images"));
    }
    images = a;
  }
  if (!images.defined()) {
    if (set.stats.mu.defined()) return set;  // mu/sigma only: FID only
    throw Error("'" + path +
                "' holds none of: features [N, D], mu/sigma statistics, arr_0 images (expected "
                "a reference .npz)");
  }
  log::info(c10::str("inception features of the ", images.size(0), " reference images in ", path,
                     " (", images.size(1), "x", images.size(2), ", resize '",
                     resize_mode_name(net.options().resize), "' to ", net.options().image_size,
                     ")"));
  FeatureSet computed = compute_feature_set(images, net, batch, nullptr, progress);
  if (from_images != nullptr) *from_images = true;
  if (set.stats.mu.defined()) {
    // The file's own statistics give FID, as its evaluator does; the vectors the rest.
    if (set.stats.mu.size(0) != computed.features.size(1)) {
      throw Error(c10::str("'", path, "': mu has ", set.stats.mu.size(0), " entries, but the ",
                           "network gives ", computed.features.size(1), " features per image"));
    }
    computed.stats = set.stats;
    computed.stats.count = images.size(0);
  }
  return computed;
}

double fid_from_stats(const FeatureStats& a, const FeatureStats& b) {
  TORCH_CHECK(a.mu.defined() && b.mu.defined(), "fid_from_stats: empty statistics");
  if (a.mu.size(0) != b.mu.size(0)) {
    throw Error(c10::str("fid: the statistics have ", a.mu.size(0), " and ", b.mu.size(0),
                         " features (computed with different networks?)"));
  }
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma);
}

Scores score_sets(const FeatureSet& samples, const FeatureSet& reference,
                  const ScoreOptions& options, const at::Tensor& reference_radii) {
  Scores out;
  out.fid = fid_from_stats(samples.stats, reference.stats);
  if (!reference.has_features() || !samples.has_features()) {
    out.unavailable =
        !reference.has_features()
            ? "KID and precision/recall n/a: the reference holds only mu/sigma statistics, they "
              "need its feature vectors (give reference images, a data set, or a features .npz "
              "such as dmtrain fid --cache-ref writes)"
            : "KID and precision/recall n/a: the samples' feature vectors were not kept";
    return out;
  }
  const Kid k = kid(samples.features, reference.features, options.kid);
  out.kid = k.mean;
  out.kid_std = k.std;
  out.kid_subsets = k.subsets;
  out.kid_subset_size = k.subset_size;
  const int64_t need = options.pr.k + 1;
  if (samples.features.size(0) < need || reference.features.size(0) < need) {
    out.unavailable =
        c10::str("precision/recall need at least ", need, " vectors per set (k = ", options.pr.k,
                 "), got ", samples.features.size(0), " and ", reference.features.size(0));
    return out;
  }
  const at::Tensor rr = reference_radii.defined()
                            ? reference_radii
                            : knn_squared_radii(reference.features, options.pr);
  const PrecisionRecall pr =
      precision_recall(samples.features, knn_squared_radii(samples.features, options.pr),
                       reference.features, rr, options.pr);
  out.precision = pr.precision;
  out.recall = pr.recall;
  out.k = options.pr.k;
  return out;
}

FidEvaluator::FidEvaluator(FidEvaluatorOptions options) : options_(std::move(options)) {
  if (options_.n < 2) throw Error(c10::str("fid: n must be >= 2, got ", options_.n));
  InceptionOptions io;
  io.device = options_.device;
  io.resize = options_.resize;
  net_ = std::make_unique<InceptionNet>(options_.inception, io);
  reference_ = options_.reference.empty()
                   ? options_.reference_set
                   : load_reference(options_.reference, *net_, options_.batch);
  if (!reference_.stats.mu.defined()) {
    throw Error("fid: no reference statistics (give a .npz path or computed statistics)");
  }
  PrecisionRecallOptions pr;
  pr.device = options_.device;
  if (reference_.has_features() && reference_.features.size(0) > pr.k) {
    reference_radii_ = knn_squared_radii(reference_.features, pr);
  }
}

Scores FidEvaluator::evaluate(const diffusion::GaussianDiffusion& diffusion,
                              const diffusion::ModelFn& model,
                              const std::vector<int64_t>& image_shape, const at::Tensor& labels) {
  SampleImagesOptions so;
  so.n = options_.n;
  so.image_shape = image_shape;
  so.seed = options_.seed;
  so.sampler = options_.sampler;
  so.eta = options_.eta;
  so.batch = options_.batch;
  so.labels = labels;
  so.device = options_.device;
  // During training a stop signal does not wait for the evaluation (util/stop_request.hpp).
  so.progress = [](int64_t, int64_t, int64_t) { util::throw_if_stop_requested("FID evaluation"); };
  const SampledImages s = sample_images(diffusion.respaced(options_.steps), model, so);
  util::throw_if_stop_requested("FID evaluation");
  // The vectors are only worth keeping when the reference has some to compare them with.
  if (reference_.has_features()) {
    last_ = compute_feature_set(s.images, *net_, options_.batch);
  } else {
    last_ = FeatureSet{compute_stats(s.images, *net_, options_.batch), at::Tensor()};
  }
  util::throw_if_stop_requested("FID evaluation");
  ScoreOptions o;
  o.kid.device = options_.device;
  o.pr.device = options_.device;
  return score_sets(last_, reference_, o, reference_radii_);
}

}  // namespace dmtrain::eval
