#include "dmtrain/util/image_io.hpp"

#include <png.h>

#include <cstring>
#include <fstream>

#include "dmtrain/util/error.hpp"

namespace dmtrain::util {

void write_png(const std::string& path, const at::Tensor& hwc_uint8) {
  TORCH_CHECK(hwc_uint8.dim() == 3, "write_png: expected H,W,C, got ", hwc_uint8.sizes());
  TORCH_CHECK(hwc_uint8.scalar_type() == at::kByte, "write_png: expected uint8, got ",
              hwc_uint8.scalar_type());
  const int64_t c = hwc_uint8.size(2);
  TORCH_CHECK(c == 1 || c == 3, "write_png: expected 1 or 3 channels, got ", c);
  at::Tensor img = hwc_uint8.to(at::kCPU).contiguous();

  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(img.size(1));
  image.height = static_cast<png_uint_32>(img.size(0));
  image.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  // Write to a temporary name and rename, so a crash never leaves a half-written PNG behind.
  const std::string tmp = path + ".tmp";
  if (!png_image_write_to_file(&image, tmp.c_str(), 0, img.data_ptr<uint8_t>(), 0, nullptr)) {
    std::string why = image.message;
    png_image_free(&image);
    std::remove(tmp.c_str());
    throw Error(c10::str("cannot write PNG '", path, "': ", why));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(c10::str("cannot write PNG '", path, "': rename from '", tmp, "' failed"));
  }
}

at::Tensor read_png(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    throw Error(c10::str("cannot read PNG '", path, "': ", image.message));
  }
  const bool color = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
  const bool alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  // Read alpha files with their alpha channel and drop it afterwards: asking libpng for a format
  // without alpha would composite onto a background, which PIL's convert() does not do.
  image.format = color ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB)
                       : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  const int64_t ch = PNG_IMAGE_PIXEL_CHANNELS(image.format);
  at::Tensor out = at::empty(
      {static_cast<int64_t>(image.height), static_cast<int64_t>(image.width), ch}, at::kByte);
  if (!png_image_finish_read(&image, nullptr, out.data_ptr<uint8_t>(), 0, nullptr)) {
    std::string why = image.message;
    png_image_free(&image);
    throw Error(c10::str("cannot decode PNG '", path, "': ", why));
  }
  if (alpha) out = out.narrow(2, 0, color ? 3 : 1).contiguous();
  return out;
}

at::Tensor to_uint8_nhwc(const at::Tensor& nchw_float) {
  TORCH_CHECK(nchw_float.dim() == 4, "to_uint8_nhwc: expected N,C,H,W, got ", nchw_float.sizes());
  return ((nchw_float.to(at::kFloat) + 1) * 127.5)
      .clamp(0, 255)
      .to(at::kByte)
      .permute({0, 2, 3, 1})
      .contiguous()
      .cpu();
}

at::Tensor make_grid(const at::Tensor& nchw_float, int64_t nrow, int64_t padding) {
  TORCH_CHECK(nrow >= 1 && padding >= 0, "make_grid: nrow must be >= 1 and padding >= 0");
  at::Tensor imgs = to_uint8_nhwc(nchw_float);  // N,H,W,C
  const int64_t n = imgs.size(0), h = imgs.size(1), w = imgs.size(2), c = imgs.size(3);
  const int64_t cols = std::min(nrow, std::max<int64_t>(n, 1));
  const int64_t rows = (n + nrow - 1) / nrow;
  at::Tensor grid =
      at::zeros({rows * (h + padding) + padding, cols * (w + padding) + padding, c}, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = padding + (i / nrow) * (h + padding);
    const int64_t x = padding + (i % nrow) * (w + padding);
    grid.narrow(0, y, h).narrow(1, x, w).copy_(imgs[i]);
  }
  return grid;
}

}  // namespace dmtrain::util
