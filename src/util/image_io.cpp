#include "dmtrain/util/image_io.hpp"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

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

namespace {

// libpng reports errors through a callback that must not return: it records the message and
// longjmps back to decode_png's setjmp.
struct PngError {
  char message[256] = {0};
};

void png_error_to_state(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngError*>(png_get_error_ptr(png));
  std::snprintf(st->message, sizeof(st->message), "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

struct Decoded {
  png_uint_32 width = 0, height = 0;
  int color_type = 0;  // of the file, before transforms
  int bit_depth = 0;   // of the rows, after transforms: 8 or 16
  int channels = 0;    // of the rows, after transforms: 1..4
  std::vector<png_byte> pixels;
  std::vector<png_bytep> rows;
};

// Decodes with the transforms that PIL's reading implies and nothing else: palette -> RGB,
// 1/2/4-bit gray -> 8 bits (scaled to 0..255), interlace undone. No gamma, sRGB or ICC
// handling is requested, so sample values pass through as stored. Returns false on a libpng
// error (its message in the PngError the read struct carries). Only PODs live in this frame
// across setjmp.
bool decode_png(png_structp png, png_infop info, std::FILE* fp, Decoded* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, fp);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  int interlace = 0, depth = 0;
  png_get_IHDR(png, info, &out->width, &out->height, &depth, &out->color_type, &interlace, nullptr,
               nullptr);
  if (out->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (out->color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->bit_depth = png_get_bit_depth(png, info);
  out->channels = png_get_channels(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  out->pixels.resize(rowbytes * out->height);
  out->rows.resize(out->height);
  for (png_uint_32 y = 0; y < out->height; ++y) out->rows[y] = out->pixels.data() + y * rowbytes;
  png_read_image(png, out->rows.data());
  png_read_end(png, nullptr);
  return true;
}

}  // namespace

at::Tensor read_png(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (fp == nullptr) {
    throw Error(c10::str("cannot open PNG '", path, "': ", std::strerror(errno)));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(fp, &std::fclose);
  png_byte sig[8];
  const size_t got = std::fread(sig, 1, 8, fp);
  if (got != 8 || png_sig_cmp(sig, 0, 8) != 0) {
    const std::string why = std::ferror(fp) ? std::strerror(errno) : "not a PNG file";
    throw Error(c10::str("cannot read PNG '", path, "': ", why));
  }
  PngError err;
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_to_state, png_ignore_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error(c10::str("cannot read PNG '", path, "': out of memory"));
  }
  Decoded d;
  const bool ok = decode_png(png, info, fp, &d);
  png_destroy_read_struct(&png, &info, nullptr);
  if (!ok) throw Error(c10::str("cannot decode PNG '", path, "': ", err.message));

  const int64_t h = d.height, w = d.width, c = d.channels;
  const bool color = c >= 3;
  const int64_t out_c = color ? 3 : 1;  // alpha is dropped, not composited (PIL's convert)
  at::Tensor out = at::empty({h, w, out_c}, at::kByte);
  uint8_t* dst = out.data_ptr<uint8_t>();
  const png_byte* src = d.pixels.data();
  const int64_t n = h * w;
  if (d.bit_depth == 8) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < out_c; ++k) dst[i * out_c + k] = src[i * c + k];
  } else if (d.color_type == PNG_COLOR_TYPE_GRAY) {
    // PIL opens 16-bit gray as mode "I;16"; its convert("RGB") saturates at 255.
    for (int64_t i = 0; i < n; ++i) {
      const unsigned v = (unsigned{src[2 * i]} << 8) | src[2 * i + 1];
      dst[i] = static_cast<uint8_t>(std::min(v, 255u));
    }
  } else {
    // PIL opens 16-bit RGB, RGBA and gray+alpha as 8-bit modes keeping the high byte (v >> 8).
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < out_c; ++k) dst[i * out_c + k] = src[2 * (i * c + k)];
  }
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
