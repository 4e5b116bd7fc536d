// Packed dataset cache: one file holding a decoded ImageSet, memory-mapped on load, so a run
// decodes its JPEGs once and later runs (and every rank) start in well under a second.
//
// File layout (little-endian), header 64 bytes:
//   0  char[8]  magic "DMTCACHE"     8  u32 version (1)      12 u32 crc32 of everything after
//   16 i64 N    24 i64 H    32 i64 W    40 i64 C    48 i64 label count (0 or N)
//   56 i64 class-name table bytes
// then images (N*H*W*C uint8, padded with zeros to a multiple of 8), labels (int64), class-name
// table (per name: u32 length + bytes). The cache is written to "<path>.tmp" and renamed.
// load_cache checks magic, version, size and checksum; any mismatch (a stale, truncated or
// corrupt cache) throws dmtrain::Error naming the file and saying to delete it.
// Tensors of a loaded cache point into a private copy-on-write mapping that lives as long as
// any of them; treat them as read-only.
#pragma once
#include <string>

#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

void prepare_cache(const ImageSet& set, const std::string& path);
ImageSet load_cache(const std::string& path);
// True if `path` starts with the cache magic (cheap check used by format "auto").
bool is_cache_file(const std::string& path);

}  // namespace dmtrain::data
