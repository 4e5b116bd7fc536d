// Reading members of a tar archive, plain or gzip-compressed (.tar, .tar.gz, .tgz), in one
// streaming pass: data sets published as tarballs (CIFAR) are read without unpacking them.
//
// Format: POSIX ustar and GNU tar headers (512-byte blocks, octal size field, header checksum
// verified). Only regular files are returned; directories, links and devices are skipped. GNU
// long names ('L') and pax extended headers ('x': path, size) apply to the next member; pax
// global headers ('g') are skipped. Gzip is recognised by its content, not the file name; a
// concatenation of gzip members is read as one stream, and the gzip CRC is checked by reading
// the stream to its end.
// Errors (dmtrain::Error naming the archive and, where known, the member): a file that cannot be
// opened, a bad header checksum or a header that is not tar, a member whose data ends early
// (truncated download), a corrupt gzip stream, a size field in base-256 (members over 8 GiB).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dmtrain::util {

struct TarMember {
  std::string name;  // path inside the archive, e.g. "cifar-10-batches-py/data_batch_1"
  std::string data;  // the member's bytes
};

// True when the file's first 512 (decompressed) bytes are a tar header with a valid checksum.
// Never throws for an unreadable or short file: it returns false.
bool is_tar_archive(const std::string& path);

// The regular-file members of the archive for which `want(name)` is true, in archive order; the
// data of the others is read past, not kept.
std::vector<TarMember> read_tar(const std::string& path,
                                const std::function<bool(const std::string& name)>& want);

}  // namespace dmtrain::util
