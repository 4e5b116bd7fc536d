// PNG reading/writing and sample grids.
//
// Contract: images on the C++ side are uint8 tensors laid out H,W,C (C = 1 grayscale or 3 RGB),
// the layout PIL/numpy use, so a PNG written here equals np.array(Image.open(path)). Model-space
// images are float N,C,H,W in [-1, 1]; `to_uint8_nhwc` maps them back exactly like
// improved-diffusion's image_sample.py: ((x + 1) * 127.5).clamp(0, 255).to(uint8), i.e. the
// float is TRUNCATED toward zero, not rounded (kept so saved samples match the reference bit for
// bit; FID numbers depend on it). Files are written whole or not at all (errors throw
// dmtrain::Error naming the path).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace dmtrain::util {

// Writes `hwc_uint8` (H,W,C uint8, C in {1,3}, any device/strides) as an 8-bit PNG.
void write_png(const std::string& path, const at::Tensor& hwc_uint8);

// Reads a PNG as H,W,C uint8 on the CPU, the values PIL's Image.open(f).convert("RGB") gives
// (checked against Pillow 13 by tests/fixtures/util/make_png_fixtures.py): C = 1 for grayscale
// files (with or without alpha; the caller replicates), 3 for colour and palette files. Stored
// samples are not gamma-corrected, whatever gAMA / sRGB / iCCP chunks say; alpha and tRNS are
// dropped (not composited); 1/2/4-bit gray is scaled to 0..255; 16-bit RGB, RGBA and gray+alpha
// keep the high byte (v >> 8); 16-bit gray without alpha saturates (min(v, 255)), as PIL's
// mode "I;16" converts. Errors (dmtrain::Error naming the path and the cause): cannot open, not
// a PNG, corrupt or truncated data.
at::Tensor read_png(const std::string& path);

// float N,C,H,W in [-1,1] -> uint8 N,H,W,C with the reference's truncating conversion.
at::Tensor to_uint8_nhwc(const at::Tensor& nchw_float);

// Tiles a batch (float N,C,H,W in [-1,1], C in {1,3}) into one uint8 H,W,C image with `nrow`
// images per row and `padding` black pixels between and around the tiles (torchvision's
// make_grid layout: height = rows*(H+padding)+padding). Missing tiles of the last row stay black.
at::Tensor make_grid(const at::Tensor& nchw_float, int64_t nrow, int64_t padding = 2);

}  // namespace dmtrain::util
