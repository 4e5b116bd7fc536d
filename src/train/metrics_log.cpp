// Implementation of dmtrain/train/metrics_log.hpp.
#include "dmtrain/train/metrics_log.hpp"

#include <c10/util/StringUtil.h>

#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train {
namespace {

using json = nlohmann::ordered_json;  // keys in the order written

// Non-finite numbers as null; the rest with 8 significant digits (as the logs always had).
json num(double v) {
  if (!std::isfinite(v)) return nullptr;
  std::ostringstream os;
  os << std::setprecision(8) << v;
  return json::parse(os.str());
}

double get(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || !it->is_number() ? NAN : it->get<double>();
}

int64_t get_int(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || !it->is_number() ? 0 : it->get<int64_t>();
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

// The number fields of a step record, in file order, with their TensorBoard tags: the one list
// that the JSON writer and the event writer share (step, images and skipped are integers).
std::vector<std::tuple<std::string, std::string, double>> number_fields(const StepRecord& r) {
  std::vector<std::tuple<std::string, std::string, double>> f = {
      {"loss", "train/loss", r.loss},
      {"grad_norm", "train/grad_norm", r.grad_norm},
      {"lr", "train/lr", r.lr},
      {"beta1", "train/beta1", r.beta1},
      {"img_per_s", "perf/img_per_s", r.img_per_s},
      {"data_wait_s", "perf/data_wait_s", r.data_wait_s},
      {"loss_scale", "train/loss_scale", r.loss_scale},
      {"gpu_mem_gib", "perf/gpu_mem_gib", r.gpu_mem_gib}};
  for (int q = 0; q < 4; ++q) {
    f.emplace_back("loss_q" + std::to_string(q), "loss_by_t/q" + std::to_string(q), r.loss_q[q]);
  }
  return f;
}

std::string to_json_line(const StepRecord& r) {
  json j;
  j["step"] = r.step;
  j["images"] = r.images;
  const auto fields = number_fields(r);
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i == 6) j["skipped"] = r.skipped;  // where the records always had it
    j[std::get<0>(fields[i])] = num(std::get<2>(fields[i]));
  }
  return j.dump();
}

std::string to_json_line(const FidRecord& r) {
  json j;
  j["step"] = r.step;
  j["fid"] = num(r.fid);
  j["fid_samples"] = r.fid_samples;
  j["fid_seconds"] = num(r.fid_seconds);
  return j.dump();
}

MetricsHistory read_metrics_file(const std::string& path) {
  MetricsHistory h;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;  // a torn last line
    if (j.contains("fid")) {
      h.fids.push_back(
          {get_int(j, "step"), get(j, "fid"), get_int(j, "fid_samples"), get(j, "fid_seconds")});
      continue;
    }
    StepRecord r;
    r.step = get_int(j, "step");
    r.images = get_int(j, "images");
    r.loss = get(j, "loss");
    r.grad_norm = get(j, "grad_norm");
    r.lr = get(j, "lr");
    r.beta1 = get(j, "beta1");
    r.img_per_s = get(j, "img_per_s");
    r.data_wait_s = get(j, "data_wait_s");
    r.skipped = get_int(j, "skipped");
    r.loss_scale = get(j, "loss_scale");
    r.gpu_mem_gib = get(j, "gpu_mem_gib");
    for (int q = 0; q < 4; ++q) r.loss_q[q] = get(j, ("loss_q" + std::to_string(q)).c_str());
    h.steps.push_back(r);
  }
  return h;
}

int64_t truncate_metrics_file(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return 0;
  std::string kept;
  int64_t removed = 0;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && get_int(j, "step") <= last_step) {
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
  if (!o_.path.empty()) {
    file_.open(o_.path, std::ios::app);
    if (!file_) throw Error("cannot open '" + o_.path + "' for appending");
  }
  const auto opts = at::TensorOptions(o_.device).dtype(at::kDouble);
  q_sum_ = at::zeros({4}, opts);
  q_count_ = at::zeros({4}, opts);
  if (!o_.tensorboard_dir.empty()) events_ = std::make_unique<EventWriter>(o_.tensorboard_dir);
  interval_start_ = run_start_ = std::chrono::steady_clock::now();
}

void MetricsLog::add_step(double loss, double grad_norm, const at::Tensor& t,
                          const at::Tensor& per_example) {
  loss_sum_ += loss;
  gnorm_sum_ += grad_norm;
  ++steps_;
  // Loss per timestep quartile, as ID logs it; accumulated on the device, read at flush.
  const at::Tensor quartile = (t * 4).div(o_.num_timesteps, "floor").clamp_max(3).to(at::kLong);
  q_sum_.index_add_(0, quartile, per_example.detach().to(at::kDouble));
  q_count_.index_add_(0, quartile, at::ones_like(quartile, at::kDouble));
}

StepRecord MetricsLog::flush(int64_t iteration, double lr, double beta1, int64_t skipped,
                             double loss_scale, double gpu_mem_gib,
                             const std::function<void(at::Tensor&)>& reduce_sum) {
  using Clock = std::chrono::steady_clock;
  reduce_sum(q_sum_);  // every rank's examples count in the quartile means
  reduce_sum(q_count_);
  const auto now = Clock::now();
  const double secs = std::max(std::chrono::duration<double>(now - interval_start_).count(), 1e-9);
  StepRecord r;
  r.step = iteration;
  r.images = iteration * o_.batch_size;
  r.loss = steps_ ? loss_sum_ / steps_ : NAN;
  r.grad_norm = steps_ ? gnorm_sum_ / steps_ : NAN;
  r.lr = lr;
  r.beta1 = beta1;
  r.img_per_s = steps_ * o_.batch_size / secs;
  r.data_wait_s = data_wait_;
  r.skipped = skipped;
  r.loss_scale = loss_scale;
  r.gpu_mem_gib = gpu_mem_gib;
  const at::Tensor qs = q_sum_.cpu(), qc = q_count_.cpu();
  for (int q = 0; q < 4; ++q) {
    const double count = qc[q].item<double>();
    r.loss_q[q] = count > 0 ? qs[q].item<double>() / count : NAN;
  }
  if (o_.print) {
    const double done = static_cast<double>(iteration - o_.first_iteration);
    const double elapsed = std::chrono::duration<double>(now - run_start_).count();
    const double eta = done > 0 ? elapsed / done * static_cast<double>(o_.stop - iteration) : 0;
    std::ostringstream line;
    line << "iter " << iteration << "/" << o_.total_iterations << " | loss " << fmt(r.loss, 4)
         << " | grad " << fmt(r.grad_norm, 4) << " | lr " << fmt(lr, 3) << " | beta1 "
         << fmt(beta1, 4) << " | " << fmt(r.img_per_s, 4) << " img/s"
         << " | data " << fmt(100.0 * data_wait_ / secs, 3) << "%"
         << (o_.device.is_cuda() ? " | mem " + fmt(gpu_mem_gib, 3) + " GiB" : std::string())
         << " | ETA " << duration(eta);
    log::info(line.str());
  }
  append(to_json_line(r));
  if (events_) {
    for (const auto& [name, tag, v] : number_fields(r)) {
      (void)name;
      if (std::isfinite(v)) events_->scalar(tag, iteration, v);
    }
    events_->scalar("train/skipped", iteration, static_cast<double>(r.skipped));
    events_->flush();
  }
  loss_sum_ = gnorm_sum_ = data_wait_ = 0;
  steps_ = 0;
  q_sum_.zero_();
  q_count_.zero_();
  interval_start_ = Clock::now();
  return r;
}

void MetricsLog::write(const FidRecord& r) {
  append(to_json_line(r));
  if (events_) {
    if (std::isfinite(r.fid)) events_->scalar("eval/fid", r.step, r.fid);
    events_->flush();
  }
}

void MetricsLog::append(const std::string& line) {
  if (file_.is_open()) file_ << line << "\n" << std::flush;
}

}  // namespace dmtrain::train
