#include "dmtrain/util/tar_reader.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "dmtrain/util/error.hpp"

namespace dmtrain::util {
namespace {

constexpr size_t kBlock = 512;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// gzread reads gzip streams and, transparently, files that are not gzip.
class Stream {
 public:
  explicit Stream(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (f_) gzbuffer(f_.get(), 1 << 20);
  }
  bool ok() const { return f_ != nullptr; }

  // Reads up to n bytes; returns how many (fewer only at the end of the data). A corrupt gzip
  // stream throws.
  size_t read(char* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
      const int got = gzread(f_.get(), dst + done, chunk);
      if (got < 0) fail();
      if (got == 0) {
        check();
        break;
      }
      done += static_cast<size_t>(got);
    }
    return done;
  }

  // Reads to the end, so that gzip's CRC and length trailer are checked.
  void drain() {
    std::string sink(1 << 16, '\0');
    while (read(sink.data(), sink.size()) == sink.size()) {
    }
  }

 private:
  void check() {
    int err = Z_OK;
    gzerror(f_.get(), &err);
    if (err != Z_OK) fail();
  }
  [[noreturn]] void fail() {
    int err = Z_OK;
    const char* msg = gzerror(f_.get(), &err);
    throw Error("archive '" + path_ + "' is corrupt or truncated (gzip: " +
                std::string(msg ? msg : "read error") + "); download it again");
  }

  std::string path_;
  GzFile f_;
};

bool all_zero(const char* b) {
  return std::all_of(b, b + kBlock, [](char c) { return c == 0; });
}

// A NUL- or space-terminated octal field; -1 if it holds anything else.
int64_t octal(const char* field, size_t len) {
  size_t i = 0;
  while (i < len && field[i] == ' ') ++i;
  int64_t v = 0;
  bool any = false;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
    v = v * 8 + (field[i] - '0');
    any = true;
  }
  for (; i < len; ++i) {
    if (field[i] != ' ' && field[i] != '\0') return -1;
  }
  return any ? v : 0;
}

bool checksum_ok(const char* h) {
  const int64_t stored = octal(h + 148, 8);
  if (stored < 0) return false;
  int64_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
  }
  return sum == stored;
}

std::string field(const char* p, size_t len) {
  return std::string(p, strnlen(p, len));
}

// Applies the "path" and "size" records of a pax extended header ("<len> <key>=<value>\n" ...).
void parse_pax(const std::string& data, std::string* path, int64_t* size) {
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t space = data.find(' ', pos);
    if (space == std::string::npos) return;
    const int64_t len = std::atoll(data.c_str() + pos);
    if (len <= 0 || pos + static_cast<size_t>(len) > data.size()) return;
    const std::string record = data.substr(space + 1, pos + len - space - 2);  // minus '\n'
    const size_t eq = record.find('=');
    if (eq != std::string::npos) {
      const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
      if (key == "path") *path = value;
      if (key == "size") *size = std::atoll(value.c_str());
    }
    pos += static_cast<size_t>(len);
  }
}

}  // namespace

bool is_tar_archive(const std::string& path) {
  Stream s(path);
  if (!s.ok()) return false;
  char h[kBlock];
  try {
    if (s.read(h, kBlock) != kBlock) return false;
  } catch (const Error&) {
    return false;
  }
  return !all_zero(h) && checksum_ok(h) && std::memcmp(h + 257, "ustar", 5) == 0;
}

std::vector<TarMember> read_tar(const std::string& path,
                                const std::function<bool(const std::string&)>& want) {
  Stream s(path);
  if (!s.ok()) throw Error("cannot open archive '" + path + "'");
  std::vector<TarMember> out;
  std::string long_name;  // from a GNU 'L' or pax 'x' header, for the next member
  int64_t pax_size = -1;  // from a pax 'x' header, for the next member
  int64_t offset = 0;
  char h[kBlock];
  auto truncated = [&](const std::string& member) {
    return Error("archive '" + path + "' is truncated" +
                 (member.empty() ? "" : " inside member '" + member + "'") +
                 " (an incomplete download?); download it again");
  };
  for (;;) {
    const size_t got = s.read(h, kBlock);
    if (got == 0 && offset > 0) break;  // end without the two zero blocks: tolerated by tar too
    if (got != kBlock) throw truncated("");
    if (all_zero(h)) break;
    if (!checksum_ok(h)) {
      throw Error("archive '" + path + "': the header at byte " + std::to_string(offset) +
                  " is not a tar header (bad checksum); is this a .tar or .tar.gz file?");
    }
    offset += kBlock;
    const bool posix = std::memcmp(h + 257, "ustar\0", 6) == 0;
    std::string name = field(h, 100);
    const std::string prefix = posix ? field(h + 345, 155) : "";
    if (!prefix.empty()) name = prefix + "/" + name;
    if (static_cast<unsigned char>(h[124]) & 0x80) {
      throw Error("archive '" + path + "': member '" + name +
                  "' has a base-256 size (over 8 GiB), which this reader does not take");
    }
    int64_t size = octal(h + 124, 12);
    if (size < 0) {
      throw Error("archive '" + path + "': member '" + name + "' has a malformed size field");
    }
    const char type = h[156];
    if (type == 'L' || type == 'x' || type == 'g') {
      std::string data(static_cast<size_t>(size), '\0');
      if (s.read(data.data(), data.size()) != data.size()) throw truncated(name);
      const int64_t pad = (kBlock - size % kBlock) % kBlock;
      char skip[kBlock];
      if (s.read(skip, static_cast<size_t>(pad)) != static_cast<size_t>(pad)) {
        throw truncated(name);
      }
      offset += size + pad;
      if (type == 'L') long_name = data.c_str();
      if (type == 'x') parse_pax(data, &long_name, &pax_size);
      continue;
    }
    if (!long_name.empty()) name = long_name;
    if (pax_size >= 0) size = pax_size;
    long_name.clear();
    pax_size = -1;
    const bool regular = type == '0' || type == '\0' || type == '7';
    const int64_t padded = (size + static_cast<int64_t>(kBlock) - 1) / kBlock * kBlock;
    if (regular && want(name)) {
      TarMember m{name, std::string(static_cast<size_t>(size), '\0')};
      if (s.read(m.data.data(), m.data.size()) != m.data.size()) throw truncated(name);
      const size_t pad = static_cast<size_t>(padded - size);
      char skip[kBlock];
      if (s.read(skip, pad) != pad) throw truncated(name);
      out.push_back(std::move(m));
    } else if (regular || size > 0) {
      // Directories and links carry no data; other types' data is skipped.
      std::string sink(static_cast<size_t>(std::min<int64_t>(padded, 1 << 20)), '\0');
      for (int64_t left = padded; left > 0;) {
        const size_t n = static_cast<size_t>(std::min<int64_t>(left, sink.size()));
        if (s.read(sink.data(), n) != n) throw truncated(name);
        left -= static_cast<int64_t>(n);
      }
    }
    offset += padded;
  }
  s.drain();
  return out;
}

}  // namespace dmtrain::util
