// Comparing training runs by their FID curves: how many iterations an arm needs to reach the
// quality the baseline reaches, as `dmtrain compare` prints it (apps/dmtrain/compare_command.cpp).
//
// Inputs: runs, each a run directory (its metrics.jsonl; train.seed from its config.yaml when
// there is one) or a metrics.jsonl file, grouped into one baseline (>= 1 runs) and named arms.
// The i-th run of an arm is paired with the i-th baseline run ("seed for seed": the caller lists
// the seeds in the same order); an arm may have fewer runs than the baseline, not more.
// Outputs: a Comparison (numbers), rendered as an aligned text table, markdown or CSV.
//
// Contract (the definitions; docs/evaluation.md says the same):
//  - A run's curve: its finite, positive FID evaluations by ascending step. Of several records
//    for one step (a resumed run) the last wins; a null FID (a failed evaluation) is skipped. The
//    records are read by the one metrics.jsonl parser, observe::read_records / sweep::fid_curve.
//  - Iterations to a target FID X: the first evaluation with FID <= X; when an earlier evaluation
//    exists (s0, f0 > X) and this one is (s1, f1 <= X), the step where ln FID, linear in the step
//    between them, reaches ln X: s0 + (s1 - s0) (ln f0 - ln X) / (ln f0 - ln f1). If the first
//    evaluation is already <= X: its step. Never reached: censored, "> last step" (Iters with a
//    NaN value and the curve's last step).
//  - A group's mean curve: at each step where every run of the group has an evaluation, the
//    arithmetic mean of their FIDs.
//  - Default target: the baseline mean curve's final value. Ladder: the given targets, else the
//    baseline mean curve's values at its evaluation steps from the second on (its last rung is
//    the default target; with one evaluation, that one).
//  - Ratios are iterations of the reference / iterations of the other (> 1: the other is
//    faster): per arm the baseline mean curve's / the arm mean curve's, and seed for seed
//    baseline run i's / arm run i's. Censored: the other never reaches X -> upper bound "<r"
//    with its last step; the reference never reaches X but the other does -> lower bound ">r"
//    with the reference's last step; neither -> unknown ("n/a").
//  - Noise floor (per target): baseline mean iterations / each baseline run's iterations; the
//    floor is the largest |ln ratio| over the baseline runs, shown as the band
//    +-(exp(floor) - 1) * 100%. An arm whose mean ratio r has |ln r| <= floor is within noise.
//    A censored baseline run bounds its |ln ratio| from below (or not at all), so the floor is
//    then a lower bound; with one baseline run it is unknown.
//  - Geometric-mean FID over the last 60%: exp of the mean of ln FID over [0.4 L, L], L the run's
//    last evaluation step, ln FID linear between evaluations (interpolated at 0.4 L), i.e.
//    exp((1 / (0.6 L)) * integral_{0.4 L}^{L} ln FID(s) ds). If 0.4 L lies before the first
//    evaluation, the mean is over [first evaluation, L] (flagged; a note says so); a single
//    evaluation gives its FID. Per arm: the arithmetic mean over its runs.
//  - Errors (dmtrain::Error, naming the flag or file and the cause): a missing run or
//    metrics.jsonl, a run without finite FID evaluations, a group whose runs share no evaluation
//    step, an --arm without '=', with an empty name or run, a duplicate arm name (or "baseline"),
//    an arm with more runs than the baseline, a target that is not a positive number.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dmtrain/sweep/sweep.hpp"

namespace dmtrain::sweep {

using sweep::FidPoint;

// One run as read from disk.
struct Run {
  std::string label;            // the RUN argument as given
  std::string metrics_path;     // the metrics.jsonl read
  std::optional<int64_t> seed;  // train.seed of <run dir>/config.yaml, when the run is a dir
  std::vector<FidPoint> curve;  // finite, positive FIDs by ascending step
};

// Reads RUN (a run directory or a metrics.jsonl file). `flag` names where it came from in error
// messages ("--baseline", "--arm minsnr"). Throws for a missing file or no finite FID record.
Run load_run(const std::string& run, const std::string& flag);
// The curve of a run's FID evaluations (train::fid_curve, one per step, last wins): finite and
// positive ones only (ln FID must exist).
std::vector<FidPoint> finite_curve(const std::vector<FidPoint>& evaluations);

// Iterations to reach a target: `value` NaN when the curve never reaches it ("> last_step").
struct Iters {
  double value = NAN;
  int64_t last_step = 0;
  bool reached() const { return std::isfinite(value); }
};
// Iterations to FID <= target with log-FID interpolation (see the contract). Empty curve: NaN.
Iters iters_to_target(const std::vector<FidPoint>& curve, double target);

// reference iterations / other iterations, or a bound of it when censored (see the contract).
struct Ratio {
  enum class Kind { kValue, kUpperBound, kLowerBound, kUnknown };
  Kind kind = Kind::kUnknown;
  double value = NAN;  // the ratio, or the bound; NaN when unknown
};
Ratio iteration_ratio(const Iters& reference, const Iters& other);

// The mean curve over the steps every curve has; empty when they share none.
std::vector<FidPoint> mean_curve(const std::vector<std::vector<FidPoint>>& curves);

// Geometric-mean FID over the last `fraction` of the run (0.6: the contract's last 60%).
// *clipped (when given) tells whether the window started before the first evaluation and was
// cut to it. Empty curve: NaN.
double geomean_fid_tail(const std::vector<FidPoint>& curve, double fraction = 0.6,
                        bool* clipped = nullptr);

// The noise floor at one target.
struct NoiseFloor {
  double log_band = NAN;         // largest |ln ratio| known; NaN when unknown
  bool lower_bound = false;      // a baseline run is censored: the floor is at least log_band
  std::vector<size_t> censored;  // indices of the baseline runs whose ratio is a bound or n/a
  double percent() const { return (std::exp(log_band) - 1) * 100; }
};
// From the baseline runs' ratios (mean / run i). One run: unknown (NaN).
NoiseFloor noise_floor(const std::vector<Ratio>& baseline_ratios);

// "NAME=RUN[,RUN...]" of --arm.
struct ArmSpec {
  std::string name;
  std::vector<std::string> runs;
};
ArmSpec parse_arm(const std::string& text);
// "60,40,31.5" of --targets: positive numbers, in the order given.
std::vector<double> parse_targets(const std::string& text);

// One group (the baseline or an arm) at one target.
struct TargetResult {
  double target = 0;
  bool is_default = false;  // the default target (the baseline mean curve's final value)
  Iters mean;               // of the group's mean curve
  Ratio mean_ratio;         // baseline mean / this mean (the baseline's own: 1)
  std::vector<Iters> runs;  // per run
  // Arms: baseline run i / arm run i. The baseline: baseline mean / run i (the noise ratios).
  std::vector<Ratio> run_ratios;
  NoiseFloor floor;  // the baseline's noise floor at this target (the same in every group)
};

struct Group {
  std::string name;  // "baseline" or the arm's name
  std::vector<Run> runs;
  std::vector<FidPoint> mean_curve;
  double final_fid_mean = NAN;  // mean of the runs' last FIDs
  std::vector<double> geomean;  // per run, geomean_fid_tail(curve, 0.6)
  std::vector<bool> geomean_clipped;
  double geomean_mean = NAN;     // mean over the runs
  std::vector<TargetResult> at;  // one per Comparison::targets
};

struct Comparison {
  double default_target = NAN;
  // The ladder (--targets, or the baseline mean curve from its second evaluation), then the
  // default target when the ladder lacks it.
  std::vector<double> targets;
  size_t default_index = 0;  // where the default target is in `targets`
  Group baseline;
  std::vector<Group> arms;
  std::vector<std::string> notes;  // clipped windows, pairs whose seeds differ
  const TargetResult& at_default(const Group& g) const { return g.at[default_index]; }
};

// The numbers. `targets` empty: the ladder from the baseline mean curve. Throws dmtrain::Error
// for an empty baseline, duplicate arm names, an arm with more runs than the baseline, groups
// whose runs share no evaluation step, or a non-positive target.
Comparison compare(const std::vector<Run>& baseline,
                   const std::vector<std::pair<std::string, std::vector<Run>>>& arms,
                   const std::vector<double>& targets = {});

// Renderings. Iterations are rounded to whole steps ("12,320", "> 20,000"), ratios to 2 decimals
// ("1.62x", "<0.98x", ">1.05x", "n/a"), the floor to 0.1% ("+-5.0%").
std::string format_ratio(const Ratio& r);
std::string format_iters(const Iters& it);
// Text: the runs, the per-group table at the default target, the noise floor line, the ratio of
// every arm at every target, notes.
std::string comparison_table(const Comparison& c);
// The same tables in markdown.
std::string comparison_markdown(const Comparison& c);
// CSV, one row per (group, target), the baseline's first (its noise-floor rows), columns:
//   arm, target, default_target (1 on the default target's rows), iters_mean, ratio_mean,
//   noise_floor_pct, then iters_run<i>, ratio_run<i> for i = 1..(baseline runs).
// Iterations are steps with 1 decimal, ">N" when censored (N the last step); ratios 4 decimals,
// "<r" / ">r" for bounds, "n/a" when unknown; empty where an arm has no run i.
// noise_floor_pct: the band in percent, ">=p" when a lower bound, empty when unknown.
std::string comparison_csv(const Comparison& c);

}  // namespace dmtrain::sweep
