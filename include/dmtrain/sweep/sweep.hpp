// Hyper-parameter sweeps: a grid of config overrides expanded into named runs, each with its own
// run directory, plus a summary table of the final metrics of every run.
//
// A sweep is a base config (+ common --set overrides) and axes `key=v1,v2,...` (or a sweep YAML:
// `base: cfg.yaml`, `grid: {key: [v1, v2]}`, optional `name: prefix`, `set: [k=v]`, `out: DIR`).
// Contract:
//  - Axis keys are full schema keys ("timestep.clts.mu"); an unknown key throws dmtrain::Error
//    naming it and the key it most likely means. train.run_dir cannot be swept.
//  - expand() is deterministic: the cartesian product with the FIRST axis varying slowest. Each
//    run's name is `[prefix_]<leaf><value>_<leaf><value>...` (leaf: the last dotted part of the
//    key, lengthened until the axes' leaves differ), sanitized to [A-Za-z0-9._+-]; its run dir is
//    `<out>/<name>` where out is --out or the base config's train.run_dir. Every run's full config
//    is loaded and validated up front, so a bad value fails before anything trains; names must
//    come out unique.
//  - A run is what `dmtrain --config BASE --set ... --run-dir DIR --resume auto` does, so a
//    re-launched sweep continues each run where it stopped and skips finished ones.
//  - The summary reads only <run_dir>/metrics.jsonl: it never modifies a run. Lines that are not
//    one flat JSON object (a torn last line of a killed run) are skipped. Running many runs at
//    once: dmtrain/sweep/sweep_executor.hpp.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dmtrain/observe/metrics_log.hpp"

namespace dmtrain::sweep {

struct SweepAxis {
  std::string key;                  // full dotted key, e.g. "timestep.clts.mu"
  std::vector<std::string> values;  // YAML values as written ("0.1", "[1,2,2]")
};

struct SweepSpec {
  std::string base_config;        // config file every run starts from
  std::vector<std::string> sets;  // overrides common to every run (applied before the axes)
  std::vector<SweepAxis> axes;    // first axis varies slowest
  std::string name_prefix;        // optional prefix of every run name
  std::string out_dir;            // "" = the base config's train.run_dir
};

struct SweepRun {
  int64_t index = 0;
  std::string name;
  std::vector<std::string> values;     // one per axis
  std::vector<std::string> overrides;  // spec.sets, then one `key=value` per axis
  std::string run_dir;
  int64_t iterations = 0;  // the run's train.iterations (to tell done from incomplete)
};

// "key=v1,v2,..." -> axis. Values split on commas outside [] / {} brackets and quotes, so a
// flow list "[1,2]" stays one value. Throws on a missing '=', an empty value or an unknown key.
SweepAxis parse_grid(const std::string& spec);
// Throws dmtrain::Error if `key` is not a schema key, suggesting the key it most likely means
// (the unique key ending in ".<key>", else the closest by edit distance). `what` prefixes it.
void check_sweep_key(const std::string& key, const std::string& what);
// Reads a sweep YAML file; `base` and `out` are resolved relative to the file.
SweepSpec load_sweep_file(const std::string& path);

// The runs of the grid, validated (see the contract). Throws if there are no axes, an axis is
// repeated, a run's config is invalid, or two runs get the same name.
std::vector<SweepRun> expand(const SweepSpec& spec);
// Where the summary goes: spec.out_dir, else the base config's train.run_dir.
std::string sweep_out_dir(const SweepSpec& spec);

// The runs selected by --index (-1 = all); out of range throws naming the number of runs.
std::vector<SweepRun> select_runs(const std::vector<SweepRun>& runs, int64_t index);

// POSIX shell quoting: the word unchanged when it is safe, else in single quotes.
std::string shell_quote(const std::string& word);
// The argv of the command that does `run` (exe first), and the same as one shell-quoted line.
std::vector<std::string> run_argv(const SweepSpec& spec, const SweepRun& run,
                                  const std::string& exe);
std::string run_command_line(const SweepSpec& spec, const SweepRun& run, const std::string& exe);

// The records of <run_dir>/metrics.jsonl (observe::read_records, the one reader).
std::vector<observe::Record> read_metrics(const std::string& run_dir);
// The "step" of the last parsable record of <run_dir>/metrics.jsonl, 0 when none. Reads only
// the file's tail: it is polled for the progress of running runs.
int64_t last_logged_step(const std::string& run_dir);

// One FID evaluation of a run ({"step": 1000, "fid": 468.1, ...}); fid is NaN when logged null.
struct FidPoint {
  int64_t step = 0;
  double fid = 0;
};
// The FID evaluations among `records` (those with "fid" and a finite "step"), by ascending step;
// of several records for one step (a resumed run) the last wins; a null FID is kept as NaN.
std::vector<FidPoint> fid_curve(const std::vector<observe::Record>& records);
// The first evaluation step whose FID <= target; -1 when never.
int64_t iters_to_fid(const std::vector<FidPoint>& curve, double target);
// The step at which the FID curve, linear between consecutive finite evaluations, first reaches
// target (the first evaluation's step when that one is already <= target); NaN when never.
double iters_to_fid_interp(const std::vector<FidPoint>& curve, double target);

// Final metrics of one run, from <run_dir>/metrics.jsonl.
struct RunSummary {
  std::string name;
  std::vector<std::string> values;
  // From metrics.jsonl: "done" (logged the final step), "incomplete", "missing". Whether a run
  // is finished (skipped by a re-launch) is its run dir's to say: sweep/run_status.hpp.
  std::string status;
  int64_t final_step = 0;     // 0 when missing
  double final_loss = 0;      // NaN when missing or when the last record's loss is null
  double tail_loss = 0;       // mean finite loss over the last ceil(10%) of the logged records
  double img_per_s = 0;       // mean img_per_s over the same tail records
  std::vector<FidPoint> fid;  // by step; of records for one step (a resumed run) the last wins
  double final_fid = 0;       // the FID of the last evaluation; NaN when none or null
  double best_fid = 0;        // the lowest finite FID; NaN when none
};
RunSummary summarize_run(const SweepRun& run);
std::vector<RunSummary> summarize(const std::vector<SweepRun>& runs);
// CSV: run,<one column per axis key>,final_step,final_loss,tail_loss,img_per_s,[FID],status.
// [FID], when any run has an FID evaluation or fid_target is finite: fid_at_<step> for every
// evaluation step of any run (ascending; empty where a run has none), final_fid, best_fid; with
// a finite fid_target also iters_to_fid and iters_to_fid_interp (rounded; empty when never).
constexpr double kNoFidTarget = std::numeric_limits<double>::quiet_NaN();
std::string summary_csv(const std::vector<SweepAxis>& axes, const std::vector<RunSummary>& rows,
                        double fid_target = kNoFidTarget);
// The same as an aligned text table (axis columns titled by their leaves).
std::string summary_table(const std::vector<SweepAxis>& axes, const std::vector<RunSummary>& rows,
                          double fid_target = kNoFidTarget);
// Writes <out>/sweep_summary.csv (creating out); returns its path.
std::string write_summary(const std::string& out_dir, const std::vector<SweepAxis>& axes,
                          const std::vector<RunSummary>& rows, double fid_target = kNoFidTarget);

// Runs `runs` one after another through `runner` (returns an exit code: 0 ok, 130 interrupted).
// A run whose run dir says it finished (sweep/run_status.hpp) is skipped. A non-zero code is
// recorded and the sweep goes on to the next run, except 130 (or a signal) which stops the sweep.
// Returns 0, 130 when interrupted, else the first non-zero code.
using SweepRunner = std::function<int(const SweepRun&)>;
int run_sweep(const std::vector<SweepRun>& runs, const SweepRunner& runner);
// A runner that trains in this process: load_config(spec.base_config, run.overrides +
// train.run_dir) then train(cfg, {resume = "auto"}). (Log file sinks accumulate across runs of
// one process, which is why the CLI runs each run as a child process instead.)
SweepRunner in_process_runner(const SweepSpec& spec);

}  // namespace dmtrain::sweep
