#include "dmtrain/data/image_set.hpp"

#include "dmtrain/util/error.hpp"

namespace dmtrain::data {

void ImageSet::validate(const std::string& what) const {
  if (!images.defined() || images.dim() != 4 || images.scalar_type() != at::kByte ||
      !images.is_contiguous() || !images.device().is_cpu()) {
    throw Error(c10::str(what, ": images must be a contiguous CPU uint8 N,H,W,C tensor"));
  }
  if (images.size(3) != 1 && images.size(3) != 3) {
    throw Error(c10::str(what, ": images have ", images.size(3), " channels, expected 1 or 3"));
  }
  if (labels.defined()) {
    if (labels.dim() != 1 || labels.scalar_type() != at::kLong || labels.size(0) != size()) {
      throw Error(c10::str(what, ": labels must be int64 with one entry per image (", size(),
                           "), got ", labels.scalar_type(), " ", labels.sizes()));
    }
    if (size() > 0) {
      const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
      if (lo < 0) throw Error(c10::str(what, ": negative label ", lo));
      if (!class_names.empty() && hi >= static_cast<int64_t>(class_names.size())) {
        throw Error(c10::str(what, ": label ", hi, " but only ", class_names.size(), " classes"));
      }
    }
  }
}

at::Tensor to_channels(const at::Tensor& nhwc, int64_t channels) {
  TORCH_CHECK(channels == 1 || channels == 3, "to_channels: channels must be 1 or 3, got ",
              channels);
  const int64_t c = nhwc.size(-1);
  if (c == channels) return nhwc;
  if (c == 1) return nhwc.expand({nhwc.size(0), nhwc.size(1), nhwc.size(2), 3}).contiguous();
  TORCH_CHECK(c == 3, "to_channels: input has ", c, " channels");
  // PIL: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (its fixed-point form of 601-2 luma).
  at::Tensor w = nhwc.to(at::kInt);
  at::Tensor l = (w.select(3, 0) * 19595 + w.select(3, 1) * 38470 + w.select(3, 2) * 7471 + 0x8000)
                     .div(65536, "floor");
  return l.to(at::kByte).unsqueeze(3).contiguous();
}

}  // namespace dmtrain::data
