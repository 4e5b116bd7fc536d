#include "dmtrain/observe/kernel_profile.hpp"

#include <kineto/ActivityType.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iomanip>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dmtrain/util/error.hpp"

namespace dmtrain::observe {
namespace {

namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool contains_any(const std::string& s, std::initializer_list<const char*> needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](const char* n) { return s.find(n) != std::string::npos; });
}

bool is_device_activity(uint8_t type) {
  using libkineto::ActivityType;
  const auto t = static_cast<ActivityType>(type);
  return t == ActivityType::CONCURRENT_KERNEL || t == ActivityType::GPU_MEMCPY ||
         t == ActivityType::GPU_MEMSET;
}

// Profiler bookkeeping rows, not work.
bool is_bookkeeping(const std::string& name) {
  return name == "[memory]" || name == "[OutOfMemory]";
}

struct Span {
  std::string name;
  uint64_t thread = 0;
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t self = 0;  // ns; duration minus directly nested spans (CPU) or the duration (device)
};

// Subtracts each span's direct children from its self time. Spans of one thread either nest or
// are disjoint (RecordFunction scopes), so a stack over (start asc, end desc) order finds the
// parent of each.
void subtract_children(std::vector<Span>& spans) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return std::make_tuple(a.thread, a.start, b.end) < std::make_tuple(b.thread, b.start, a.end);
  });
  std::vector<Span*> stack;
  for (auto& s : spans) {
    while (!stack.empty() && (stack.back()->thread != s.thread || stack.back()->end <= s.start)) {
      stack.pop_back();
    }
    if (!stack.empty()) {
      Span* parent = stack.back();
      parent->self -= std::min(parent->self, s.end - s.start);
    }
    stack.push_back(&s);
  }
}

std::string shorten(std::string name) {
  constexpr size_t kWidth = 60;
  // Drop what every ATen kernel name repeats, so the 60 characters show the functor.
  for (const std::string cut : {"void ", "at::native::", "(anonymous namespace)::"}) {
    for (size_t at = name.find(cut); at != std::string::npos; at = name.find(cut, at)) {
      name.erase(at, cut.size());
    }
  }
  if (name.size() > kWidth) name = name.substr(0, kWidth - 3) + "...";
  return name;
}

}  // namespace

std::string kernel_category(const std::string& name) {
  const std::string n = lower(name);
  // Order matters; see the header. Softmax counts as attention because the UNets use it only
  // in their attention blocks. _foreach ops are the optimizer's and the EMA's multi-tensor
  // updates.
  if (contains_any(n, {"memcpy", "memset"})) return "memcpy/memset";
  if (contains_any(n, {"flash", "fmha", "attention", "softmax"})) return "attention";
  if (contains_any(n, {"multi_tensor", "adam", "foreach"})) return "optimizer";
  // ATen's GroupNorm CUDA kernels: RowwiseMoments/ComputeFusedParams (forward),
  // ComputeInternalGradients/ComputeBackwardFusedParams/GammaBeta* (backward), plus
  // elementwise kernels whose lambda names GroupNorm.
  if (contains_any(n,
                   {"group_norm", "groupnorm", "layer_norm", "layernorm", "batch_norm", "batchnorm",
                    "rowwisemoments", "fusedparams", "computeinternalgradients", "gammabeta"})) {
    return "norm";
  }
  // Vendor GEMM/convolution libraries, before "reduce": cuBLAS's split-K reduction kernel is
  // part of a matmul. cuDNN's layout transposes (nchwToNhwc...) exist only around convolutions.
  if (contains_any(n, {"gemm", "conv", "cutlass", "xmma", "cublas", "cudnn", "sm90", "sm80",
                       "winograd", "nchwtonhwc", "nhwctonchw"})) {
    return "conv/gemm";
  }
  if (n.find("elementwise") != std::string::npos) return "elementwise";
  if (n.find("reduce") != std::string::npos) return "reduce";
  // CPU op names ("aten::mm") say less than kernel names; map the common ones by name.
  static const std::map<std::string, std::string> kAtenOps = [] {
    std::map<std::string, std::string> m;
    for (const char* op : {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "einsum"}) {
      m[op] = "conv/gemm";
    }
    for (const char* op :
         {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "silu", "silu_",
          "silu_backward", "sigmoid", "exp", "sqrt", "copy_", "fill_", "zero_", "where", "clamp"}) {
      m[op] = "elementwise";
    }
    for (const char* op : {"sum", "mean", "amax", "max", "linalg_vector_norm"}) m[op] = "reduce";
    return m;
  }();
  if (n.rfind("aten::", 0) == 0) {
    const auto it = kAtenOps.find(n.substr(6));
    if (it != kAtenOps.end()) return it->second;
  }
  return "other";
}

double busy_fraction(std::vector<std::pair<uint64_t, uint64_t>> intervals) {
  if (intervals.empty()) return 1.0;
  std::sort(intervals.begin(), intervals.end());
  uint64_t covered = 0, run_start = intervals[0].first, run_end = intervals[0].first;
  uint64_t last_end = 0;
  for (const auto& [start, end] : intervals) {
    if (start > run_end) {  // a gap: close the covered run
      covered += run_end - run_start;
      run_start = start;
      run_end = start;
    }
    run_end = std::max(run_end, end);
    last_end = std::max(last_end, end);
  }
  covered += run_end - run_start;
  const uint64_t span = last_end - intervals[0].first;
  return span == 0 ? 1.0 : static_cast<double>(covered) / static_cast<double>(span);
}

KernelProfile::~KernelProfile() {
  if (!recording_) return;
  try {
    prof::disableProfiler();  // result discarded; leaving the profiler on would leak it
  } catch (...) {
  }
}

void KernelProfile::start(bool record_shapes) {
  TORCH_CHECK(!recording_, "KernelProfile::start: already recording");
  std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  if (torch::cuda::is_available()) activities.insert(impl::ActivityType::CUDA);
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO, record_shapes);
  // As Python's torch.profiler does: prepareProfiler initialises libkineto on first use and
  // configures its trace (CUPTI for CUDA), then enableProfiler installs the op callbacks and
  // starts the trace.
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  recording_ = true;
}

std::string KernelProfile::stop(const std::string& trace_path, int64_t steps, int top) {
  TORCH_CHECK(recording_, "KernelProfile::stop: not recording");
  TORCH_CHECK(steps >= 1, "KernelProfile::stop: steps must be >= 1, got ", steps);
  TORCH_CHECK(top >= 0, "KernelProfile::stop: top must be >= 0, got ", top);
  recording_ = false;
  const std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  TORCH_CHECK(result, "KernelProfile::stop: the profiler returned no result");

  if (!trace_path.empty()) {
    result->save(trace_path);
    // Kineto reports a failed write only in its own log, so check for the file.
    if (!std::filesystem::exists(trace_path)) {
      throw Error(c10::str("KernelProfile: could not write the trace file '", trace_path,
                           "' (does its directory exist and is it writable?)"));
    }
  }

  std::vector<Span> device, cpu;
  for (const auto& e : result->events()) {
    const std::string name = e.name();
    if (is_bookkeeping(name) || e.isAsync()) continue;
    Span s{name, e.startThreadId(), e.startNs(), e.endNs(), e.durationNs()};
    if (is_device_activity(e.activityType())) {
      device.push_back(std::move(s));
    } else if (e.deviceType() == c10::DeviceType::CPU) {
      cpu.push_back(std::move(s));
    }
  }
  const bool on_device = !device.empty();
  std::vector<Span>& spans = on_device ? device : cpu;
  if (!on_device) subtract_children(spans);

  struct Row {
    int64_t calls = 0;
    uint64_t ns = 0;
  };
  std::unordered_map<std::string, Row> by_name;
  std::map<std::string, uint64_t> by_category;
  uint64_t total_ns = 0;
  for (const auto& s : spans) {
    Row& r = by_name[s.name];
    r.calls += 1;
    r.ns += s.self;
    total_ns += s.self;
  }
  for (const auto& [name, row] : by_name) by_category[kernel_category(name)] += row.ns;

  const auto ms = [](uint64_t ns) { return static_cast<double>(ns) * 1e-6; };
  const auto pct = [&](uint64_t ns) {
    return total_ns == 0 ? 0.0 : 100.0 * static_cast<double>(ns) / static_cast<double>(total_ns);
  };
  std::ostringstream out;
  out << std::fixed << std::setprecision(3);
  out << (on_device ? "device time (CUDA kernels, memcpy, memset)" : "CPU time (ops, self)") << ": "
      << ms(total_ns) << " ms over " << steps
      << " steps = " << ms(total_ns) / static_cast<double>(steps) << " ms/step, " << spans.size()
      << (on_device ? " kernels" : " ops") << "\n";
  if (on_device) {
    // Idle time between kernels is the host's: a step launched late, a sync waited for.
    std::vector<std::pair<uint64_t, uint64_t>> intervals;
    for (const auto& s : spans) intervals.emplace_back(s.start, s.end);
    out << std::setprecision(1) << "device busy " << 100.0 * busy_fraction(intervals)
        << "% of the time from the first kernel's start to the last one's end (idle: waiting for "
           "the host)\n"
        << std::setprecision(3);
  }

  std::vector<std::pair<std::string, uint64_t>> cats(by_category.begin(), by_category.end());
  std::stable_sort(cats.begin(), cats.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  out << std::left << std::setw(16) << "category" << std::right << std::setw(12) << "total ms"
      << std::setw(8) << "%"
      << "\n";
  for (const auto& [cat, ns] : cats) {
    out << std::left << std::setw(16) << cat << std::right << std::setw(12) << ms(ns)
        << std::setw(8) << std::setprecision(1) << pct(ns) << std::setprecision(3) << "\n";
  }

  std::vector<std::pair<std::string, Row>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.ns != b.second.ns ? a.second.ns > b.second.ns : a.first < b.first;
  });
  if (rows.size() > static_cast<size_t>(top)) rows.resize(static_cast<size_t>(top));
  out << std::left << std::setw(61) << "name" << std::right << std::setw(8) << "calls"
      << std::setw(12) << "total ms" << std::setw(8) << "%" << std::setw(12) << "mean us"
      << "\n";
  for (const auto& [name, row] : rows) {
    out << std::left << std::setw(61) << shorten(name) << std::right << std::setw(8) << row.calls
        << std::setw(12) << ms(row.ns) << std::setw(8) << std::setprecision(1) << pct(row.ns)
        << std::setw(12) << static_cast<double>(row.ns) * 1e-3 / static_cast<double>(row.calls)
        << std::setprecision(3) << "\n";
  }
  return out.str();
}

}  // namespace dmtrain::observe
