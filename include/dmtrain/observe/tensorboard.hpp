// EventWriter: TensorBoard event files (events.out.tfevents.<seconds>.<host>) with scalars,
// PNG images and histograms, readable by TensorBoard's own reader.
//
// Format: TFRecord framing (uint64 length, uint32 masked CRC-32C of it, the bytes, uint32 masked
// CRC-32C of them; util/crc32c.hpp) around serialized tensorflow.Event protos. Only the few
// fields needed are encoded, by hand: Debian ships libprotobuf-dev, but generating the messages
// would need TensorBoard's .proto files and protoc on both machines, and the GPU machine's image
// is not known to have them; the wire format of these few fields is a page of code:
//   Event        1 wall_time double, 2 step int64, 3 file_version string, 5 summary Summary
//   Summary      1 value Value (repeated)
//   Value        1 tag string, 2 simple_value float, 4 image Image, 5 histo HistogramProto
//   Image        1 height int32, 2 width int32, 3 colorspace int32, 4 encoded_image_string bytes
//   Histogram    1 min, 2 max, 3 num, 4 sum, 5 sum_squares (double), 6 bucket_limit, 7 bucket
//                (packed repeated double)
// Every write goes to a buffer; flush() pushes it to the OS, so after a kill -9 the file holds
// every event up to the last flush (a torn last record is ignored by readers, and cut off by the
// next writer). A flush that cannot be written (a full disk) loses the buffered events with a
// warning naming the file and the cause, cuts the file back to its last whole record, and the
// writer goes on: once a flush succeeds again it says how many events were lost.
// A writer that starts at step k (a resumed run, or a fresh start at 0) first cuts the folder's
// older event files back to their events of steps <= k: the steps this run writes again appear
// once in TensorBoard, not twice.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dmtrain/util/record_appender.hpp"

namespace dmtrain::observe {

class EventWriter {
 public:
  // Creates `dir` and a new event file in it (the file_version event first), after cutting the
  // older event files there back to steps <= first_step.
  explicit EventWriter(const std::string& dir, int64_t first_step = 0);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;
  const std::string& path() const { return path_; }

  void scalar(const std::string& tag, int64_t step, double value);
  // An encoded PNG (its height, width and channel count read from its header).
  void png(const std::string& tag, int64_t step, const std::string& png_bytes);
  // A histogram of `counts[i]` in buckets (edges[i-1], edges[i]] (edges ascending, same size).
  void histogram(const std::string& tag, int64_t step, const std::vector<double>& edges,
                 const std::vector<double>& counts, double min, double max, double sum,
                 double sum_squares);
  void flush();

 private:
  void write_event(int64_t step, const std::string& summary_or_version, bool is_version);

  std::string path_;
  std::unique_ptr<util::RecordAppender> file_;
  std::string buffer_;    // whole records not yet written
  int64_t buffered_ = 0;  // records in buffer_
};

}  // namespace dmtrain::observe
