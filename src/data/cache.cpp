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
#include <map>
#include <memory>
#include <random>

#include "dmtrain/util/error.hpp"

namespace dmtrain::data {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'D', 'M', 'T', 'C', 'A', 'C', 'H', 'E'};
constexpr size_t kHeader = 128;
constexpr int64_t kImagesOffset = 4096;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t digest;
  int64_t n, h, w, c, label_count, names_bytes, identity_bytes, chunk_images, file_size;
  int64_t reserved[5];
};
static_assert(sizeof(Header) == kHeader, "cache header must be 128 bytes");

int64_t padded(int64_t bytes) {
  return (bytes + 7) / 8 * 8;
}

uint32_t crc_init() {
  return static_cast<uint32_t>(crc32(0L, Z_NULL, 0));
}

uint32_t crc_update(uint32_t crc, const void* data, size_t n) {
  // zlib's crc32 takes uInt lengths: feed large buffers in 1 GiB pieces.
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const size_t piece = std::min<size_t>(n, size_t{1} << 30);
    crc = static_cast<uint32_t>(crc32(crc, p, static_cast<uInt>(piece)));
    p += piece;
    n -= piece;
  }
  return crc;
}

// Where each section starts, from the header's counts.
struct Layout {
  int64_t image_bytes, labels, crcs, names, identity, end, chunks;
};

Layout layout_of(const Header& h) {
  Layout l{};
  l.image_bytes = h.n * h.h * h.w * h.c;
  l.chunks = (h.n + h.chunk_images - 1) / h.chunk_images;
  l.labels = kImagesOffset + padded(l.image_bytes);
  l.crcs = l.labels + h.label_count * 8;
  l.names = l.crcs + padded(l.chunks * 4);
  l.identity = l.names + h.names_bytes;
  l.end = l.identity + h.identity_bytes;
  return l;
}

void put_string(std::string* out, const std::string& s) {
  const auto len = static_cast<uint32_t>(s.size());
  out->append(reinterpret_cast<const char*>(&len), 4);
  *out += s;
}

// Splits a table of u32-length-prefixed strings; false if it does not parse exactly.
bool split_strings(const uint8_t* p, const uint8_t* end, std::vector<std::string>* out) {
  while (p < end) {
    uint32_t len;
    if (end - p < 4) return false;
    std::memcpy(&len, p, 4);
    p += 4;
    if (static_cast<int64_t>(len) > end - p) return false;
    out->emplace_back(reinterpret_cast<const char*>(p), len);
    p += len;
  }
  return true;
}

std::string encode_identity(const CacheIdentity& id) {
  std::string out;
  const std::pair<const char*, std::string> fields[] = {
      {"source", id.source},
      {"format", id.format},
      {"split", id.split},
      {"labels", id.labels},
      {"image_size", std::to_string(id.image_size)},
      {"channels", std::to_string(id.channels)},
      {"on_bad_file", id.on_bad_file},
      {"skipped", std::to_string(id.skipped)}};
  for (const auto& [key, value] : fields) {
    put_string(&out, key);
    put_string(&out, value);
  }
  return out;
}

bool decode_identity(const std::vector<std::string>& kv, CacheIdentity* id) {
  if (kv.size() % 2 != 0) return false;
  std::map<std::string, std::string> m;
  for (size_t i = 0; i < kv.size(); i += 2) m[kv[i]] = kv[i + 1];
  auto number = [&](const char* key, int64_t* v) {
    try {
      *v = std::stoll(m.at(key));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  id->source = m["source"];
  id->format = m["format"];
  id->split = m["split"];
  id->labels = m["labels"];
  id->on_bad_file = m["on_bad_file"];
  return number("image_size", &id->image_size) && number("channels", &id->channels) &&
         number("skipped", &id->skipped);
}

// Reads the pixels of every chunk with pread (the pages read do not stay in this process) and
// returns the first chunk whose CRC differs from crcs[k] (or that cannot be read), -1 if none.
// drop_pages also drops them from the page cache.
int64_t first_bad_chunk(int fd, int64_t per_image, int64_t n, int64_t chunk,
                        const std::vector<uint32_t>& crcs, bool drop_pages) {
  std::vector<uint8_t> buf(static_cast<size_t>(per_image * std::min(chunk, n)));
  for (int64_t k = 0; k * chunk < n; ++k) {
    const int64_t first = k * chunk;
    const size_t bytes = static_cast<size_t>(per_image * std::min(chunk, n - first));
    const off_t at = static_cast<off_t>(kImagesOffset + per_image * first);
    size_t got = 0;
    while (got < bytes) {
      const ssize_t r = ::pread(fd, buf.data() + got, bytes - got, at + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    if (got != bytes || crc_update(crc_init(), buf.data(), bytes) != crcs[k]) return k;
    if (drop_pages) ::posix_fadvise(fd, at, static_cast<off_t>(bytes), POSIX_FADV_DONTNEED);
  }
  return -1;
}

struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr != nullptr) munmap(addr, size);
  }
};

const char* const kFix = " (a stale or damaged cache: delete it to rebuild)";

// A mapped cache whose header, size and digest have been checked.
struct Opened {
  std::shared_ptr<Mapping> map;
  Header hdr{};
  Layout lay{};
  CacheInfo info;
  std::vector<std::string> class_names;
};

Opened open_checked(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(c10::str("cannot open dataset cache '", path, "': ", std::strerror(errno)));
  }
  // Magic and version first: a file of another kind or version is told so, whatever its size.
  char head[12] = {};
  const ssize_t got = ::pread(fd, head, sizeof head, 0);
  uint32_t version = 0;
  std::memcpy(&version, head + 8, 4);
  struct stat st {};
  std::string problem;
  if (got >= 8 && std::memcmp(head, kMagic, 8) != 0) {
    problem = c10::str("'", path, "' is not a dmtrain dataset cache (bad magic)", kFix);
  } else if (got == 12 && version != kCacheVersion) {
    problem = c10::str("dataset cache '", path, "' has format version ", version,
                       "; this dmtrain reads version ", kCacheVersion,
                       " (which records what a cache was made from): delete it and prepare it "
                       "again (dmtrain data prepare, or a run's first use of data.cache)");
  } else if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kHeader)) {
    problem = c10::str("dataset cache '", path, "' is truncated (no header)", kFix);
  }
  if (!problem.empty()) {
    ::close(fd);
    throw Error(problem);
  }
  Opened o;
  o.map = std::make_shared<Mapping>();
  o.map->size = static_cast<size_t>(st.st_size);
  // Private copy-on-write mapping: pages come from the page cache, and an accidental write
  // cannot corrupt the file.
  o.map->addr = mmap(nullptr, o.map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (o.map->addr == MAP_FAILED) {
    o.map->addr = nullptr;
    throw Error(c10::str("cannot mmap dataset cache '", path, "'"));
  }
  const auto* base = static_cast<const uint8_t*>(o.map->addr);
  Header& h = o.hdr;
  std::memcpy(&h, base, kHeader);
  const int64_t kLimit = int64_t{1} << 46;
  if (h.n < 1 || h.h < 1 || h.w < 1 || h.h > (1 << 20) || h.w > (1 << 20) ||
      (h.c != 1 && h.c != 3) || h.n > kLimit / (h.h * h.w * h.c) ||
      (h.label_count != 0 && h.label_count != h.n) || h.chunk_images < 1 || h.names_bytes < 0 ||
      h.names_bytes > (1 << 30) || h.identity_bytes < 0 || h.identity_bytes > (1 << 30)) {
    throw Error(c10::str("dataset cache '", path, "' has an invalid header", kFix));
  }
  o.lay = layout_of(h);
  if (o.lay.end != h.file_size || h.file_size != static_cast<int64_t>(o.map->size)) {
    throw Error(c10::str("dataset cache '", path, "' has ", o.map->size, " bytes, its header says ",
                         o.lay.end, " (truncated?)", kFix));
  }
  uint32_t digest = crc_update(crc_init(), base + 16, kHeader - 16);
  digest = crc_update(digest, base + o.lay.labels, static_cast<size_t>(o.lay.end - o.lay.labels));
  if (digest != h.digest) {
    throw Error(c10::str("dataset cache '", path, "' fails its header checksum", kFix));
  }
  std::vector<std::string> kv;
  if (!split_strings(base + o.lay.names, base + o.lay.identity, &o.class_names) ||
      !split_strings(base + o.lay.identity, base + o.lay.end, &kv) ||
      !decode_identity(kv, &o.info.identity)) {
    throw Error(c10::str("dataset cache '", path, "': bad class or identity table", kFix));
  }
  o.info.n = h.n;
  o.info.h = h.h;
  o.info.w = h.w;
  o.info.c = h.c;
  o.info.has_labels = h.label_count > 0;
  o.info.chunk_images = h.chunk_images;
  o.info.chunks = o.lay.chunks;
  return o;
}

}  // namespace

std::string describe(const CacheIdentity& id) {
  std::string s = c10::str(id.source, " (", id.format);
  if (id.format != "folder") s += c10::str(", split ", id.split);
  s += c10::str(", labels ", id.labels, ", size ",
                id.image_size > 0 ? std::to_string(id.image_size) : std::string("as stored"), ", ",
                id.channels == 1 ? "1 channel" : c10::str(id.channels, " channels"));
  if (id.on_bad_file != "fail" || id.skipped > 0) {
    s += c10::str(", on_bad_file ", id.on_bad_file);
    if (id.skipped > 0) s += c10::str(": ", id.skipped, " skipped");
  }
  return s + ")";
}

CacheWriter::CacheWriter(std::string path, int64_t chunk_images)
    : path_(std::move(path)), chunk_images_(chunk_images) {
  TORCH_CHECK(chunk_images_ >= 1, "CacheWriter: chunk_images must be >= 1");
  // A cache path in a folder that does not exist yet (configs name e.g. data/cifar10.dmdata)
  // gets its folder, as any output of a run does.
  const fs::path parent = fs::path(path_).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  std::random_device rd;
  const uint64_t r = (uint64_t{rd()} << 32) ^ rd();
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(r));
  tmp_ = c10::str(path_, ".tmp.", ::getpid(), ".", suffix);
  fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error(c10::str("cannot write dataset cache '", path_, "': cannot create '", tmp_,
                         "': ", std::strerror(errno)));
  }
  const std::string zeros(kImagesOffset, '\0');  // the header is written by commit()
  write_all(zeros.data(), zeros.size());
  chunk_crc_ = crc_init();
}

CacheWriter::~CacheWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void CacheWriter::write_all(const void* data, size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t k = ::write(fd_, p, std::min<size_t>(bytes, size_t{1} << 30));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      throw Error(c10::str("cannot write dataset cache '", path_, "' (temporary file '", tmp_,
                           "'): ", k < 0 ? std::strerror(errno) : "short write"));
    }
    p += k;
    bytes -= static_cast<size_t>(k);
  }
}

void CacheWriter::finish_chunk() {
  crcs_.push_back(chunk_crc_);
  chunk_crc_ = crc_init();
  in_chunk_ = 0;
}

void CacheWriter::append(const at::Tensor& hwc) {
  TORCH_CHECK(hwc.dim() == 3 && hwc.scalar_type() == at::kByte && hwc.device().is_cpu(),
              "CacheWriter::append: expected a CPU uint8 H,W,C tensor, got ", hwc.sizes());
  append_batch(hwc.unsqueeze(0));
}

void CacheWriter::append_batch(const at::Tensor& nhwc) {
  TORCH_CHECK(nhwc.dim() == 4 && nhwc.scalar_type() == at::kByte && nhwc.device().is_cpu(),
              "CacheWriter::append_batch: expected a CPU uint8 N,H,W,C tensor, got ", nhwc.sizes());
  if (nhwc.size(0) == 0) return;
  if (n_ == 0) {
    h_ = nhwc.size(1);
    w_ = nhwc.size(2);
    c_ = nhwc.size(3);
    if (c_ != 1 && c_ != 3) {
      throw Error(
          c10::str("dataset cache '", path_, "': images have ", c_, " channels, expected 1 or 3"));
    }
  } else if (nhwc.size(1) != h_ || nhwc.size(2) != w_ || nhwc.size(3) != c_) {
    throw Error(c10::str("dataset cache '", path_, "': an image of ", nhwc.size(1), "x",
                         nhwc.size(2), "x", nhwc.size(3), " after images of ", h_, "x", w_, "x",
                         c_));
  }
  const at::Tensor x = nhwc.contiguous();
  const auto* p = x.data_ptr<uint8_t>();
  const size_t per_image = static_cast<size_t>(h_ * w_ * c_);
  int64_t left = x.size(0);
  while (left > 0) {
    const int64_t take = std::min(left, chunk_images_ - in_chunk_);
    const size_t bytes = per_image * static_cast<size_t>(take);
    write_all(p, bytes);
    chunk_crc_ = crc_update(chunk_crc_, p, bytes);
    p += bytes;
    left -= take;
    n_ += take;
    in_chunk_ += take;
    if (in_chunk_ == chunk_images_) finish_chunk();
  }
}

void CacheWriter::commit(const at::Tensor& labels, const std::vector<std::string>& class_names,
                         const CacheIdentity& identity) {
  TORCH_CHECK(!committed_ && fd_ >= 0, "CacheWriter::commit called twice");
  if (n_ == 0) throw Error(c10::str("dataset cache '", path_, "': no images to write"));
  if (in_chunk_ > 0) finish_chunk();
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kCacheVersion;
  h.n = n_;
  h.h = h_;
  h.w = w_;
  h.c = c_;
  h.chunk_images = chunk_images_;
  std::string meta;  // everything after the images, as written
  if (labels.defined()) {
    TORCH_CHECK(labels.dim() == 1 && labels.size(0) == n_ && labels.scalar_type() == at::kLong,
                "CacheWriter::commit: labels must be int64 with one entry per image");
    const at::Tensor l = labels.contiguous();
    meta.append(reinterpret_cast<const char*>(l.data_ptr<int64_t>()), static_cast<size_t>(n_) * 8);
    h.label_count = n_;
  }
  meta.append(reinterpret_cast<const char*>(crcs_.data()), crcs_.size() * 4);
  meta.append(
      static_cast<size_t>(padded(static_cast<int64_t>(crcs_.size()) * 4)) - crcs_.size() * 4, '\0');
  std::string names;
  for (const std::string& s : class_names) put_string(&names, s);
  const std::string ident = encode_identity(identity);
  h.names_bytes = static_cast<int64_t>(names.size());
  h.identity_bytes = static_cast<int64_t>(ident.size());
  meta += names;
  meta += ident;
  const Layout lay = layout_of(h);
  h.file_size = lay.end;
  const int64_t image_end = kImagesOffset + lay.image_bytes;
  const std::string pad(static_cast<size_t>(lay.labels - image_end), '\0');
  write_all(pad.data(), pad.size());
  write_all(meta.data(), meta.size());
  uint32_t digest = crc_update(crc_init(), reinterpret_cast<const uint8_t*>(&h) + 16, kHeader - 16);
  h.digest = crc_update(digest, meta.data(), meta.size());
  if (::pwrite(fd_, &h, kHeader, 0) != static_cast<ssize_t>(kHeader) || ::fsync(fd_) != 0) {
    throw Error(c10::str("cannot write dataset cache '", path_, "' (temporary file '", tmp_,
                         "'): ", std::strerror(errno)));
  }
  // Read the pixels back from the file against the checksums taken while writing them. The
  // written pages leave the page cache first, so the bytes come from the disk.
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  const int64_t bad = first_bad_chunk(fd_, h_ * w_ * c_, n_, chunk_images_, crcs_, true);
  if (bad >= 0) {
    throw Error(c10::str("dataset cache '", path_, "': images ", bad * chunk_images_, "..",
                         std::min(n_, (bad + 1) * chunk_images_) - 1, " read back from '", tmp_,
                         "' differ from what was written (a failing disk?)"));
  }
  ::close(fd_);
  fd_ = -1;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    throw Error(c10::str("cannot write dataset cache '", path_, "': renaming '", tmp_,
                         "' failed: ", std::strerror(errno)));
  }
  committed_ = true;
  const fs::path parent = fs::path(path_).parent_path();
  const int dfd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the new name is on disk too
    ::close(dfd);
  }
}

void write_cache(const ImageSet& set, const std::string& path, const CacheIdentity& identity) {
  set.validate(path);
  CacheWriter w(path);
  for (int64_t i = 0; i < set.size(); i += kCacheChunkImages) {
    w.append_batch(set.images.slice(0, i, std::min(set.size(), i + kCacheChunkImages)));
  }
  w.commit(set.labels, set.class_names, identity);
}

bool is_cache_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {};
  return f.read(magic, 8) && std::memcmp(magic, kMagic, 8) == 0;
}

CacheInfo read_cache_info(const std::string& path) {
  return open_checked(path).info;
}

ImageSet load_cache(const std::string& path, CacheInfo* info) {
  Opened o = open_checked(path);
  const auto* base = static_cast<const uint8_t*>(o.map->addr);
  ImageSet set;
  auto keep = [map = o.map](void*) {};  // each tensor holds the mapping alive
  set.images = at::from_blob(const_cast<uint8_t*>(base + kImagesOffset),
                             {o.hdr.n, o.hdr.h, o.hdr.w, o.hdr.c}, keep,
                             at::TensorOptions().dtype(at::kByte));
  if (o.hdr.label_count > 0) {
    set.labels = at::from_blob(const_cast<uint8_t*>(base + o.lay.labels), {o.hdr.n}, keep,
                               at::TensorOptions().dtype(at::kLong));
  }
  set.class_names = std::move(o.class_names);
  set.validate(path);
  if (info != nullptr) *info = o.info;
  return set;
}

CacheInfo verify_cache(const std::string& path) {
  const Opened o = open_checked(path);
  const auto* base = static_cast<const uint8_t*>(o.map->addr);
  std::vector<uint32_t> crcs(static_cast<size_t>(o.lay.chunks));
  std::memcpy(crcs.data(), base + o.lay.crcs, crcs.size() * 4);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(c10::str("cannot open dataset cache '", path, "': ", std::strerror(errno)));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const int64_t chunk = o.hdr.chunk_images;
  const int64_t bad = first_bad_chunk(fd, o.hdr.h * o.hdr.w * o.hdr.c, o.hdr.n, chunk, crcs, false);
  if (bad >= 0) {
    ::close(fd);
    throw Error(c10::str("dataset cache '", path, "': images ", bad * chunk, "..",
                         std::min(o.hdr.n, (bad + 1) * chunk) - 1, " (chunk ", bad + 1, " of ",
                         o.lay.chunks,
                         ") fail their checksum: the file is damaged; delete it and prepare it "
                         "again"));
  }
  ::close(fd);
  return o.info;
}

}  // namespace dmtrain::data
