// dmtrain compare: compare training runs by their FID curves (dmtrain/sweep/compare.hpp).
//
//   dmtrain compare --baseline RUN [RUN...] --arm NAME=RUN[,RUN...] [--arm ...]
//                   [--targets 60,40,31.5] [--csv FILE] [--markdown FILE]
//
// Reads each RUN's metrics.jsonl (RUN: a run directory or the file itself) and prints on stdout
// the iterations every arm's mean curve needs to reach the baseline's final mean FID, the ratio
// to the baseline's, the same-seed ratios, the geometric-mean FID of the last 60%, the ratio at
// every target of the ladder and the baseline's noise floor. --csv / --markdown also write them
// to files. Bad input (a missing file, a run without FID, a malformed --arm or --targets) throws
// dmtrain::Error: main prints it and exits 2.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <utility>

#include "commands.hpp"
#include "dmtrain/sweep/compare.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::app {
namespace {

struct CompareArgs {
  std::vector<std::string> baseline;
  std::vector<std::string> arms;
  std::string targets;
  std::string csv, markdown;
} cargs;

void write_text(const std::string& path, const std::string& flag, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  if (out) out << text;
  out.close();
  if (!out) throw Error(flag + ": cannot write '" + path + "'");
}

void run_compare() {
  // Everything is parsed and read before anything is printed or written, so an error leaves no
  // half-written output.
  std::vector<std::pair<std::string, std::vector<std::string>>> arm_specs;
  for (const auto& a : cargs.arms) {
    const sweep::ArmSpec spec = sweep::parse_arm(a);
    arm_specs.emplace_back(spec.name, spec.runs);
  }
  const std::vector<double> targets =
      cargs.targets.empty() ? std::vector<double>{} : sweep::parse_targets(cargs.targets);
  std::vector<sweep::Run> baseline;
  for (const auto& r : cargs.baseline) baseline.push_back(sweep::load_run(r, "--baseline"));
  std::vector<std::pair<std::string, std::vector<sweep::Run>>> arms;
  for (const auto& [name, runs] : arm_specs) {
    std::vector<sweep::Run> loaded;
    for (const auto& r : runs) loaded.push_back(sweep::load_run(r, "--arm " + name));
    arms.emplace_back(name, std::move(loaded));
  }
  const sweep::Comparison c = sweep::compare(baseline, arms, targets);
  std::cout << sweep::comparison_table(c) << std::flush;
  if (!cargs.csv.empty()) write_text(cargs.csv, "--csv", sweep::comparison_csv(c));
  if (!cargs.markdown.empty()) {
    write_text(cargs.markdown, "--markdown", sweep::comparison_markdown(c));
  }
}

}  // namespace

void add_compare_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "compare",
      "Compare training runs by their FID curves (metrics.jsonl): iterations each arm needs to "
      "reach the baseline's final mean FID (log-FID interpolation between evaluations), the "
      "ratio to the baseline's, same-seed ratios, the ratio at a ladder of targets, the "
      "baseline's noise floor, and the geometric-mean FID of the last 60% of each run. The i-th "
      "run of an arm is paired with the i-th baseline run (seed for seed): list the seeds in the "
      "same order everywhere. docs/evaluation.md defines every number.");
  cmd->add_option("--baseline", cargs.baseline,
                  "Baseline runs: run directories (their metrics.jsonl; train.seed of their "
                  "config.yaml is shown) or metrics.jsonl files, one per seed")
      ->required()
      ->expected(1, -1)
      ->take_all();
  cmd->add_option("--arm", cargs.arms,
                  "NAME=RUN[,RUN...]: an arm and its runs, in the baseline's seed order (at most "
                  "as many runs as the baseline); repeatable")
      ->required()
      ->take_all();
  cmd->add_option("--targets", cargs.targets,
                  "Comma-separated target FIDs of the ladder (default: the baseline mean "
                  "curve's values from its second evaluation on)");
  cmd->add_option("--csv", cargs.csv,
                  "Also write one row per (arm, target): arm,target,default_target,iters_mean,"
                  "ratio_mean,noise_floor_pct,iters_run<i>,ratio_run<i>...");
  cmd->add_option("--markdown", cargs.markdown, "Also write the tables as markdown");
  cmd->callback([] {
    run_compare();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
