// MetricsLog: the run's numbers, written once. It owns the interval accumulators (loss, gradient
// norm, data wait, the loss per timestep quartile), the status line, and the one writer of
// metrics.jsonl; the records' keys are listed once, in StepRecord / FidRecord and their
// to_json_line / read_metrics_file (nlohmann/json, in metrics_log.cpp), which the readers (sweep
// summaries, tests) use too. With Options::tensorboard_dir the same numbers also go to a
// TensorBoard event file (train/tensorboard.hpp), tags train/*, perf/*, loss_by_t/q*, eval/fid.
//
// metrics.jsonl: one JSON object per line, appended and flushed per record, so a kill leaves at
// most one torn last line (readers skip it). JSON has no NaN or infinity: such values are null,
// read back as NaN.
//   step record: step, images, loss, grad_norm, lr, beta1, img_per_s, data_wait_s, skipped,
//                loss_scale, gpu_mem_gib, loss_q0..loss_q3 (interval means; loss_qi over the
//                examples whose t falls in quartile i of [0, T))
//   FID record:  step, fid, fid_samples, fid_seconds
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dmtrain/train/tensorboard.hpp"

namespace dmtrain::train {

struct StepRecord {
  int64_t step = 0, images = 0;
  double loss = NAN, grad_norm = NAN, lr = NAN, beta1 = NAN, img_per_s = NAN, data_wait_s = NAN;
  int64_t skipped = 0;
  double loss_scale = 1, gpu_mem_gib = 0;
  std::array<double, 4> loss_q{NAN, NAN, NAN, NAN};
};

struct FidRecord {
  int64_t step = 0;
  double fid = NAN;
  int64_t fid_samples = 0;
  double fid_seconds = 0;
};

std::string to_json_line(const StepRecord& r);
std::string to_json_line(const FidRecord& r);

// The records of a metrics.jsonl file in file order; unparsable (torn) lines are skipped, a
// missing file gives none.
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
    bool print = true;       // the status line on the console/log (rank 0)
    int64_t batch_size = 1;  // global
    int64_t num_timesteps = 1;
    int64_t total_iterations = 1;           // K, for "iter k/K"
    int64_t first_iteration = 0, stop = 1;  // for the ETA
    at::Device device = at::kCPU;           // where the quartile sums accumulate
    std::string tensorboard_dir;            // "": no event file; else the numbers go there too
  };
  explicit MetricsLog(Options options);

  void add_data_wait(double seconds) { data_wait_ += seconds; }
  // A taken step: its loss and gradient norm (global means), the batch's timesteps and
  // per-example losses (this rank's rows; on the device, summed there without a sync).
  void add_step(double loss, double grad_norm, const at::Tensor& t, const at::Tensor& per_example);
  // Time to leave out of img/s (evaluations between steps).
  void exclude(std::chrono::steady_clock::duration d) { interval_start_ += d; }
  // Ends the interval at `iteration`: sums the quartile accumulators over ranks with
  // reduce_sum, prints the status line, appends the record; resets the interval.
  StepRecord flush(int64_t iteration, double lr, double beta1, int64_t skipped, double loss_scale,
                   double gpu_mem_gib, const std::function<void(at::Tensor&)>& reduce_sum);
  void write(const FidRecord& r);
  // The TensorBoard writer (for images and histograms), or nullptr when off.
  EventWriter* events() { return events_.get(); }

 private:
  void append(const std::string& line);

  Options o_;
  std::ofstream file_;
  std::unique_ptr<EventWriter> events_;
  double loss_sum_ = 0, gnorm_sum_ = 0, data_wait_ = 0;
  int64_t steps_ = 0;
  at::Tensor q_sum_, q_count_;
  std::chrono::steady_clock::time_point interval_start_, run_start_;
};

}  // namespace dmtrain::train
