// JPEG decoding/encoding through libjpeg(-turbo), with libjpeg's defaults (ISLOW DCT, fancy
// upsampling) -- the same decoder settings PIL uses, so decoded pixels match PIL's.
// Errors (corrupt data, unsupported colour space such as CMYK) throw dmtrain::Error naming
// `what` (usually the file path). Images are uint8 H,W,C with C = 1 (grayscale) or 3 (RGB).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace dmtrain::data {

at::Tensor decode_jpeg(const uint8_t* data, size_t size, const std::string& what);
at::Tensor read_jpeg(const std::string& path);
// Baseline JPEG with 4:2:0 chroma subsampling (libjpeg's default) at `quality`.
void write_jpeg(const std::string& path, const at::Tensor& hwc_uint8, int quality = 90);

}  // namespace dmtrain::data
