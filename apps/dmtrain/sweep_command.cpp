// dmtrain sweep: expand a grid of overrides into named runs (dmtrain/sweep/sweep.hpp), then run
// them (one after another, or --jobs N at once spread over the GPUs, --mps under CUDA MPS:
// dmtrain/sweep/sweep_executor.hpp), print one command per run (for job arrays), or run one of
// them (--index), and write <out>/sweep_summary.csv with an aligned table of the final metrics.
//
// Each run is a child process executing exactly the command --print shows: the trainer's log
// file sink, signal handling and memory then belong to that run alone, and Ctrl-C (forwarded to
// every running child, which checkpoints and exits 130) stops the sweep, which a re-launch
// continues.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/sweep/sweep.hpp"
#include "dmtrain/sweep/sweep_executor.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::app {
namespace {

struct SweepArgs {
  std::string config;
  std::string sweep_file;
  std::vector<std::string> grid;
  std::vector<std::string> sets;
  bool print = false;
  bool summary_only = false;
  int64_t index = -1;
  std::string out;
  int64_t jobs = 1;
  std::string gpus;
  CLI::Option* gpus_option = nullptr;
  bool mps = false;
  double fid_target = NAN;
} wargs;

std::string self_exe() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("dmtrain") : p.string();
}

int run_sweep_command() {
  sweep::SweepSpec spec;
  if (!wargs.sweep_file.empty()) spec = sweep::load_sweep_file(wargs.sweep_file);
  if (!wargs.config.empty()) spec.base_config = wargs.config;  // --config overrides base:
  if (spec.base_config.empty()) throw Error("dmtrain sweep needs --config FILE or --sweep FILE");
  spec.sets.insert(spec.sets.end(), wargs.sets.begin(), wargs.sets.end());
  for (const auto& g : wargs.grid) spec.axes.push_back(sweep::parse_grid(g));
  if (!wargs.out.empty()) spec.out_dir = wargs.out;

  if (wargs.jobs < 1) throw Error("--jobs " + std::to_string(wargs.jobs) + ": expected >= 1");
  const auto runs = sweep::expand(spec);  // validates every run's config before anything runs
  const auto selected = sweep::select_runs(runs, wargs.index);
  const std::string exe = self_exe();
  if (wargs.print) {
    for (const auto& r : selected) std::cout << sweep::run_command_line(spec, r, exe) << "\n";
    return 0;
  }
  int code = 0;
  if (!wargs.summary_only) {
    log::info(c10::str("sweep: ", runs.size(), " runs, running ", selected.size()));
    sweep::ParallelSweepOptions opts;
    opts.jobs = wargs.jobs;
    // One at a time keeps today's behaviour: the child owns the terminal and every GPU.
    if (wargs.gpus_option->count() > 0) {
      opts.gpus = sweep::parse_gpu_list(wargs.gpus);
    } else if (wargs.jobs > 1) {
      opts.gpus = sweep::visible_gpus();
    }
    opts.child_logs = wargs.jobs > 1;                       // parallel outputs would interleave
    opts.tty = opts.child_logs && ::isatty(STDERR_FILENO);  // jobs = 1: the child's log is there
    if (wargs.mps) {
      opts.mps_dir = (std::filesystem::path(sweep::sweep_out_dir(spec)) / "mps").string();
    }
    if (wargs.jobs > 1) {
      log::info(c10::str("sweep: up to ", wargs.jobs, " runs at once on ",
                         opts.gpus.empty() ? std::string("the CPU (no GPUs)")
                                           : c10::str(opts.gpus.size(), " GPU(s)")));
    }
    std::cout.flush();
    code = sweep::run_sweep_parallel(
        selected, [&](const sweep::SweepRun& r) { return sweep::run_argv(spec, r, exe); }, opts);
  }
  const auto rows = sweep::summarize(runs);
  const std::string csv =
      sweep::write_summary(sweep::sweep_out_dir(spec), spec.axes, rows, wargs.fid_target);
  std::cout << sweep::summary_table(spec.axes, rows, wargs.fid_target) << "summary: " << csv
            << "\n";
  return code;
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "sweep",
      "Hyper-parameter sweep: expand --grid key=v1,v2 axes (first slowest) into runs named after "
      "their values, each in <out>/<name>; run them (resuming; --jobs N at once over the GPUs), "
      "print their commands, or run one; then write <out>/sweep_summary.csv");
  cmd->add_option("--config,-c", wargs.config, "Base YAML run configuration");
  cmd->add_option("--sweep", wargs.sweep_file,
                  "Sweep YAML: base: FILE, grid: {key: [v1, v2]}, optional name:, set:, out:");
  cmd->add_option("--grid,-g", wargs.grid,
                  "Axis: full.key=v1,v2,... (repeatable; a value may be a flow list [1,2])")
      ->type_name("KEY=V1,V2");
  cmd->add_option("--set,-s", wargs.sets, "Override for every run: section.key=value (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_flag("--print", wargs.print,
                "Print one shell command per run (for job arrays) instead of running");
  cmd->add_option("--index", wargs.index, "Only run (or print) run I (0-based)");
  cmd->add_option("--out,-o", wargs.out,
                  "Folder of the run dirs and the summary (default: the config's train.run_dir)");
  cmd->add_flag("--summary", wargs.summary_only, "Only write and print the summary");
  cmd->add_option("--jobs,-j", wargs.jobs,
                  "Runs at once (default 1), each on the GPU with the fewest runs; outputs go to "
                  "<run_dir>/sweep_child.log when N > 1");
  wargs.gpus_option = cmd->add_option(
      "--gpus", wargs.gpus,
      "GPUs to spread the runs over, e.g. 0,1,3 or none (default: CUDA_VISIBLE_DEVICES, else "
      "all; with --jobs 1 the run sees every GPU)");
  cmd->add_flag(
      "--mps", wargs.mps,
      "With --jobs N > 1: runs share GPUs under CUDA MPS (a user-space daemon, <out>/mps; "
      "changes no GPU settings: no clocks, compute mode or MIG; 4 runs on one H200: 1.53x "
      "img/s in all)");
  cmd->add_option("--fid-target", wargs.fid_target,
                  "Add iters_to_fid(_interp) columns: the first step with FID <= X");
  cmd->callback([] { set_exit_code(run_sweep_command()); });
}

}  // namespace dmtrain::app
