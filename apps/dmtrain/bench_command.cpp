// dmtrain bench: times the real training step (train/bench.hpp: the trainer's own step: data,
// forward, loss, backward, optimizer, EMA) after a warm-up, and prints img/s, ms/step, peak memory,
// achieved TFLOP/s and the device, and on a GPU the achieved fraction of its bf16 peak (measured in
// the same process by a large bf16 matrix product, and the vendor's dense figure where known); with
// --profile, a table of where the device time went (kernel categories and the top kernels).
#include <unistd.h>

#include <ATen/ATen.h>

#include <chrono>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/models/flops.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/train/bench.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/device_peak.hpp"

namespace dmtrain::app {
namespace {

struct BenchArgs {
  std::string config;
  std::vector<std::string> sets;
  int64_t steps = 50, warmup = 10, batch = 0;
  bool real_data = false;
  bool profile = false;
  std::string trace;
} args;

// The bf16 matrix-product rate this device reaches: 8192^3 products (1.1 TFLOP each), the
// practical ceiling for the UNet's convolutions and GEMMs. Timed after 3 untimed products; the
// host waits through .item() (no CUDA header needed here).
double measured_bf16_tflops(const at::Device& device) {
  const auto opts = at::TensorOptions().device(device).dtype(at::kBFloat16);
  const int64_t n = 8192, reps = 20;
  const at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  at::Tensor c;
  for (int i = 0; i < 3; ++i) c = at::matmul(a, b);
  (void)c.sum().item<float>();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < reps; ++i) c = at::matmul(a, b);
  (void)c.sum().item<float>();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * static_cast<double>(n * n * n) * static_cast<double>(reps) / s / 1e12;
}

void run_bench() {
  std::vector<std::string> sets = args.sets;
  if (!args.real_data) sets.push_back("data.format=synthetic");
  if (args.batch > 0) sets.push_back("train.batch_size=" + std::to_string(args.batch));
  sets.push_back("train.iterations=" + std::to_string(args.warmup + args.steps));
  sets.push_back("log.every=" + std::to_string(args.warmup + args.steps));
  sets.push_back("log.level=warn");
  sets.push_back("train.run_dir=/tmp/dmtrain_bench_" + std::to_string(::getpid()));
  const config::RunConfig cfg = config::load_config(args.config, sets);
  train::BenchOptions opts;
  opts.warmup = args.warmup;
  opts.profile = args.profile || !args.trace.empty();
  opts.profile_trace = args.trace;
  const auto r = train::bench(cfg, opts);
  if (r.rank != 0) return;  // rank 0 reports for the job
  const double step_s = r.timed_seconds / static_cast<double>(r.timed_iterations);
  const double ips = static_cast<double>(cfg.train.batch_size) / step_s;
  const double flops = static_cast<double>(models::forward_flops(recipe::unet_options(cfg)));
  std::cout << std::fixed << std::setprecision(1)
            << "device:     " << train::device_name(cfg.train.device) << "\n"
            << "model:      " << args.config << " (" << flops / 1e9 << " GFLOP forward/image)\n"
            << "batch:      " << cfg.train.batch_size << ", precision " << cfg.train.precision
            << ", data " << cfg.data.format << ", " << r.timed_iterations << " timed steps after "
            << args.warmup << " warm-up" << (r.graph_steps > 0 ? ", CUDA graph" : "") << "\n"
            << "throughput: " << ips << " img/s, " << std::setprecision(2) << step_s * 1000
            << " ms/step\n";
  if (r.world_size > 1) {
    std::cout << "ranks:      " << r.world_size << " processes, " << std::setprecision(1)
              << ips / r.world_size << " img/s per rank (batch "
              << cfg.train.batch_size / r.world_size << " per rank)\n";
  }
  std::cout << std::setprecision(2) << "memory:     " << r.peak_gpu_gib << " GiB peak allocated\n"
            << "compute:    " << std::setprecision(1) << 3.0 * flops * ips / 1e12
            << " TFLOP/s achieved (3 x forward FLOPs x img/s)\n";
  const std::string name = train::device_name(cfg.train.device);
  if (name.rfind("CPU", 0) != 0) {
    const double achieved = 3.0 * flops * ips / 1e12;
    const double measured =
        measured_bf16_tflops(recipe::pick_device(cfg.train.device, "train.device"));
    const double spec = util::bf16_dense_peak_tflops(name);
    std::cout << std::setprecision(1) << "bf16 peak:  " << 100.0 * achieved / measured << "% of "
              << measured << " TFLOP/s measured here (8192^3 bf16 matrix products)";
    if (spec > 0)
      std::cout << ", " << 100.0 * achieved / spec << "% of the " << spec
                << " TFLOP/s data-sheet dense peak";
    std::cout << "\n";
  }
  if (!r.profile_summary.empty()) {
    std::cout << "profile (the timings above include the profiler's overhead):\n"
              << r.profile_summary;
    if (!args.trace.empty()) std::cout << "trace:      " << args.trace << "\n";
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* b = app.add_subcommand("bench", "Time the training step of a config");
  b->add_option("--config", args.config, "Run configuration")->required();
  b->add_option("--set", args.sets, "Override a key (repeatable)");
  b->add_option("--steps", args.steps, "Timed steps")->check(CLI::PositiveNumber);
  b->add_option("--warmup", args.warmup, "Untimed steps first")->check(CLI::NonNegativeNumber);
  b->add_option("--batch", args.batch, "Global batch (default: the config's)");
  b->add_flag("--real-data", args.real_data, "Read the config's data instead of random pixels");
  b->add_flag("--profile", args.profile,
              "Record the timed steps' kernels and print where the time went");
  b->add_option("--trace", args.trace, "With --profile: also write a Chrome trace (JSON) here");
  b->callback(run_bench);
}

}  // namespace dmtrain::app
