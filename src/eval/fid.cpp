#include "dmtrain/eval/fid.hpp"

#include <utility>

#include "dmtrain/eval/frechet_distance.hpp"
#include "dmtrain/eval/oom_batches.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::eval {

FeatureStats compute_stats(const at::Tensor& images, const InceptionNet& net, int64_t batch,
                           at::Tensor* logits,
                           const std::function<void(int64_t, int64_t)>& progress) {
  if (batch < 1) throw Error(c10::str("fid: batch must be >= 1, got ", batch));
  if (images.dim() != 4 || images.size(0) < 2) {
    throw Error(c10::str("fid: need at least 2 images (uint8 N,H,W,C), got ", images.sizes()));
  }
  const int64_t n = images.size(0);
  StatsAccumulator acc;
  std::vector<at::Tensor> all_logits;
  bool have_logits = true;
  // An out-of-memory forward leaves nothing behind (acc.add comes after it), so it can be
  // retried at half the batch (oom_batches.hpp); the features do not depend on the batching.
  for_each_batch(
      n, batch,
      [&](int64_t start, int64_t bs) {
        InceptionOutput out = net.forward(images.narrow(0, start, bs));
        acc.add(out.features);
        have_logits = have_logits && out.logits.defined();
        if (logits != nullptr && have_logits) all_logits.push_back(out.logits);
        if (progress) progress(start + bs, n);
      },
      [](int64_t failed, int64_t to) {
        log::warn(c10::str("fid: the GPU ran out of memory at ", failed, " images per Inception ",
                           "forward; retrying at ", to, " (eval.batch sets the size)"));
      });
  if (logits != nullptr) *logits = have_logits ? at::cat(all_logits, 0) : at::Tensor();
  return acc.stats();
}

double fid_from_stats(const FeatureStats& a, const FeatureStats& b) {
  TORCH_CHECK(a.mu.defined() && b.mu.defined(), "fid_from_stats: empty statistics");
  if (a.mu.size(0) != b.mu.size(0)) {
    throw Error(c10::str("fid: the statistics have ", a.mu.size(0), " and ", b.mu.size(0),
                         " features (computed with different networks?)"));
  }
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma);
}

FidEvaluator::FidEvaluator(FidEvaluatorOptions options) : options_(std::move(options)) {
  if (options_.n < 2) throw Error(c10::str("fid: n must be >= 2, got ", options_.n));
  InceptionOptions io;
  io.device = options_.device;
  io.resize = options_.resize;
  net_ = std::make_unique<InceptionNet>(options_.inception, io);
  reference_ =
      options_.reference.empty() ? options_.reference_stats : load_stats(options_.reference);
  if (!reference_.mu.defined()) {
    throw Error("fid: no reference statistics (give a .npz path or computed statistics)");
  }
}

double FidEvaluator::evaluate(const diffusion::GaussianDiffusion& diffusion,
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
  const SampledImages s = sample_images(diffusion.respaced(options_.steps), model, so);
  last_ = compute_stats(s.images, *net_, options_.batch);
  return fid_from_stats(last_, reference_);
}

}  // namespace dmtrain::eval
