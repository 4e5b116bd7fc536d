#include "dmtrain/eval/sample_images.hpp"

#include <ATen/core/grad_mode.h>

#include <sstream>

#include "dmtrain/diffusion/noise_source.hpp"
#include "dmtrain/diffusion/sampling.hpp"
#include "dmtrain/eval/oom_batches.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::eval {

uint64_t sample_seed(uint64_t seed, int64_t index) {
  return seed * uint64_t{1000003} + static_cast<uint64_t>(index);  // wraps mod 2^64 by design
}

namespace {

// SplitMix64's output function: a well-mixed 64-bit hash of x (Steele et al. 2014).
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void check_options(const SampleImagesOptions& o) {
  if (o.n < 1) throw Error(c10::str("sample: n must be >= 1, got ", o.n));
  if (o.batch < 1) throw Error(c10::str("sample: batch must be >= 1, got ", o.batch));
  if (o.sampler != "ddpm" && o.sampler != "ddim") {
    throw Error("sample: sampler '" + o.sampler + "' is not one of ddpm, ddim");
  }
  if (o.sampler == "ddim" && !(o.eta >= 0.0)) {
    throw Error(c10::str("sample: eta must be >= 0, got ", o.eta));
  }
  TORCH_CHECK(o.image_shape.size() == 3, "sample_images: image_shape must be C,H,W");
  if (o.labels.defined() && (o.labels.dim() != 1 || o.labels.size(0) != o.n)) {
    throw Error(c10::str("sample: labels have shape ", o.labels.sizes(), ", expected [", o.n, "]"));
  }
  if (o.initial_noise.defined()) {
    std::vector<int64_t> want{o.n};
    want.insert(want.end(), o.image_shape.begin(), o.image_shape.end());
    if (o.initial_noise.sizes() != at::IntArrayRef(want)) {
      throw Error(c10::str("sample: initial noise has shape ", o.initial_noise.sizes(),
                           ", the model and --n need ", at::IntArrayRef(want)));
    }
  }
}

}  // namespace

SampledImages sample_images(const diffusion::GaussianDiffusion& sampling,
                            const diffusion::ModelFn& model, const SampleImagesOptions& o) {
  check_options(o);
  at::NoGradGuard no_grad;
  const bool ddim = o.sampler == "ddim";
  const bool step_noise = !ddim || o.eta != 0.0;
  std::vector<int64_t> one{1};
  one.insert(one.end(), o.image_shape.begin(), o.image_shape.end());
  const at::Tensor initial =
      o.initial_noise.defined() ? o.initial_noise.to(at::kCPU, at::kFloat) : at::Tensor();

  diffusion::SampleOptions so;
  so.clip_denoised = o.clip_denoised;
  so.device = o.device;
  const int64_t steps = sampling.num_timesteps();
  std::vector<at::Tensor> out;
  // Sample i depends only on (seed, i), so a batch that runs out of GPU memory is retried at
  // half the size with the same result (oom_batches.hpp); `out` grows only when a batch ends.
  const auto one_batch = [&](int64_t start, int64_t bs) {
    const int64_t end = start + bs;
    std::vector<diffusion::NoiseSource> sources;
    sources.reserve(static_cast<size_t>(bs));
    for (int64_t i = start; i < end; ++i) {
      if (initial.defined()) {
        sources.emplace_back(initial.narrow(0, i, 1), sample_seed(o.seed, i));
      } else {
        sources.emplace_back(sample_seed(o.seed, i), one);
      }
    }
    const auto draw = [&] {
      std::vector<at::Tensor> parts;
      parts.reserve(sources.size());
      for (auto& s : sources) parts.push_back(s.next(at::kCPU));
      return at::cat(parts, 0).to(o.device);
    };
    so.y = o.labels.defined() ? o.labels.narrow(0, start, bs).to(o.device) : at::Tensor();
    at::Tensor x = draw();
    const auto t_opts = at::TensorOptions().dtype(at::kLong).device(o.device);
    for (int64_t i = steps - 1; i >= 0; --i) {
      const at::Tensor t = at::full({bs}, i, t_opts);
      const at::Tensor z = step_noise ? draw() : at::Tensor();
      x = ddim ? diffusion::ddim_sample(sampling, model, x, t, z, o.eta, so)
               : diffusion::p_sample(sampling, model, x, t, z, so);
      if (o.progress) o.progress(start, steps - i, steps);
    }
    out.push_back(util::to_uint8_nhwc(x.to(at::kCPU, at::kFloat)));
  };
  for_each_batch(o.n, o.batch, one_batch, [](int64_t failed, int64_t to) {
    log::warn(c10::str("sample: the GPU ran out of memory at ", failed, " samples per batch; ",
                       "retrying at ", to));
  });
  SampledImages r;
  r.images = at::cat(out, 0);
  if (o.labels.defined()) r.labels = o.labels.to(at::kCPU, at::kLong);
  return r;
}

at::Tensor make_labels(const std::string& spec, int64_t n, int64_t num_classes, uint64_t seed) {
  if (num_classes <= 0) {
    if (!spec.empty()) {
      throw Error("--classes '" + spec +
                  "' given, but the model is unconditional "
                  "(model.num_classes = 0)");
    }
    return {};
  }
  if (spec.empty()) return at::arange(n, at::kLong).remainder(num_classes);
  if (spec == "random") {
    at::Tensor labels = at::empty({n}, at::kLong);
    auto* out = labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      out[i] = static_cast<int64_t>(splitmix64(sample_seed(seed, i)) %
                                    static_cast<uint64_t>(num_classes));
    }
    return labels;
  }
  std::vector<int64_t> list;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) {
      throw Error("--classes: '" + item + "' in '" + spec +
                  "' is not an integer (expected 'random' or a list like 1,4,7)");
    }
    if (v < 0 || v >= num_classes) {
      throw Error(c10::str("--classes: label ", v, " is outside [0, ", num_classes,
                           ") (model.num_classes = ", num_classes, ")"));
    }
    list.push_back(v);
  }
  if (list.empty()) throw Error("--classes: empty list");
  at::Tensor labels = at::empty({n}, at::kLong);
  for (int64_t i = 0; i < n; ++i) labels[i] = list[static_cast<size_t>(i) % list.size()];
  return labels;
}

}  // namespace dmtrain::eval
