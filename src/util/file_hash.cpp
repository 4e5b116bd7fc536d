// Implementation of dmtrain/util/file_hash.hpp.
#include "dmtrain/util/file_hash.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <vector>

#include "dmtrain/util/error.hpp"

namespace dmtrain::util {
namespace fs = std::filesystem;

uint64_t fnv1a64_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "' to hash it: " + std::strerror(errno));
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    for (std::streamsize i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      h *= 1099511628211ull;
    }
  }
  if (in.bad()) throw Error("cannot read '" + path + "' to hash it: " + std::strerror(errno));
  return h;
}

std::string hash_sidecar_path(const std::string& file) {
  return file + ".fnv";
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open '" + path + "' to flush it to disk");
  ::fsync(fd);
  ::close(fd);
}

namespace {

std::string hex(uint64_t h) {
  std::ostringstream os;
  os << std::hex << std::setw(16) << std::setfill('0') << h;
  return os.str();
}

}  // namespace

void write_hash_sidecar(const std::string& file) {
  fsync_path(file);  // the hash vouches for bytes on disk, not in the page cache
  const std::string sidecar = hash_sidecar_path(file), tmp = sidecar + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << hex(fnv1a64_file(file)) << "  " << fs::path(file).filename().string() << "\n";
    if (!out.flush()) throw Error("cannot write checksum file '" + tmp + "'");
  }
  fsync_path(tmp);
  std::error_code ec;
  fs::rename(tmp, sidecar, ec);
  if (ec) throw Error("cannot write checksum file '" + sidecar + "': " + ec.message());
  const fs::path dir = fs::path(file).parent_path();
  fsync_path(dir.empty() ? "." : dir.string());
}

bool verify_hash_sidecar(const std::string& file) {
  const std::string sidecar = hash_sidecar_path(file);
  if (!fs::exists(sidecar)) return false;
  std::ifstream in(sidecar);
  std::string want;
  if (!(in >> want) || want.size() != 16 ||
      want.find_first_not_of("0123456789abcdef") != std::string::npos) {
    throw Error("checksum file '" + sidecar + "' is unreadable (expected 16 hex digits first)");
  }
  const std::string got = hex(fnv1a64_file(file));
  if (got != want) {
    throw Error("'" + file + "' is corrupt: its hash does not match " + sidecar + " (FNV-1a-64 " +
                got + ", expected " + want +
                "); the file was changed or damaged after it was "
                "written");
  }
  return true;
}

}  // namespace dmtrain::util
