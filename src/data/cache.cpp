#include "dmtrain/data/cache.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "dmtrain/util/error.hpp"

namespace dmtrain::data {
namespace {

constexpr char kMagic[8] = {'D', 'M', 'T', 'C', 'A', 'C', 'H', 'E'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 64;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t crc;
  int64_t n, h, w, c, label_count, names_bytes;
};
static_assert(sizeof(Header) == kHeader, "cache header must be 64 bytes");

int64_t padded(int64_t bytes) {
  return (bytes + 7) / 8 * 8;
}

uint32_t crc_update(uint32_t crc, const uint8_t* p, size_t n) {
  // zlib's crc32 takes uInt lengths: feed large buffers in 1 GiB pieces.
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    crc = static_cast<uint32_t>(crc32(crc, p, static_cast<uInt>(chunk)));
    p += chunk;
    n -= chunk;
  }
  return crc;
}

struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr != nullptr) munmap(addr, size);
  }
};

}  // namespace

void prepare_cache(const ImageSet& set, const std::string& path) {
  set.validate(path);
  std::string names;
  for (const std::string& s : set.class_names) {
    const auto len = static_cast<uint32_t>(s.size());
    names.append(reinterpret_cast<const char*>(&len), 4);
    names += s;
  }
  Header hdr{};
  std::memcpy(hdr.magic, kMagic, 8);
  hdr.version = kVersion;
  hdr.n = set.images.size(0);
  hdr.h = set.images.size(1);
  hdr.w = set.images.size(2);
  hdr.c = set.images.size(3);
  hdr.label_count = set.has_labels() ? hdr.n : 0;
  hdr.names_bytes = static_cast<int64_t>(names.size());
  const int64_t img_bytes = set.images.numel();
  const std::string pad(static_cast<size_t>(padded(img_bytes) - img_bytes), '\0');
  const auto* img = set.images.data_ptr<uint8_t>();
  uint32_t crc = static_cast<uint32_t>(crc32(0L, Z_NULL, 0));
  crc = crc_update(crc, img, static_cast<size_t>(img_bytes));
  crc = crc_update(crc, reinterpret_cast<const uint8_t*>(pad.data()), pad.size());
  if (set.has_labels()) {
    crc = crc_update(crc, reinterpret_cast<const uint8_t*>(set.labels.data_ptr<int64_t>()),
                     static_cast<size_t>(hdr.n) * 8);
  }
  crc = crc_update(crc, reinterpret_cast<const uint8_t*>(names.data()), names.size());
  hdr.crc = crc;

  const std::string tmp = path + ".tmp";
  // A cache path in a folder that does not exist yet (configs name e.g. data/cifar10.dmdata)
  // gets its folder, as any output of a run does.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(&hdr), kHeader);
    f.write(reinterpret_cast<const char*>(img), img_bytes);
    f.write(pad.data(), static_cast<std::streamsize>(pad.size()));
    if (set.has_labels()) {
      f.write(reinterpret_cast<const char*>(set.labels.data_ptr<int64_t>()), hdr.n * 8);
    }
    f.write(names.data(), static_cast<std::streamsize>(names.size()));
    if (!f) {
      std::remove(tmp.c_str());
      throw Error(c10::str("cannot write dataset cache '", path, "': ", std::strerror(errno)));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(c10::str("cannot write dataset cache '", path, "': rename failed"));
  }
}

bool is_cache_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {};
  return f.read(magic, 8) && std::memcmp(magic, kMagic, 8) == 0;
}

ImageSet load_cache(const std::string& path) {
  const std::string fix = " (a stale or corrupt cache: delete it to rebuild)";
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(c10::str("cannot open dataset cache '", path, "'"));
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kHeader)) {
    ::close(fd);
    throw Error(c10::str("dataset cache '", path, "' is truncated (no header)", fix));
  }
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(st.st_size);
  // Private copy-on-write mapping: pages come from the page cache, and an accidental write
  // cannot corrupt the file.
  map->addr = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map->addr == MAP_FAILED) {
    map->addr = nullptr;
    throw Error(c10::str("cannot mmap dataset cache '", path, "'"));
  }
  const auto* base = static_cast<const uint8_t*>(map->addr);
  Header hdr;
  std::memcpy(&hdr, base, kHeader);
  if (std::memcmp(hdr.magic, kMagic, 8) != 0) {
    throw Error(c10::str("'", path, "' is not a dmtrain dataset cache (bad magic)", fix));
  }
  if (hdr.version != kVersion) {
    throw Error(c10::str("dataset cache '", path, "' has version ", hdr.version, ", expected ",
                         kVersion, fix));
  }
  if (hdr.n < 0 || hdr.h <= 0 || hdr.w <= 0 || (hdr.c != 1 && hdr.c != 3) ||
      (hdr.label_count != 0 && hdr.label_count != hdr.n) || hdr.names_bytes < 0 ||
      hdr.n > (int64_t{1} << 40) / (hdr.h * hdr.w * hdr.c)) {
    throw Error(c10::str("dataset cache '", path, "' has an invalid header", fix));
  }
  const int64_t img_bytes = hdr.n * hdr.h * hdr.w * hdr.c;
  const int64_t expect =
      static_cast<int64_t>(kHeader) + padded(img_bytes) + hdr.label_count * 8 + hdr.names_bytes;
  if (expect != static_cast<int64_t>(map->size)) {
    throw Error(c10::str("dataset cache '", path, "' has ", map->size, " bytes, its header says ",
                         expect, " (truncated?)", fix));
  }
  const uint32_t crc =
      crc_update(static_cast<uint32_t>(crc32(0L, Z_NULL, 0)), base + kHeader, map->size - kHeader);
  if (crc != hdr.crc) {
    throw Error(c10::str("dataset cache '", path, "' fails its checksum", fix));
  }
  ImageSet set;
  auto keep = [map](void*) {};  // each tensor holds the mapping alive
  set.images = at::from_blob(const_cast<uint8_t*>(base + kHeader), {hdr.n, hdr.h, hdr.w, hdr.c},
                             keep, at::TensorOptions().dtype(at::kByte));
  const uint8_t* p = base + kHeader + padded(img_bytes);
  if (hdr.label_count > 0) {
    set.labels =
        at::from_blob(const_cast<uint8_t*>(p), {hdr.n}, keep, at::TensorOptions().dtype(at::kLong));
    p += hdr.n * 8;
  }
  const uint8_t* end = p + hdr.names_bytes;
  while (p < end) {
    uint32_t len;
    if (end - p < 4) throw Error(c10::str("dataset cache '", path, "': bad class table", fix));
    std::memcpy(&len, p, 4);
    p += 4;
    if (static_cast<int64_t>(len) > end - p) {
      throw Error(c10::str("dataset cache '", path, "': bad class table", fix));
    }
    set.class_names.emplace_back(reinterpret_cast<const char*>(p), len);
    p += len;
  }
  set.validate(path);
  return set;
}

}  // namespace dmtrain::data
