#include "dmtrain/util/npy.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "dmtrain/util/error.hpp"

namespace dmtrain::util {
namespace {

const char kMagic[] = "\x93NUMPY";

std::string descr_of(at::ScalarType t) {
  switch (t) {
    case at::kByte:
      return "|u1";
    case at::kInt:
      return "<i4";
    case at::kLong:
      return "<i8";
    case at::kFloat:
      return "<f4";
    case at::kDouble:
      return "<f8";
    default:
      TORCH_CHECK(false, "npy: unsupported dtype ", t);
  }
}

at::ScalarType type_of(const std::string& descr, const std::string& what) {
  if (descr == "|u1" || descr == "<u1") return at::kByte;
  if (descr == "<i4") return at::kInt;
  if (descr == "<i8") return at::kLong;
  if (descr == "<f4") return at::kFloat;
  if (descr == "<f8") return at::kDouble;
  throw Error(c10::str(what, ": unsupported .npy dtype '", descr,
                       "' (expected |u1, <i4, <i8, <f4 or <f8)"));
}

void write_file(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    errno = 0;
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    // The last bytes reach the disk at close: a full disk shows there, not at write().
    f.close();
    if (!f) {
      const int err = errno;
      std::remove(tmp.c_str());
      throw Error(
          c10::str("cannot write '", path, "': ", err != 0 ? std::strerror(err) : "write failed"));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(c10::str("cannot write '", path, "': rename failed"));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(c10::str("cannot open '", path, "'"));
  const std::streamoff n = f.tellg();
  std::string bytes(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  f.seekg(0);
  if (n > 0 && !f.read(bytes.data(), n)) throw Error(c10::str("cannot read '", path, "'"));
  return bytes;
}

void put16(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}
uint32_t get16(const std::string& s, size_t at) {
  return static_cast<uint8_t>(s[at]) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 1])) << 8);
}
uint32_t get32(const std::string& s, size_t at) {
  return get16(s, at) | (get16(s, at + 2) << 16);
}
uint64_t get64(const std::string& s, size_t at) {
  return get32(s, at) | (uint64_t{get32(s, at + 4)} << 32);
}

// zlib's counts are 32-bit: feed it at most this many bytes per call.
constexpr uint64_t kZlibChunk = uint64_t{1} << 30;

uint32_t crc32_of(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t at = 0; at < bytes.size(); at += kZlibChunk) {
    const uint64_t n = std::min<uint64_t>(kZlibChunk, bytes.size() - at);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(crc);
}

// Inflates a raw DEFLATE stream (ZIP method 8: no zlib header) of `packed` bytes that must
// expand to exactly `size` bytes; anything else is `fail(why)`.
template <typename Fail>
std::string inflate_raw(const char* in, uint64_t packed, uint64_t size, const Fail& fail) {
  std::string out(size, '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw fail("cannot be inflated (zlib init failed)");
  uint64_t used = 0, made = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    const uint64_t in_n = std::min<uint64_t>(kZlibChunk, packed - used);
    const uint64_t out_n = std::min<uint64_t>(kZlibChunk, size - made);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in + used));
    z.avail_in = static_cast<uInt>(in_n);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + made);
    z.avail_out = static_cast<uInt>(out_n);
    rc = inflate(&z, Z_NO_FLUSH);
    used += in_n - z.avail_in;
    made += out_n - z.avail_out;
    // No progress possible: input exhausted or output full before the stream's end.
    if (rc == Z_OK && z.avail_in == in_n && z.avail_out == out_n) rc = Z_BUF_ERROR;
  }
  const std::string msg = z.msg != nullptr ? z.msg : "";
  inflateEnd(&z);
  if (rc != Z_STREAM_END) {
    if (rc != Z_BUF_ERROR) throw fail("has a corrupt deflate stream (" + msg + ")");
    throw fail(made == size ? c10::str("inflates to more than the ", size, " bytes it declares")
                            : std::string("is truncated (its deflate stream ends early)"));
  }
  if (made != size) {
    throw fail(c10::str("inflates to ", made, " bytes, its header says ", size));
  }
  return out;
}

}  // namespace

std::string npy_bytes(const at::Tensor& array) {
  at::Tensor a = array.to(at::kCPU).contiguous();
  std::ostringstream hdr;
  hdr << "{'descr': '" << descr_of(a.scalar_type()) << "', 'fortran_order': False, 'shape': (";
  for (int64_t d = 0; d < a.dim(); ++d)
    hdr << a.size(d) << (a.dim() == 1 || d + 1 < a.dim() ? ", " : "");
  hdr << "), }";
  std::string h = hdr.str();
  // Pad so the data starts at a multiple of 64 bytes (numpy's alignment); header ends with \n.
  const size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h.push_back('\n');
  std::string out(kMagic, 6);
  out.push_back('\x01');
  out.push_back('\x00');
  put16(out, static_cast<uint32_t>(h.size()));
  out += h;
  out.append(static_cast<const char*>(a.data_ptr()), a.nbytes());
  return out;
}

at::Tensor parse_npy(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) {
    throw Error(c10::str(what, ": not a .npy file (bad magic)"));
  }
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = get16(bytes, 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(c10::str(what, ": truncated .npy header"));
    hlen = get32(bytes, 8);
    start = 12;
  } else {
    throw Error(c10::str(what, ": unsupported .npy version ", major));
  }
  if (bytes.size() < start + hlen) throw Error(c10::str(what, ": truncated .npy header"));
  const std::string h = bytes.substr(start, hlen);
  auto field = [&](const std::string& key) {
    const size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) throw Error(c10::str(what, ": .npy header lacks '", key, "'"));
    return h.find(':', k) + 1;
  };
  size_t p = h.find('\'', field("descr"));
  const std::string descr = h.substr(p + 1, h.find('\'', p + 1) - p - 1);
  const at::ScalarType type = type_of(descr, what);
  if (h.compare(h.find_first_not_of(' ', field("fortran_order")), 5, "False") != 0) {
    throw Error(c10::str(what, ": Fortran-ordered .npy arrays are not supported"));
  }
  p = h.find('(', field("shape"));
  const size_t close = h.find(')', p);
  std::vector<int64_t> shape;
  std::istringstream ss(h.substr(p + 1, close - p - 1));
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.find_first_not_of(' ') == std::string::npos) continue;
    shape.push_back(std::stoll(tok));
  }
  at::Tensor out = at::empty(shape, type);
  const size_t data = start + hlen;
  if (bytes.size() - data != out.nbytes()) {
    throw Error(c10::str(what, ": .npy data has ", bytes.size() - data, " bytes, shape ", shape,
                         " needs ", out.nbytes()));
  }
  std::memcpy(out.data_ptr(), bytes.data() + data, out.nbytes());
  return out;
}

void write_npy(const std::string& path, const at::Tensor& array) {
  write_file(path, npy_bytes(array));
}

at::Tensor read_npy(const std::string& path) {
  return parse_npy(read_file(path), path);
}

void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, at::Tensor>>& arrays) {
  std::string zip, central;
  for (const auto& [name, array] : arrays) {
    const std::string member = name + ".npy";
    const std::string data = npy_bytes(array);
    if (zip.size() + data.size() > 0xFFFFFFF0ull) {
      throw Error(c10::str("cannot write '", path, "': archive over 4 GiB (no ZIP64 support)"));
    }
    const uint32_t crc = crc32_of(data);
    const uint32_t offset = static_cast<uint32_t>(zip.size());
    // Local file header: version 2.0, no flags, method 0 (stored), DOS time/date 1980-01-01.
    put32(zip, 0x04034b50);
    put16(zip, 20);
    put16(zip, 0);
    put16(zip, 0);
    put16(zip, 0);
    put16(zip, 0x21);
    put32(zip, crc);
    put32(zip, static_cast<uint32_t>(data.size()));
    put32(zip, static_cast<uint32_t>(data.size()));
    put16(zip, static_cast<uint32_t>(member.size()));
    put16(zip, 0);
    zip += member;
    zip += data;
    // Central directory entry for the same member.
    put32(central, 0x02014b50);
    put16(central, 20);
    put16(central, 20);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0x21);
    put32(central, crc);
    put32(central, static_cast<uint32_t>(data.size()));
    put32(central, static_cast<uint32_t>(data.size()));
    put16(central, static_cast<uint32_t>(member.size()));
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put32(central, 0);
    put32(central, offset);
    central += member;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(zip.size());
  zip += central;
  put32(zip, 0x06054b50);
  put16(zip, 0);
  put16(zip, 0);
  put16(zip, static_cast<uint32_t>(arrays.size()));
  put16(zip, static_cast<uint32_t>(arrays.size()));
  put32(zip, static_cast<uint32_t>(central.size()));
  put32(zip, cd_offset);
  put16(zip, 0);
  write_file(path, zip);
}

void write_samples_npz(const std::string& path, const at::Tensor& images_nhwc_uint8,
                       const at::Tensor& labels) {
  TORCH_CHECK(images_nhwc_uint8.dim() == 4 && images_nhwc_uint8.scalar_type() == at::kByte,
              "write_samples_npz: images must be uint8 N,H,W,C");
  // Names built as std::string outside the pair: GCC 12 misreports a bounds overflow (-Warray-
  // bounds false positive) when a pair<string, Tensor> is constructed from a string literal.
  const std::string names[2] = {"arr_0", "arr_1"};
  std::vector<std::pair<std::string, at::Tensor>> arrays;
  arrays.reserve(2);
  arrays.push_back(std::make_pair(names[0], images_nhwc_uint8));
  if (labels.defined()) arrays.push_back(std::make_pair(names[1], labels.to(at::kLong)));
  write_npz(path, arrays);
}

std::vector<std::pair<std::string, at::Tensor>> read_npz(const std::string& path) {
  const std::string zip = read_file(path);
  const auto bad = [&](const std::string& why) {
    return Error(c10::str(path, ": not a readable .npz archive (", why, ")"));
  };
  // The end-of-central-directory record: the last 22+ bytes (its comment may follow it).
  size_t eocd = std::string::npos;
  if (zip.size() >= 22) {
    const size_t lowest = zip.size() > 22 + 0xFFFF ? zip.size() - 22 - 0xFFFF : 0;
    for (size_t p = zip.size() - 22 + 1; p-- > lowest;) {
      if (get32(zip, p) == 0x06054b50) {
        eocd = p;
        break;
      }
    }
  }
  if (eocd == std::string::npos) throw bad("no ZIP end-of-central-directory record; truncated?");
  uint64_t entries = get16(zip, eocd + 10), cd_offset = get32(zip, eocd + 16);
  if (entries == 0xFFFF || cd_offset == 0xFFFFFFFFu) {
    // ZIP64: a locator just before the record points at the ZIP64 end-of-central-directory.
    if (eocd < 20 || get32(zip, eocd - 20) != 0x07064b50) throw bad("ZIP64 locator missing");
    const uint64_t z64 = get64(zip, eocd - 20 + 8);
    if (z64 + 56 > zip.size() || get32(zip, z64) != 0x06064b50) throw bad("bad ZIP64 record");
    entries = get64(zip, z64 + 32);
    cd_offset = get64(zip, z64 + 48);
  }
  std::vector<std::pair<std::string, at::Tensor>> out;
  uint64_t p = cd_offset;
  for (uint64_t i = 0; i < entries; ++i) {
    if (p + 46 > zip.size() || get32(zip, p) != 0x02014b50) throw bad("bad central directory");
    const uint32_t flags = get16(zip, p + 8), method = get16(zip, p + 10);
    const uint32_t crc = get32(zip, p + 16);
    uint64_t packed = get32(zip, p + 20), size = get32(zip, p + 24);
    const uint32_t name_len = get16(zip, p + 28), extra_len = get16(zip, p + 30),
                   comment_len = get16(zip, p + 32);
    uint64_t local = get32(zip, p + 42);
    if (p + 46 + name_len + extra_len > zip.size()) throw bad("bad central directory");
    std::string name = zip.substr(p + 46, name_len);
    // ZIP64 extra field 0x0001: 8-byte values for exactly those of (size, packed size, offset)
    // that read 0xFFFFFFFF above, in that order.
    for (uint64_t e = p + 46 + name_len, end = e + extra_len; e + 4 <= end;) {
      const uint32_t id = get16(zip, e), len = get16(zip, e + 2);
      if (id == 1) {
        uint64_t f = e + 4;
        for (uint64_t* v : {&size, &packed, &local}) {
          if (*v != 0xFFFFFFFFu) continue;
          if (f + 8 > e + 4 + len || f + 8 > end) throw bad("bad ZIP64 extra field");
          *v = get64(zip, f);
          f += 8;
        }
      }
      e += 4 + len;
    }
    p += 46 + name_len + extra_len + comment_len;
    const auto member_error = [&](const std::string& why) {
      return Error(c10::str(path, ": member '", name, "' ", why,
                            "; the file is damaged or incomplete (copy or write it again)"));
    };
    if ((flags & 0x1) != 0) throw member_error("is encrypted (not supported)");
    if (method != 0 && method != 8) {
      throw Error(c10::str(path, ": member '", name, "' uses ZIP compression method ", method,
                           "; only stored (np.savez) and deflate (np.savez_compressed) are read"));
    }
    if (local + 30 > zip.size() || get32(zip, local) != 0x04034b50) {
      throw member_error("has no local header (truncated)");
    }
    const uint64_t data = local + 30 + get16(zip, local + 26) + get16(zip, local + 28);
    if (data + packed > zip.size()) throw member_error("is truncated");
    std::string bytes;
    if (method == 0) {
      if (packed != size) throw member_error("has inconsistent sizes");
      bytes = zip.substr(data, size);
    } else {
      bytes = inflate_raw(zip.data() + data, packed, size, member_error);
    }
    if (crc32_of(bytes) != crc) throw member_error("fails its CRC-32 check");
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) {
      name.resize(name.size() - 4);
    }
    out.emplace_back(name, parse_npy(bytes, path + ":" + name));
  }
  if (out.empty()) throw Error(c10::str(path, ": not a .npz archive (no ZIP members)"));
  return out;
}

}  // namespace dmtrain::util
