// Implementation of dmtrain/observe/metrics_log.hpp.
#include "dmtrain/observe/metrics_log.hpp"

#include <c10/util/StringUtil.h>

#include <cstring>

#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/record_appender.hpp"

namespace dmtrain::observe {
namespace {

using json = nlohmann::ordered_json;  // keys in the order written

// Non-finite numbers as null, integers exactly (steps, images, counts), the rest with 8
// significant digits (as the logs always had).
json num(double v) {
  if (!std::isfinite(v)) return nullptr;
  if (v == std::floor(v) && std::abs(v) < 9e15) return static_cast<int64_t>(v);
  std::ostringstream os;
  os << std::setprecision(8) << v;
  return json::parse(os.str());
}

std::string fmt(double v, int precision) {
  std::ostringstream os;
  os << std::setprecision(precision) << v;
  return os.str();
}

std::string duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  std::ostringstream os;
  if (s >= 3600) os << s / 3600 << "h";
  os << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s % 3600) / 60 << "m" << std::setw(2)
     << s % 60 << "s";
  return os.str();
}

}  // namespace

double Record::number(const std::string& key) const {
  const auto it = numbers.find(key);
  return it == numbers.end() ? NAN : it->second;
}

int64_t Record::integer(const std::string& key) const {
  const double v = number(key);
  return std::isfinite(v) ? static_cast<int64_t>(v) : 0;
}

std::optional<Record> parse_record(const std::string& line) {
  // nlohmann/json parses; only flat objects of numbers, null, booleans and strings are records.
  const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;  // also a line torn by a kill (discarded)
  Record rec;
  for (const auto& [key, v] : j.items()) {
    if (v.is_number()) {
      rec.numbers[key] = v.get<double>();
    } else if (v.is_null()) {
      rec.numbers[key] = NAN;
    } else if (v.is_boolean()) {
      rec.numbers[key] = v.get<bool>() ? 1 : 0;
    } else if (v.is_string()) {
      rec.strings[key] = v.get<std::string>();
    } else {
      return std::nullopt;  // nested: not one of the trainer's records
    }
  }
  return rec;
}

std::vector<Record> read_records(const std::string& path) {
  std::vector<Record> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (auto rec = parse_record(line)) out.push_back(std::move(*rec));
  }
  return out;
}

std::string to_json_line(const std::vector<std::pair<std::string, double>>& values) {
  json j = json::object();
  for (const auto& [key, v] : values) j[key] = num(v);
  return j.dump();
}

StepRecord StepRecord::from(const Record& r) {
  StepRecord s;
  s.step = r.integer("step");
  s.images = r.integer("images");
  s.loss = r.number("loss");
  s.grad_norm = r.number("grad_norm");
  s.lr = r.number("lr");
  s.beta1 = r.number("beta1");
  s.img_per_s = r.number("img_per_s");
  s.data_wait_s = r.number("data_wait_s");
  s.skipped = r.integer("skipped");
  s.loss_scale = r.number("loss_scale");
  s.gpu_mem_gib = r.number("gpu_mem_gib");
  for (int q = 0; q < 4; ++q) s.loss_q[q] = r.number("loss_q" + std::to_string(q));
  return s;
}

FidRecord FidRecord::from(const Record& r) {
  return {r.integer("step"), r.number("fid"),     r.integer("fid_samples"), r.number("fid_seconds"),
          r.number("kid"),   r.number("kid_std"), r.number("precision"),    r.number("recall")};
}

std::string FidRecord::json_line() const {
  std::vector<std::pair<std::string, double>> values = {
      {"step", static_cast<double>(step)},
      {"fid", fid},
      {"fid_samples", static_cast<double>(fid_samples)},
      {"fid_seconds", fid_seconds}};
  const std::pair<const char*, double> optional[] = {
      {"kid", kid}, {"kid_std", kid_std}, {"precision", precision}, {"recall", recall}};
  for (const auto& [key, v] : optional) {
    if (std::isfinite(v)) values.emplace_back(key, v);
  }
  return to_json_line(values);
}

MetricsHistory read_metrics_file(const std::string& path) {
  MetricsHistory h;
  for (const Record& r : read_records(path)) {
    if (r.has("fid")) {
      h.fids.push_back(FidRecord::from(r));
    } else {
      h.steps.push_back(StepRecord::from(r));
    }
  }
  return h;
}

int64_t truncate_metrics_file(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return 0;
  std::string kept;
  int64_t removed = 0;
  for (std::string line; std::getline(in, line);) {
    const auto rec = parse_record(line);
    if (rec && rec->integer("step") <= last_step) {
      kept += line + "\n";
    } else {
      ++removed;
    }
  }
  in.close();
  if (removed == 0) return 0;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    if (!out.flush()) throw Error("cannot write '" + tmp + "' (cutting metrics back on resume)");
  }
  std::filesystem::rename(tmp, path);
  return removed;
}

MetricsLog::MetricsLog(Options options) : o_(std::move(options)) {
  if (!o_.path.empty()) file_ = std::make_unique<util::RecordAppender>(o_.path, "metrics file");
  const auto opts = at::TensorOptions(o_.device).dtype(at::kDouble);
  q_sum_ = at::zeros({4}, opts);
  q_count_ = at::zeros({4}, opts);
  if (!o_.tensorboard_dir.empty()) {
    events_ = std::make_unique<EventWriter>(o_.tensorboard_dir, o_.first_iteration);
  }
  interval_start_ = run_start_ = std::chrono::steady_clock::now();
}

MetricsLog::Stat& MetricsLog::stat(const std::string& name, Kind kind) {
  for (auto& s : stats_) {
    if (s.name == name) {
      TORCH_CHECK(s.kind == kind, "MetricsLog: '", name, "' reported two ways");
      return s;
    }
  }
  const auto slash = name.find('/');
  TORCH_CHECK(slash != std::string::npos && slash + 1 < name.size(),
              "MetricsLog: a statistic is named <group>/<key>, got '", name, "'");
  stats_.push_back({name, name.substr(slash + 1), kind});
  return stats_.back();
}

void MetricsLog::report(const std::string& name, double value) {
  Stat& s = stat(name, Kind::kMean);
  s.sum += value;
  ++s.count;
}

void MetricsLog::add(const std::string& name, double value) {
  Stat& s = stat(name, Kind::kSum);
  s.sum += value;
  s.count = 1;
}

void MetricsLog::set(const std::string& name, double value) {
  Stat& s = stat(name, Kind::kLast);
  s.sum = value;
  s.count = 1;
}

void MetricsLog::add_step(const at::Tensor& t, const at::Tensor& per_example) {
  ++steps_;
  // Loss per timestep quartile, as ID logs it; accumulated on the device, read at flush.
  const at::Tensor quartile = (t * 4).div(o_.num_timesteps, "floor").clamp_max(3).to(at::kLong);
  q_sum_.index_add_(0, quartile, per_example.detach().to(at::kDouble));
  q_count_.index_add_(0, quartile, at::ones_like(quartile, at::kDouble));
}

Record MetricsLog::flush(int64_t iteration, const std::function<void(at::Tensor&)>& reduce_sum) {
  using Clock = std::chrono::steady_clock;
  reduce_sum(q_sum_);  // every rank's examples count in the quartile means
  reduce_sum(q_count_);
  const auto now = Clock::now();
  const double secs = std::max(std::chrono::duration<double>(now - interval_start_).count(), 1e-9);
  set("perf/img_per_s", static_cast<double>(steps_ * o_.batch_size) / secs);
  const at::Tensor qs = q_sum_.cpu(), qc = q_count_.cpu();
  for (int q = 0; q < 4; ++q) {
    const double count = qc[q].item<double>();
    set("loss_by_t/loss_q" + std::to_string(q), count > 0 ? qs[q].item<double>() / count : NAN);
  }
  // The interval's values: means of what was reported, sums, last values; none reported: NaN.
  std::vector<std::pair<std::string, double>> values{
      {"step", static_cast<double>(iteration)},
      {"images", static_cast<double>(iteration * o_.batch_size)}};
  Record r;
  for (const auto& [key, v] : values) r.numbers[key] = v;
  for (const Stat& s : stats_) {
    const double v = s.count == 0 ? NAN : s.kind == Kind::kMean ? s.sum / s.count : s.sum;
    values.emplace_back(s.key, v);
    r.numbers[s.key] = v;
    if (events_ && std::isfinite(v)) events_->scalar(s.name, iteration, v);
  }
  if (o_.print) {
    const double done = static_cast<double>(iteration - o_.first_iteration);
    const double elapsed = std::chrono::duration<double>(now - run_start_).count();
    const double eta = done > 0 ? elapsed / done * static_cast<double>(o_.stop - iteration) : 0;
    const auto v = [&r](const char* key) { return r.number(key); };
    std::ostringstream line;
    line << "iter " << iteration << "/" << o_.total_iterations << " | loss " << fmt(v("loss"), 4)
         << " | grad " << fmt(v("grad_norm"), 4) << " | lr " << fmt(v("lr"), 3) << " | beta1 "
         << fmt(v("beta1"), 4) << " | " << fmt(v("img_per_s"), 4) << " img/s"
         << " | data " << fmt(100.0 * v("data_wait_s") / secs, 3) << "%"
         << (o_.device.is_cuda() ? " | mem " + fmt(v("gpu_mem_gib"), 3) + " GiB" : std::string())
         << " | ETA " << duration(eta);
    log::info(line.str());
  }
  append(to_json_line(values));
  if (events_) events_->flush();
  for (Stat& s : stats_) {
    s.sum = 0;
    s.count = 0;
  }
  steps_ = 0;
  q_sum_.zero_();
  q_count_.zero_();
  interval_start_ = Clock::now();
  return r;
}

void MetricsLog::write(const FidRecord& r) {
  append(r.json_line());
  if (events_) {
    if (std::isfinite(r.fid)) events_->scalar("eval/fid", r.step, r.fid);
    if (std::isfinite(r.kid)) events_->scalar("eval/kid", r.step, r.kid);
    if (std::isfinite(r.precision)) events_->scalar("eval/precision", r.step, r.precision);
    if (std::isfinite(r.recall)) events_->scalar("eval/recall", r.step, r.recall);
    events_->flush();
  }
}

MetricsLog::~MetricsLog() = default;

void MetricsLog::append(const std::string& line) {
  if (!file_) return;
  const auto out = file_->append(line + "\n");
  if (out.first_loss) {
    log::warn("cannot append to '" + o_.path + "': " + file_->cause() +
              "; its records are lost until it can be written again (training goes on)");
  }
  if (out.recovered > 0) {
    log::warn(c10::str("'", o_.path, "' can be written again: ", out.recovered,
                       " record(s) before this one were lost"));
  }
}

}  // namespace dmtrain::observe
