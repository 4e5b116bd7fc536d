#include "dmtrain/models/safetensors.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <ATen/ATen.h>

#include "dmtrain/util/error.hpp"

namespace dmtrain::models {
namespace {

// The JSON subset safetensors headers use: objects, arrays, strings, non-negative integers
// (plus other numbers and literals, skipped). A small recursive-descent parser keeps the models
// area free of a JSON dependency.
struct Json {
  enum Kind { kNull, kNumber, kString, kArray, kObject } kind = kNull;
  int64_t number = 0;
  std::string text;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;
};

class Parser {
 public:
  Parser(const std::string& s, const std::string& path) : s_(s), path_(path) {}

  Json parse_document() {
    Json v = value();
    skip_ws();
    if (pos_ != s_.size()) fail("trailing characters after the header object");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("safetensors file " + path_ + ": malformed JSON header at byte " +
                std::to_string(pos_) + ": " + what);
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  char peek() {
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string_lit() {
    expect('"');
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) fail("bad escape");
        const char e = s_[pos_++];
        switch (e) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'u': {
            if (pos_ + 4 > s_.size()) fail("bad \\u escape");
            const unsigned code = std::stoul(s_.substr(pos_, 4), nullptr, 16);
            pos_ += 4;
            if (code < 0x80) {
              out += static_cast<char>(code);
            } else if (code < 0x800) {
              out += static_cast<char>(0xC0 | (code >> 6));
              out += static_cast<char>(0x80 | (code & 0x3F));
            } else {
              out += static_cast<char>(0xE0 | (code >> 12));
              out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
              out += static_cast<char>(0x80 | (code & 0x3F));
            }
            break;
          }
          default:
            out += e;
        }
      } else {
        out += c;
      }
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }
  Json value() {
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::kObject;
      ++pos_;
      if (peek() == '}') {
        ++pos_;
        return v;
      }
      while (true) {
        std::string key = string_lit();
        expect(':');
        v.fields.emplace_back(std::move(key), value());
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::kArray;
      ++pos_;
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      while (true) {
        v.items.push_back(value());
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::kString;
      v.text = string_lit();
      return v;
    }
    if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      v.kind = Json::kNumber;
      const size_t start = pos_;
      while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) ||
                                  std::strchr("+-.eE", s_[pos_]))) {
        ++pos_;
      }
      v.text = s_.substr(start, pos_ - start);
      if (v.text.find_first_of(".eE-") == std::string::npos)
        v.number = std::stoll(v.text);
      else
        v.number = -1;
      return v;
    }
    for (const char* lit : {"true", "false", "null"}) {
      if (s_.compare(pos_, std::strlen(lit), lit) == 0) {
        pos_ += std::strlen(lit);
        return v;
      }
    }
    fail("unexpected character");
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

const std::map<std::string, at::ScalarType>& dtypes() {
  static const std::map<std::string, at::ScalarType> table{
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool}};
  return table;
}

std::string dtype_name(at::ScalarType t, const std::string& key, const std::string& path) {
  for (const auto& [name, type] : dtypes()) {
    if (type == t) return name;
  }
  throw Error("safetensors file " + path + ": tensor '" + key + "' has unsupported dtype " +
              std::string(c10::toString(t)));
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

NamedTensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open safetensors file " + path);
  const auto bad = [&path](const std::string& what) {
    return Error("safetensors file " + path + ": " + what);
  };
  unsigned char len_bytes[8];
  if (!in.read(reinterpret_cast<char*>(len_bytes), 8))
    throw bad("shorter than its 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  if (header_len > file_size - 8) {
    throw bad("header length " + std::to_string(header_len) + " exceeds the file size " +
              std::to_string(file_size));
  }
  in.seekg(8);
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  const uint64_t data_size = file_size - 8 - header_len;
  std::vector<char> data(data_size);
  if (data_size > 0) in.read(data.data(), static_cast<std::streamsize>(data_size));
  if (!in) throw bad("read failed");

  const Json root = Parser(header, path).parse_document();
  if (root.kind != Json::kObject) throw bad("header is not a JSON object");
  struct Entry {
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    int64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& [name, info] : root.fields) {
    if (name == "__metadata__") continue;
    const Json* dtype = nullptr;
    const Json* shape = nullptr;
    const Json* offsets = nullptr;
    for (const auto& [k, v] : info.fields) {
      if (k == "dtype") dtype = &v;
      if (k == "shape") shape = &v;
      if (k == "data_offsets") offsets = &v;
    }
    if (!dtype || !shape || !offsets || dtype->kind != Json::kString ||
        shape->kind != Json::kArray || offsets->kind != Json::kArray ||
        offsets->items.size() != 2) {
      throw bad("tensor '" + name + "' lacks a valid dtype, shape or data_offsets");
    }
    const auto it = dtypes().find(dtype->text);
    if (it == dtypes().end())
      throw bad("tensor '" + name + "' has unsupported dtype " + dtype->text);
    Entry e{name, it->second, {}, offsets->items[0].number, offsets->items[1].number};
    int64_t numel = 1;
    for (const auto& d : shape->items) {
      if (d.kind != Json::kNumber || d.number < 0)
        throw bad("tensor '" + name + "' has a bad shape");
      e.shape.push_back(d.number);
      numel *= d.number;
    }
    const int64_t nbytes = numel * static_cast<int64_t>(c10::elementSize(e.dtype));
    if (e.begin < 0 || e.end < e.begin || static_cast<uint64_t>(e.end) > data_size ||
        e.end - e.begin != nbytes) {
      throw bad("tensor '" + name + "' has data_offsets [" + std::to_string(e.begin) + ", " +
                std::to_string(e.end) + "] inconsistent with its " + std::to_string(nbytes) +
                " bytes or the " + std::to_string(data_size) + "-byte data section");
    }
    entries.push_back(std::move(e));
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  NamedTensors out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data.data() + e.begin, e.end - e.begin);
    out.emplace_back(e.name, std::move(t));
  }
  return out;
}

void write_safetensors(const NamedTensors& tensors, const std::string& path) {
  std::ostringstream header;
  header << '{';
  int64_t offset = 0;
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    cpu.push_back(t.detach().to(at::kCPU).contiguous());
    const int64_t nbytes = cpu.back().numel() * static_cast<int64_t>(cpu.back().element_size());
    header << (i ? "," : "") << '"' << json_escape(name) << "\":{\"dtype\":\""
           << dtype_name(t.scalar_type(), name, path) << "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); ++d) header << (d ? "," : "") << t.size(d);
    header << "],\"data_offsets\":[" << offset << ',' << offset + nbytes << "]}";
    offset += nbytes;
  }
  header << '}';
  std::string h = header.str();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write safetensors file " + path);
  unsigned char len_bytes[8];
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((len >> (8 * i)) & 0xFF);
  out.write(reinterpret_cast<const char*>(len_bytes), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& t : cpu) {
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(t.numel() * t.element_size()));
  }
  // flush(): the last bytes reach the file there, and a full disk shows there.
  if (!out.flush()) throw Error("write failed for safetensors file " + path);
}

}  // namespace dmtrain::models
