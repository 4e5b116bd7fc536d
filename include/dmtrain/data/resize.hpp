// Resizing exactly as the reference data pipelines do it (guided-diffusion's center_crop_arr on
// PIL images), so a model trained here sees the same pixels as one trained by the references.
//
// resample() re-implements Pillow's separable 8-bit resampling (Resample.c): per output pixel a
// normalised filter window (support scaled by the downscale factor), coefficients in 22-bit
// fixed point with rounding, horizontal pass first into an 8-bit intermediate, then vertical,
// an axis whose size is unchanged is not filtered. BOX (support 0.5) and BICUBIC (Keys, a=-0.5,
// support 2) filters. Tests compare with Pillow 13 (fixtures in tests/fixtures/data/): bit-exact
// for single-axis resizes and for guided-diffusion's center_crop_arr on the fixture images; for
// some resizes that shrink both axes Pillow 13 differs by up to ~3 levels in a few pixels (it
// seems to order the passes differently from its published horizontal-first C source).
// Input/output: uint8 H,W,C CPU tensors.
#pragma once
#include <ATen/ATen.h>

namespace dmtrain::data {

enum class Filter { kBox, kBicubic };

at::Tensor resample(const at::Tensor& hwc_uint8, int64_t out_h, int64_t out_w, Filter filter);

// guided-diffusion's center_crop_arr: while min(H,W) >= 2*size, BOX-halve (W//2, H//2); then
// BICUBIC-resize so the smaller side is `size` (other side round(side*scale), Python's
// round-half-even); then take the centred size x size crop (offset (side-size)//2).
// An image already size x size is returned unchanged.
at::Tensor center_crop_arr(const at::Tensor& hwc_uint8, int64_t size);

}  // namespace dmtrain::data
