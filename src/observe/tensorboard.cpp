// Implementation of dmtrain/observe/tensorboard.hpp.
#include "dmtrain/observe/tensorboard.hpp"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "dmtrain/util/crc32c.hpp"
#include "dmtrain/util/error.hpp"

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

uint32_t be32(const std::string& s, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + at);
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

}  // namespace

EventWriter::EventWriter(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create TensorBoard folder '" + dir + "': " + ec.message());
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  // The pid keeps two writers started in the same second apart.
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(secs) + "." + host + "." +
                            std::to_string(::getpid())))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw Error("cannot open TensorBoard event file '" + path_ + "'");
  write_event(0, "brain.Event:2", /*is_version=*/true);
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
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
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
  out_.flush();
}

}  // namespace dmtrain::observe
