#include "dmtrain/data/idx_reader.hpp"

#include <zlib.h>

#include <filesystem>
#include <memory>

#include "dmtrain/util/error.hpp"

namespace dmtrain::data {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

GzFile open_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw Error(c10::str("cannot open IDX file '", path, "'"));
  gzbuffer(f, 1 << 20);
  return GzFile(f);
}

void read_exact(gzFile f, void* dst, size_t n, const std::string& path) {
  auto* out = static_cast<char*>(dst);
  while (n > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
    const int got = gzread(f, out, chunk);
    if (got <= 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw Error(c10::str("IDX file '", path, "' is truncated or corrupt",
                           err != Z_OK && err != Z_BUF_ERROR ? c10::str(" (", msg, ")") : ""));
    }
    out += got;
    n -= static_cast<size_t>(got);
  }
}

uint32_t read_be32(gzFile f, const std::string& path) {
  unsigned char b[4];
  read_exact(f, b, 4, path);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

}  // namespace

ImageSet read_idx(const std::string& images_path, const std::string& labels_path,
                  int64_t channels) {
  ImageSet set;
  {
    GzFile f = open_gz(images_path);
    const uint32_t magic = read_be32(f.get(), images_path);
    if (magic != 0x00000803) {
      throw Error(c10::str("IDX images file '", images_path, "' has magic 0x", std::hex, magic,
                           ", expected 0x00000803 (ubyte, 3 dims)"));
    }
    const int64_t n = read_be32(f.get(), images_path);
    const int64_t h = read_be32(f.get(), images_path);
    const int64_t w = read_be32(f.get(), images_path);
    if (h <= 0 || w <= 0 || h > 65536 || w > 65536) {
      throw Error(c10::str("IDX images file '", images_path, "' has bad size ", h, "x", w));
    }
    // A damaged header must not become a huge allocation (an overflow or bad_alloc abort): an
    // uncompressed file must hold what its header claims, a gzip'ed one at most 1 TiB.
    const uint64_t bytes = static_cast<uint64_t>(n) * static_cast<uint64_t>(h * w);
    const uint64_t on_disk = gzdirect(f.get()) ? std::filesystem::file_size(images_path) : 0;
    if ((on_disk > 0 && 16 + bytes > on_disk) || bytes > (uint64_t{1} << 40)) {
      throw Error(c10::str("IDX images file '", images_path,
                           "' is truncated or corrupt: its header claims ", n, " images of ", h,
                           "x", w, " (", bytes, " bytes)",
                           on_disk > 0 ? c10::str(" but the file has ", on_disk, " bytes") : ""));
    }
    set.images = at::empty({n, h, w, 1}, at::kByte);
    read_exact(f.get(), set.images.data_ptr(), set.images.nbytes(), images_path);
  }
  if (!labels_path.empty()) {
    GzFile f = open_gz(labels_path);
    const uint32_t magic = read_be32(f.get(), labels_path);
    if (magic != 0x00000801) {
      throw Error(c10::str("IDX labels file '", labels_path, "' has magic 0x", std::hex, magic,
                           ", expected 0x00000801 (ubyte, 1 dim)"));
    }
    const int64_t n = read_be32(f.get(), labels_path);
    if (n != set.size()) {
      throw Error(c10::str("IDX labels file '", labels_path, "' has ", n, " labels but '",
                           images_path, "' has ", set.size(), " images"));
    }
    at::Tensor raw = at::empty({n}, at::kByte);
    read_exact(f.get(), raw.data_ptr(), raw.nbytes(), labels_path);
    set.labels = raw.to(at::kLong);
    const int64_t classes = n > 0 ? set.labels.max().item<int64_t>() + 1 : 0;
    for (int64_t k = 0; k < classes; ++k) set.class_names.push_back(std::to_string(k));
  }
  set.images = to_channels(set.images, channels);
  set.validate(images_path);
  return set;
}

std::pair<std::string, std::string> find_idx_files(const std::string& dir,
                                                   const std::string& split) {
  namespace fs = std::filesystem;
  const std::string prefix = split == "test" ? "t10k" : split;
  auto pick = [&](const std::string& stem) -> std::string {
    for (const std::string& name : {stem + ".gz", stem}) {
      if (fs::exists(fs::path(dir) / name)) return (fs::path(dir) / name).string();
    }
    return "";
  };
  const std::string images = pick(prefix + "-images-idx3-ubyte");
  if (images.empty()) {
    throw Error(c10::str("no IDX images for split '", split, "' in '", dir, "' (expected ", prefix,
                         "-images-idx3-ubyte[.gz])"));
  }
  return {images, pick(prefix + "-labels-idx1-ubyte")};
}

}  // namespace dmtrain::data
