// Packed dataset cache: one file holding a decoded ImageSet and a record of what it was made
// from, memory-mapped on load, so a run decodes its images once and later runs (and every rank)
// start in well under a second whatever the data size.
//
// File layout, version 2 (little-endian):
//   0     header, 128 bytes:
//           0 char[8] magic "DMTCACHE"   8 u32 version (2)   12 u32 header digest (below)
//           16 i64 N   24 i64 H   32 i64 W   40 i64 C   48 i64 label count (0 or N)
//           56 i64 class-table bytes   64 i64 identity bytes   72 i64 images per chunk
//           80 i64 file size   88..128 zero
//   4096  images, N*H*W*C uint8 (page-aligned), padded with zeros to a multiple of 8
//         labels, label count x int64
//         chunk checksums, ceil(N / images per chunk) x u32 CRC-32 (zlib) of each chunk's pixels,
//         padded to a multiple of 8
//         class-name table (per name: u32 length + bytes)
//         identity (per entry: u32 key length, key, u32 value length, value; see CacheIdentity)
// The header digest is the CRC-32 of header bytes 16..128 and of everything after the images.
//
// Verification, and why it is split so: load_cache checks magic, version, the file size against
// the header and the header digest -- everything but the pixels, milliseconds even for ImageNet
// (its 10 MB of labels) -- so that every rank of every run does not read the whole file. The
// pixels are checked chunk by chunk once, when the file is written (read back before it gets its
// name), and on demand by verify_cache (`dmtrain data verify`), which names the damaged images.
// A lazy per-chunk check at first read would not be cheaper: the loader draws shuffled batches
// from the whole file from the first step on (ImageNet: 1,252 chunks of 1,024 images; 30
// batches of 256 touch all but 0.2% of them), so every rank would read the whole file within
// its first minute anyway, and each sample fetched would need a check in the loader. The failures
// that happen in practice -- a writer stopped half way, two writers, a truncated copy -- are caught
// at load (a cache gets its name only once complete and verified; a truncated file fails the size
// check).
//
// Writing: CacheWriter streams images into a unique temporary file next to the cache
// ("<path>.tmp.<pid>.<random>", so two writers never share one), then commit() writes labels,
// class names, identity and header, fsyncs, re-reads the pixels against their checksums, renames
// the file to `path` and fsyncs the folder. A writer destroyed before commit() removes its file.
// The writer keeps a checksum per chunk, not the images: its memory does not grow with N (the
// read-back uses one chunk's buffer). One writer per cache across processes is cache_build.hpp's.
//
// Errors: dmtrain::Error naming the file and what to do (delete it, prepare it again).
// Tensors of a loaded cache point into a private copy-on-write mapping that lives as long as any
// of them; treat them as read-only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

// What a cache was made from: the settings that decide its pixels and labels.
struct CacheIdentity {
  std::string source;           // absolute, canonical path of the data read
  std::string format;           // the source's format as read: folder, idx, cifar-bin, ...
  std::string split;            // train | test (recorded as given; an image folder has none)
  std::string labels = "none";  // none | folder | prefix
  int64_t image_size = 0;       // requested side (0: the stored size)
  int64_t channels = 3;
  std::string on_bad_file = "fail";  // fail | skip
  int64_t skipped = 0;               // unreadable files skipped (on_bad_file: skip)
};

// "<source> (folder, split train, labels folder, size 128, 3 channels, on_bad_file skip: 2
// skipped)"; the split is left out for an image folder.
std::string describe(const CacheIdentity& id);

struct CacheInfo {
  int64_t n = 0, h = 0, w = 0, c = 0;
  bool has_labels = false;
  int64_t chunk_images = 0, chunks = 0;
  CacheIdentity identity;
};

constexpr int64_t kCacheChunkImages = 1024;
constexpr uint32_t kCacheVersion = 2;

class CacheWriter {
 public:
  // Creates the temporary file (and the cache's folder if missing).
  explicit CacheWriter(std::string path, int64_t chunk_images = kCacheChunkImages);
  ~CacheWriter();  // removes the temporary file unless commit() succeeded
  CacheWriter(const CacheWriter&) = delete;
  CacheWriter& operator=(const CacheWriter&) = delete;

  // Appends one uint8 H,W,C image (the first fixes H, W, C; a different shape throws Error) or
  // every image of a uint8 N,H,W,C tensor.
  void append(const at::Tensor& hwc);
  void append_batch(const at::Tensor& nhwc);
  int64_t size() const { return n_; }
  const std::string& temp_path() const { return tmp_; }

  // labels: int64 of size() entries, or undefined. Writes the rest, verifies the pixels against
  // their checksums by reading them back, and gives the file its name (atomically).
  void commit(const at::Tensor& labels, const std::vector<std::string>& class_names,
              const CacheIdentity& identity);

 private:
  void write_all(const void* data, size_t bytes);
  void finish_chunk();

  std::string path_, tmp_;
  int fd_ = -1;
  int64_t chunk_images_;
  int64_t n_ = 0, h_ = 0, w_ = 0, c_ = 0;
  int64_t in_chunk_ = 0;
  uint32_t chunk_crc_ = 0;
  std::vector<uint32_t> crcs_;
  bool committed_ = false;
};

// Writes a whole in-memory set (through CacheWriter).
void write_cache(const ImageSet& set, const std::string& path, const CacheIdentity& identity);

// Maps the cache after the header checks above (not the pixel checksums); `info` receives its
// record when given.
ImageSet load_cache(const std::string& path, CacheInfo* info = nullptr);
// The header and identity alone (the same checks as load_cache).
CacheInfo read_cache_info(const std::string& path);
// The full check: load_cache's, then every chunk's pixels against its checksum; an Error names
// the first damaged chunk's image range. Returns the record.
CacheInfo verify_cache(const std::string& path);
// True if `path` starts with the cache magic (cheap check used by format "auto").
bool is_cache_file(const std::string& path);

}  // namespace dmtrain::data
