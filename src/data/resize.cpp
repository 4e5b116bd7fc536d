#include "dmtrain/data/resize.hpp"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <vector>

namespace dmtrain::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images

double box_filter(double x) {
  return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0;
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Filter windows for resizing an axis of `in_size` to `out_size`: for output pixel i, inputs
// [start[i], start[i] + count[i]) with fixed-point weights coef[i*ksize + k].
struct Windows {
  int ksize = 0;
  std::vector<int> start, count, coef;
};

Windows precompute(int in_size, int out_size, Filter filter) {
  const double support0 = filter == Filter::kBox ? 0.5 : 2.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support0 * filterscale;
  Windows w;
  w.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.start.resize(out_size);
  w.count.resize(out_size);
  w.coef.assign(static_cast<size_t>(out_size) * w.ksize, 0);
  std::vector<double> k(w.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double arg = (x + xmin - center + 0.5) * ss;
      k[x] = filter == Filter::kBox ? box_filter(arg) : bicubic_filter(arg);
      ww += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      // Pillow rounds half away from zero when converting to fixed point.
      w.coef[static_cast<size_t>(xx) * w.ksize + x] =
          static_cast<int>(v * (1 << kPrecisionBits) + (v < 0 ? -0.5 : 0.5));
    }
    w.start[xx] = xmin;
    w.count[xx] = xmax;
  }
  return w;
}

inline uint8_t clip8(int64_t ss) {
  const int64_t v = ss >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Resizes axis `axis` (0 = rows, 1 = columns) of a contiguous H,W,C uint8 buffer.
at::Tensor resample_axis(const at::Tensor& in, int axis, int out_size, Filter filter) {
  const int64_t h = in.size(0), w = in.size(1), c = in.size(2);
  const int in_size = static_cast<int>(axis == 0 ? h : w);
  const Windows win = precompute(in_size, out_size, filter);
  at::Tensor out = at::empty(
      axis == 0 ? std::vector<int64_t>{out_size, w, c} : std::vector<int64_t>{h, out_size, c},
      at::kByte);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t out_w = out.size(1);
  if (axis == 1) {
    for (int64_t y = 0; y < h; ++y)
      for (int xx = 0; xx < out_size; ++xx) {
        const int* k = &win.coef[static_cast<size_t>(xx) * win.ksize];
        for (int64_t ch = 0; ch < c; ++ch) {
          int64_t ss = int64_t{1} << (kPrecisionBits - 1);
          for (int x = 0; x < win.count[xx]; ++x)
            ss += int64_t{src[(y * w + win.start[xx] + x) * c + ch]} * k[x];
          dst[(y * out_w + xx) * c + ch] = clip8(ss);
        }
      }
  } else {
    for (int yy = 0; yy < out_size; ++yy) {
      const int* k = &win.coef[static_cast<size_t>(yy) * win.ksize];
      for (int64_t x = 0; x < w * c; ++x) {
        int64_t ss = int64_t{1} << (kPrecisionBits - 1);
        for (int y = 0; y < win.count[yy]; ++y)
          ss += int64_t{src[(win.start[yy] + y) * w * c + x]} * k[y];
        dst[yy * w * c + x] = clip8(ss);
      }
    }
  }
  return out;
}

}  // namespace

at::Tensor resample(const at::Tensor& hwc_uint8, int64_t out_h, int64_t out_w, Filter filter) {
  TORCH_CHECK(hwc_uint8.dim() == 3 && hwc_uint8.scalar_type() == at::kByte,
              "resample: expected uint8 H,W,C, got ", hwc_uint8.sizes());
  TORCH_CHECK(out_h >= 1 && out_w >= 1, "resample: bad output size ", out_h, "x", out_w);
  at::Tensor img = hwc_uint8.cpu().contiguous();
  // Horizontal pass first, as Pillow does (the 8-bit intermediate makes the order matter).
  if (out_w != img.size(1)) img = resample_axis(img, 1, static_cast<int>(out_w), filter);
  if (out_h != img.size(0)) img = resample_axis(img, 0, static_cast<int>(out_h), filter);
  return img;
}

at::Tensor center_crop_arr(const at::Tensor& hwc_uint8, int64_t size) {
  TORCH_CHECK(size >= 1, "center_crop_arr: size must be >= 1");
  at::Tensor img = hwc_uint8;
  if (img.size(0) == size && img.size(1) == size) return img;
  while (std::min(img.size(0), img.size(1)) >= 2 * size) {
    img = resample(img, img.size(0) / 2, img.size(1) / 2, Filter::kBox);
  }
  const double scale = static_cast<double>(size) / std::min(img.size(0), img.size(1));
  // Python's round(): half to even, which nearbyint gives in the default rounding mode.
  const auto new_h = static_cast<int64_t>(std::nearbyint(img.size(0) * scale));
  const auto new_w = static_cast<int64_t>(std::nearbyint(img.size(1) * scale));
  img = resample(img, new_h, new_w, Filter::kBicubic);
  const int64_t y = (img.size(0) - size) / 2, x = (img.size(1) - size) / 2;
  return img.narrow(0, y, size).narrow(1, x, size).contiguous();
}

}  // namespace dmtrain::data
