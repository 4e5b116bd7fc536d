#include "dmtrain/data/jpeg_codec.hpp"

#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

#include "dmtrain/util/error.hpp"

namespace dmtrain::data {
namespace {

// libjpeg reports fatal errors through error_exit, which must not return: we longjmp back to the
// function that called into libjpeg. Those functions keep only trivially destructible locals
// alive across setjmp, so the jump skips no destructor.
struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr) {}  // silence warnings (e.g. "extraneous bytes") like PIL does

// Returns false with err->message set on failure. `out` is sized by the callback.
bool decode_raw(const uint8_t* data, size_t size, ErrorManager* err, at::Tensor* out) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error;
  err->pub.output_message = on_message;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    std::snprintf(err->message, sizeof(err->message), "CMYK JPEGs are not supported");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *out = at::empty(
      {static_cast<int64_t>(cinfo.output_height), static_cast<int64_t>(cinfo.output_width),
       static_cast<int64_t>(cinfo.output_components)},
      at::kByte);
  const size_t stride = static_cast<size_t>(cinfo.output_width) * cinfo.output_components;
  uint8_t* base = out->data_ptr<uint8_t>();
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = base + cinfo.output_scanline * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

bool encode_raw(const uint8_t* pixels, int h, int w, int c, int quality, ErrorManager* err,
                unsigned char** buf, unsigned long* len) {
  jpeg_compress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error;
  err->pub.output_message = on_message;
  if (setjmp(err->jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, buf, len);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = c;
  cinfo.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(pixels) + static_cast<size_t>(cinfo.next_scanline) * w * c;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

}  // namespace

at::Tensor decode_jpeg(const uint8_t* data, size_t size, const std::string& what) {
  ErrorManager err;
  at::Tensor out;
  if (!decode_raw(data, size, &err, &out)) {
    throw Error(c10::str("cannot decode JPEG '", what, "': ", err.message));
  }
  return out;
}

at::Tensor read_jpeg(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(c10::str("cannot open JPEG '", path, "'"));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return decode_jpeg(bytes.data(), bytes.size(), path);
}

void write_jpeg(const std::string& path, const at::Tensor& hwc_uint8, int quality) {
  TORCH_CHECK(hwc_uint8.dim() == 3 && hwc_uint8.scalar_type() == at::kByte &&
                  (hwc_uint8.size(2) == 1 || hwc_uint8.size(2) == 3),
              "write_jpeg: expected uint8 H,W,C with C 1 or 3, got ", hwc_uint8.sizes());
  at::Tensor img = hwc_uint8.cpu().contiguous();
  ErrorManager err;
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  const bool ok = encode_raw(img.data_ptr<uint8_t>(), static_cast<int>(img.size(0)),
                             static_cast<int>(img.size(1)), static_cast<int>(img.size(2)), quality,
                             &err, &buf, &len);
  if (!ok) {
    std::free(buf);
    throw Error(c10::str("cannot encode JPEG '", path, "': ", err.message));
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(buf), static_cast<std::streamsize>(len));
  std::free(buf);
  if (!f) throw Error(c10::str("cannot write JPEG '", path, "'"));
}

}  // namespace dmtrain::data
