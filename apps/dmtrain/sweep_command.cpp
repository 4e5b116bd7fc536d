// dmtrain sweep: expand a grid of overrides into named runs (dmtrain/train/sweep.hpp), then run
// them one after another, print one command per run (for job arrays), or run one of them
// (--index), and write <out>/sweep_summary.csv with an aligned table of the final metrics.
//
// Each run is a child process executing exactly the command --print shows: the trainer's log
// file sink, signal handling and memory then belong to that run alone, and Ctrl-C (the child
// checkpoints and exits 130) stops the sweep, which a re-launch continues.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/train/sweep.hpp"
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
} wargs;

std::string self_exe() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("dmtrain") : p.string();
}

int run_child(const std::string& command) {
  std::cout.flush();
  const int status = std::system(command.c_str());
  if (status == -1) throw Error("cannot start a child process for: " + command);
  if (WIFSIGNALED(status)) return 130;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int run_sweep_command() {
  train::SweepSpec spec;
  if (!wargs.sweep_file.empty()) spec = train::load_sweep_file(wargs.sweep_file);
  if (!wargs.config.empty()) spec.base_config = wargs.config;  // --config overrides base:
  if (spec.base_config.empty()) throw Error("dmtrain sweep needs --config FILE or --sweep FILE");
  spec.sets.insert(spec.sets.end(), wargs.sets.begin(), wargs.sets.end());
  for (const auto& g : wargs.grid) spec.axes.push_back(train::parse_grid(g));
  if (!wargs.out.empty()) spec.out_dir = wargs.out;

  const auto runs = train::expand(spec);  // validates every run's config before anything runs
  const auto selected = train::select_runs(runs, wargs.index);
  const std::string exe = self_exe();
  if (wargs.print) {
    for (const auto& r : selected) std::cout << train::run_command_line(spec, r, exe) << "\n";
    return 0;
  }
  int code = 0;
  if (!wargs.summary_only) {
    log::info(c10::str("sweep: ", runs.size(), " runs, running ", selected.size()));
    code = train::run_sweep(selected, [&](const train::SweepRun& r) {
      return run_child(train::run_command_line(spec, r, exe));
    });
  }
  const auto rows = train::summarize(runs);
  const std::string csv = train::write_summary(train::sweep_out_dir(spec), spec.axes, rows);
  std::cout << train::summary_table(spec.axes, rows) << "summary: " << csv << "\n";
  return code;
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "sweep",
      "Hyper-parameter sweep: expand --grid key=v1,v2 axes (first slowest) into runs named after "
      "their values, each in <out>/<name>; run them one after another (resuming), print their "
      "commands, or run one; then write <out>/sweep_summary.csv");
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
  cmd->callback([] { set_exit_code(run_sweep_command()); });
}

}  // namespace dmtrain::app
