// sample_images: N samples of a diffusion model, as the images an evaluator reads (uint8 N,H,W,C
// with improved-diffusion's truncating conversion) plus their class labels.
//
// Noise design (why): sample i must be the same image whatever the batch size, the device
// batching or how many samples are drawn, so that runs and models can be compared image for
// image. Every sample owns its noise stream: a diffusion::NoiseSource of shape [1, C, H, W]
// seeded with sample_seed(seed, i) = seed * 1000003 + i (mod 2^64). Draw 0 is its x_T, then one
// draw per sampler step (DDPM, or DDIM with eta != 0), exactly as the library's sampling loops
// consume a NoiseSource. A batch concatenates its samples' draws. So sample i's initial and
// per-step noise depend only on (seed, i, C, H, W); in Python the initial noise of sample i is
//     g = torch.Generator().manual_seed(seed * 1000003 + i); torch.randn([1, C, H, W], generator=g)
// With `initial_noise` ([N, C, H, W] float32, e.g. from another framework), draw 0 of sample i is
// initial_noise[i] and its step noises are still those of sample_seed(seed, i).
// On the CPU, batch 2 and batch 4 give bit-identical images when the model's forward is
// batch-size invariant (the tests check it for the UNet); on CUDA, kernels may differ in the last
// bits between batch sizes.
//
// Labels: class-conditional models need `labels` (int64 [N], values in [0, num_classes)), made
// e.g. by make_labels(); unconditional ones must leave it undefined.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/diffusion/model_fn.hpp"

namespace dmtrain::eval {

struct SampleImagesOptions {
  int64_t n = 16;                    // number of samples
  std::vector<int64_t> image_shape;  // C, H, W
  uint64_t seed = 0;
  std::string sampler = "ddim";  // ddpm | ddim
  double eta = 0.0;              // DDIM only
  int64_t batch = 16;            // samples per model forward; does not change the images
  at::Tensor labels;             // int64 [n] or undefined
  at::Tensor initial_noise;      // float32 [n, C, H, W] or undefined
  bool clip_denoised = true;
  at::Device device = at::kCPU;
  // Called after each step of each batch with (samples finished so far, steps done, total steps).
  std::function<void(int64_t, int64_t, int64_t)> progress;
};

struct SampledImages {
  at::Tensor images;  // uint8 [N, H, W, C], CPU
  at::Tensor labels;  // int64 [N], CPU, or undefined when unconditional
};

uint64_t sample_seed(uint64_t seed, int64_t index);

// `sampling` is the (respaced) process to sample with; `model` as in diffusion::ModelFn.
// Throws dmtrain::Error on bad options (sampler name, n, batch, shapes of labels / noise).
SampledImages sample_images(const diffusion::GaussianDiffusion& sampling,
                            const diffusion::ModelFn& model, const SampleImagesOptions& options);

// Class labels of n samples from a --classes spec: "" -> i % num_classes (every class in turn);
// "random" -> label i = splitmix64(sample_seed(seed, i)) mod num_classes (depends only on
// (seed, i), so a prefix of n samples keeps its labels); "3" or "1,4,7" -> the list repeated
// cyclically. Throws dmtrain::Error for labels outside [0, num_classes), a malformed list, or any
// spec when num_classes == 0 (returns undefined for "" then).
at::Tensor make_labels(const std::string& spec, int64_t n, int64_t num_classes, uint64_t seed);

}  // namespace dmtrain::eval
