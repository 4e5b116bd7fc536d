// MetricsLog: the run's numbers, reported by name where they are computed and written once.
//
// A statistic is named "<group>/<key>": its metrics.jsonl key is <key>, its TensorBoard tag the
// whole name. Where a number is computed, one line reports it:
//   report(name, v)  the interval's mean of the values reported  (train/loss, train/grad_norm)
//   add(name, v)     the interval's sum                           (perf/data_wait_s)
//   set(name, v)     the value at the end of the interval         (train/lr, perf/gpu_mem_gib)
// flush() ends the interval: it adds its own statistics (images, perf/img_per_s, the loss per
// timestep quartile loss_by_t/loss_q0..3 over the examples whose t falls in quartile i of [0, T),
// summed over ranks), prints the status line, appends one record to metrics.jsonl (step, images,
// then every statistic in the order first reported) and the same numbers to TensorBoard
// (Options::tensorboard_dir), and starts the next interval. Adding a metric is the line that
// reports it.
//
// metrics.jsonl: one JSON object per line, appended by one write per record, so a kill leaves at
// most one torn last line (readers skip it). A record that cannot be written (a full disk) is
// lost, cut back off the file (util/record_appender.hpp), with a warning naming the file and the
// cause, and the log writes on: when it can write
// again it says how many records were lost. JSON has no NaN or infinity: such values are null,
// read back as NaN. read_records() is the one reader (the trainer's resume, sweep summaries,
// dmtrain compare, tests); StepRecord / FidRecord are typed views of its records.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dmtrain/observe/tensorboard.hpp"
#include "dmtrain/util/progress.hpp"
#include "dmtrain/util/record_appender.hpp"

namespace dmtrain::observe {

// One metrics.jsonl record: a flat JSON object. Numbers (null as NaN, true/false as 1/0) and
// strings by key.
struct Record {
  std::map<std::string, double> numbers;
  std::map<std::string, std::string> strings;
  bool has(const std::string& key) const { return numbers.count(key) || strings.count(key); }
  double number(const std::string& key) const;    // NaN when absent or null
  int64_t integer(const std::string& key) const;  // 0 when absent or null
};
// Parses one flat JSON object (values: numbers, null, true/false, strings); nullopt for anything
// else, e.g. a line torn by a kill or a nested value.
std::optional<Record> parse_record(const std::string& line);
// The parsable records of a JSON-lines file in file order; none when it does not exist.
std::vector<Record> read_records(const std::string& path);
// A record's line: `values` in order; non-finite numbers as null, the rest with 8 significant
// digits (integers as integers).
std::string to_json_line(const std::vector<std::pair<std::string, double>>& values);

// Typed views of the records MetricsLog writes.
struct StepRecord {
  int64_t step = 0, images = 0;
  double loss = NAN, grad_norm = NAN, lr = NAN, beta1 = NAN, img_per_s = NAN, data_wait_s = NAN;
  int64_t skipped = 0;
  double loss_scale = 1, gpu_mem_gib = 0;
  std::array<double, 4> loss_q{NAN, NAN, NAN, NAN};
  static StepRecord from(const Record& r);
};
struct FidRecord {
  int64_t step = 0;
  double fid = NAN;
  int64_t fid_samples = 0;
  double fid_seconds = 0;
  // From the same features when the reference has vectors (eval::Scores); NaN: not computed,
  // and then left out of the line.
  double kid = NAN, kid_std = NAN, precision = NAN, recall = NAN;
  static FidRecord from(const Record& r);
  std::string json_line() const;
};
// The records of a metrics.jsonl file in file order (FID records: those with a "fid" key).
struct MetricsHistory {
  std::vector<StepRecord> steps;
  std::vector<FidRecord> fids;
};
MetricsHistory read_metrics_file(const std::string& path);
// Cuts a metrics.jsonl back to the records of steps <= last_step (a resumed run then appends
// from there, with no duplicated steps from the iterations after its checkpoint); torn lines
// go too. Atomic: written beside and renamed. Returns the number of records removed.
int64_t truncate_metrics_file(const std::string& path, int64_t last_step);

class MetricsLog {
 public:
  struct Options {
    std::string path;        // metrics.jsonl; "" = no file (ranks other than 0)
    int64_t every = 1;       // log.every: a record every this many iterations
    bool print = true;       // the status line on the console/log (rank 0)
    int64_t batch_size = 1;  // global
    int64_t num_timesteps = 1;
    int64_t total_iterations = 1;           // K, for "iter k/K"
    int64_t first_iteration = 0, stop = 1;  // for the ETA
    at::Device device = at::kCPU;           // where the quartile sums accumulate
    std::string tensorboard_dir;            // "": no event file; else the numbers go there too
  };
  explicit MetricsLog(Options options);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Due after p: every log.every iterations and after the job's last one.
  bool due(const util::Progress& p) const { return util::every(o_.every, p.done) || p.at_stop(); }

  void report(const std::string& name, double value);
  void add(const std::string& name, double value);
  void set(const std::string& name, double value);
  // A taken step's timesteps and per-example losses (this rank's rows, on the device: summed
  // there without a sync) for the quartile means; counts the step for img/s.
  void add_step(const at::Tensor& t, const at::Tensor& per_example);
  // Time to leave out of img/s (evaluations between steps).
  void exclude(std::chrono::steady_clock::duration d) { interval_start_ += d; }
  // Ends the interval at `iteration` (reduce_sum sums a tensor over ranks); returns the record.
  Record flush(int64_t iteration, const std::function<void(at::Tensor&)>& reduce_sum);
  void write(const FidRecord& r);
  // The TensorBoard writer (for images and histograms), or nullptr when off.
  EventWriter* events() { return events_.get(); }

 private:
  enum class Kind { kMean, kSum, kLast };
  struct Stat {
    std::string name, key;
    Kind kind;
    double sum = 0;
    int64_t count = 0;
  };
  Stat& stat(const std::string& name, Kind kind);
  void append(const std::string& line);

  Options o_;
  std::unique_ptr<util::RecordAppender> file_;  // metrics.jsonl; none on ranks other than 0
  std::unique_ptr<EventWriter> events_;
  std::vector<Stat> stats_;  // in the order first reported
  int64_t steps_ = 0;
  at::Tensor q_sum_, q_count_;
  std::chrono::steady_clock::time_point interval_start_, run_start_;
};

}  // namespace dmtrain::observe
