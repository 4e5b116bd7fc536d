// Implementation of dmtrain/observe/tensorboard.hpp.
#include "dmtrain/observe/tensorboard.hpp"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "dmtrain/util/crc32c.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/record_appender.hpp"

namespace dmtrain::observe {
namespace {

// ---- protobuf wire format: varints, tags, fixed64/fixed32, length-delimited -------------------
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, int field, int wire_type) {
  varint(out, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire_type));
}
template <class T>
void raw(std::string& out, T v) {  // little-endian, as the machines are
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void f_double(std::string& out, int field, double v) {
  key(out, field, 1);
  raw(out, v);
}
void f_float(std::string& out, int field, float v) {
  key(out, field, 5);
  raw(out, v);
}
void f_int(std::string& out, int field, int64_t v) {
  key(out, field, 0);
  varint(out, static_cast<uint64_t>(v));
}
void f_bytes(std::string& out, int field, const std::string& bytes) {
  key(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}
void f_packed_doubles(std::string& out, int field, const std::vector<double>& v) {
  std::string packed;
  for (double x : v) raw(packed, x);
  f_bytes(out, field, packed);
}

// A Summary holding one Value: its tag, then `payload` (the Value's encoded data field).
std::string summary_value(const std::string& tag, const std::string& payload) {
  std::string value;
  f_bytes(value, 1, tag);
  value += payload;
  std::string summary;
  f_bytes(summary, 1, value);
  return summary;
}

// The step of a serialized Event (field 2), or -1 when the bytes are not one.
int64_t event_step(const std::string& e) {
  size_t at = 0;
  const auto read_varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; at < e.size() && shift < 64; shift += 7) {
      const auto b = static_cast<unsigned char>(e[at++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (at < e.size()) {
    uint64_t k = 0, v = 0;
    if (!read_varint(k)) return -1;
    switch (k & 7) {
      case 0:
        if (!read_varint(v)) return -1;
        if ((k >> 3) == 2) return static_cast<int64_t>(v);
        break;
      case 1:
        at += 8;
        break;
      case 2:
        if (!read_varint(v) || v > e.size() - at) return -1;
        at += v;
        break;
      case 5:
        at += 4;
        break;
      default:
        return -1;
    }
  }
  return 0;  // no step field: step 0 (the file_version event)
}

// Cuts an event file back to its whole records of steps <= last_step (a torn or corrupt record
// ends it too). Returns the number of records removed (a torn one counts).
int64_t cut_event_file(const std::string& path, int64_t last_step) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = 0;
  while (at < bytes.size()) {
    uint64_t len = 0;
    uint32_t hcrc = 0, dcrc = 0;
    if (bytes.size() - at < 12) break;
    std::memcpy(&len, bytes.data() + at, 8);
    std::memcpy(&hcrc, bytes.data() + at + 8, 4);
    if (hcrc != util::masked_crc32c(bytes.data() + at, 8) || len > bytes.size() - at - 16) break;
    const std::string event = bytes.substr(at + 12, len);
    std::memcpy(&dcrc, bytes.data() + at + 12 + len, 4);
    if (dcrc != util::masked_crc32c(event.data(), event.size())) break;
    const int64_t step = event_step(event);
    if (step < 0 || step > last_step) break;
    at += 12 + len + 4;
  }
  if (at == bytes.size()) return 0;
  // Count what goes: every record (or torn piece) after `at`.
  int64_t removed = 0;
  for (size_t p = at; p + 12 <= bytes.size();) {
    uint64_t len = 0;
    std::memcpy(&len, bytes.data() + p, 8);
    ++removed;
    if (len > bytes.size() - p - 16) break;
    p += 12 + len + 4;
  }
  std::error_code ec;
  std::filesystem::resize_file(path, at, ec);
  if (ec) {
    throw Error("cannot cut TensorBoard event file '" + path + "' back to step " +
                std::to_string(last_step) + ": " + ec.message());
  }
  return std::max<int64_t>(removed, 1);
}

uint32_t be32(const std::string& s, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + at);
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

}  // namespace

EventWriter::EventWriter(const std::string& dir, int64_t first_step) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create TensorBoard folder '" + dir + "': " + ec.message());
  // A run that starts at first_step rewrites every later step: the earlier files lose them, so
  // that TensorBoard shows each step once (a run restarted before its first checkpoint, or
  // resumed from an older one).
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) != 0 || !entry.is_regular_file(ec)) continue;
    const int64_t removed = cut_event_file(entry.path().string(), first_step);
    if (removed > 0) {
      log::info("TensorBoard: " + entry.path().string() + ": " + std::to_string(removed) +
                " event(s) after step " + std::to_string(first_step) +
                " removed (this run starts there)");
    }
  }
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  // The pid keeps two writers started in the same second apart.
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(secs) + "." + host + "." +
                            std::to_string(::getpid())))
              .string();
  file_ = std::make_unique<util::RecordAppender>(path_, "TensorBoard event file");
  write_event(0, "brain.Event:2", /*is_version=*/true);
  flush();
}

EventWriter::~EventWriter() {
  flush();
}

void EventWriter::write_event(int64_t step, const std::string& payload, bool is_version) {
  std::string event;
  const double wall =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  f_double(event, 1, wall);
  f_int(event, 2, step);
  if (is_version) {
    f_bytes(event, 3, payload);
  } else {
    f_bytes(event, 5, payload);
  }
  std::string header;
  raw(header, static_cast<uint64_t>(event.size()));
  std::string record = header;
  raw(record, util::masked_crc32c(header.data(), header.size()));
  record += event;
  raw(record, util::masked_crc32c(event.data(), event.size()));
  buffer_ += record;
  ++buffered_;
}

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
  std::string v;
  f_float(v, 2, static_cast<float>(value));
  write_event(step, summary_value(tag, v), false);
}

void EventWriter::png(const std::string& tag, int64_t step, const std::string& png_bytes) {
  // IHDR: width and height at bytes 16 and 20, colour type at 25 (0 grey, 2 RGB, 4 grey+alpha,
  // 6 RGBA).
  if (png_bytes.size() < 26 || png_bytes.compare(1, 3, "PNG") != 0) {
    throw Error("EventWriter::png: '" + tag + "' is not a PNG");
  }
  const int colour = static_cast<unsigned char>(png_bytes[25]);
  const int channels = colour == 0 ? 1 : colour == 2 ? 3 : colour == 4 ? 2 : 4;
  std::string image;
  f_int(image, 1, be32(png_bytes, 20));
  f_int(image, 2, be32(png_bytes, 16));
  f_int(image, 3, channels);
  f_bytes(image, 4, png_bytes);
  std::string v;
  f_bytes(v, 4, image);
  write_event(step, summary_value(tag, v), false);
}

void EventWriter::histogram(const std::string& tag, int64_t step, const std::vector<double>& edges,
                            const std::vector<double>& counts, double min, double max, double sum,
                            double sum_squares) {
  TORCH_CHECK(edges.size() == counts.size(), "EventWriter::histogram: edges and counts differ");
  double num = 0;
  for (double c : counts) num += c;
  std::string h;
  f_double(h, 1, min);
  f_double(h, 2, max);
  f_double(h, 3, num);
  f_double(h, 4, sum);
  f_double(h, 5, sum_squares);
  f_packed_doubles(h, 6, edges);
  f_packed_doubles(h, 7, counts);
  std::string v;
  f_bytes(v, 5, h);
  write_event(step, summary_value(tag, v), false);
}

void EventWriter::flush() {
  if (buffer_.empty()) return;
  const auto out = file_->append(buffer_, buffered_);
  buffer_.clear();
  buffered_ = 0;
  if (out.first_loss) {
    log::warn("TensorBoard event file '" + path_ + "': cannot write (" + file_->cause() +
              "): " + std::to_string(file_->lost()) +
              " event(s) lost; later events are written when the file can be written again");
  }
  if (out.recovered > 0) {
    log::warn("TensorBoard event file '" + path_ + "' is written again; " +
              std::to_string(out.recovered) + " event(s) were lost");
  }
}

}  // namespace dmtrain::observe
