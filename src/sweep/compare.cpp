// Comparing runs' FID curves (iterations to a target FID, ratios, noise floor, geometric-mean FID
// of the last 60%) and rendering them as text, markdown and CSV. Definitions: the contract in
// dmtrain/sweep/compare.hpp. Reads metrics.jsonl only through observe::read_records.
#include "dmtrain/sweep/compare.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/text.hpp"

namespace dmtrain::sweep {
namespace {

namespace fs = std::filesystem;

using util::trim;

// Splits on every comma (run paths and numbers hold none), keeping empty items so that the
// caller can name them.
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char c : s) {
    if (c == ',') {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(trim(cur));
  return out;
}

// train.seed of a run's resolved config.yaml; nullopt when it cannot be read (the seed is only
// shown, so an odd config is no reason to refuse the comparison).
std::optional<int64_t> read_seed(const fs::path& config) {
  try {
    const YAML::Node doc = YAML::LoadFile(config.string());
    const YAML::Node train = doc["train"];
    if (train && train.IsMap() && train["seed"]) return train["seed"].as<int64_t>();
  } catch (const YAML::Exception&) {
  }
  return std::nullopt;
}

std::string fixed(double v, int decimals) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// 12320.4 -> "12,320".
std::string with_commas(double v) {
  if (!std::isfinite(v)) return fixed(v, 0);
  const long long n = std::llround(v);
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string fid_text(double v) {
  return fixed(v, 3);
}

// The band of a floor: "+-5.0%", "at least +-5.0%", or why it is unknown.
std::string floor_text(const NoiseFloor& f, size_t baseline_runs) {
  if (baseline_runs < 2) return "unknown (one baseline run)";
  if (std::isnan(f.log_band)) return "unknown (no baseline run's ratio is known)";
  return std::string(f.lower_bound ? "at least " : "") + "+-" + fixed(f.percent(), 1) + "%";
}

// Whether an arm's mean ratio lies within the noise floor (only for a known ratio and floor).
bool within_noise(const Ratio& r, const NoiseFloor& f) {
  return r.kind == Ratio::Kind::kValue && std::isfinite(f.log_band) &&
         std::abs(std::log(r.value)) <= f.log_band;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_iters(const Iters& it) {
  return it.reached() ? fixed(it.value, 1) : ">" + std::to_string(it.last_step);
}

std::string csv_ratio(const Ratio& r) {
  switch (r.kind) {
    case Ratio::Kind::kValue:
      return fixed(r.value, 4);
    case Ratio::Kind::kUpperBound:
      return "<" + fixed(r.value, 4);
    case Ratio::Kind::kLowerBound:
      return ">" + fixed(r.value, 4);
    case Ratio::Kind::kUnknown:
      break;
  }
  return "n/a";
}

std::string csv_floor(const NoiseFloor& f) {
  if (std::isnan(f.log_band)) return "";
  return (f.lower_bound ? ">=" : "") + fixed(f.percent(), 4);
}

// Columns padded to their widest cell, two spaces apart.
std::string aligned(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string markdown(const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line = "|";
    for (const auto& cell : rows[r]) line += " " + cell + " |";
    out += line + "\n";
    if (r == 0) {
      std::string rule = "|";
      for (size_t i = 0; i < rows[r].size(); ++i) rule += "---|";
      out += rule + "\n";
    }
  }
  return out;
}

Group make_group(const std::string& name, const std::string& flag, const std::vector<Run>& runs) {
  Group g;
  g.name = name;
  g.runs = runs;
  std::vector<std::vector<FidPoint>> curves;
  double final_sum = 0, geo_sum = 0;
  for (const auto& r : runs) {
    if (r.curve.empty()) throw Error(flag + ": " + r.label + " has no finite FID evaluation");
    curves.push_back(r.curve);
    final_sum += r.curve.back().fid;
    bool clipped = false;
    g.geomean.push_back(geomean_fid_tail(r.curve, 0.6, &clipped));
    g.geomean_clipped.push_back(clipped);
    geo_sum += g.geomean.back();
  }
  g.mean_curve = mean_curve(curves);
  if (g.mean_curve.empty()) {
    throw Error(flag + ": its " + std::to_string(runs.size()) +
                " runs share no evaluation step, so they have no mean curve (the FID must be "
                "evaluated at the same steps, e.g. the same eval.fid_every)");
  }
  const auto n = static_cast<double>(runs.size());
  g.final_fid_mean = final_sum / n;
  g.geomean_mean = geo_sum / n;
  return g;
}

// The runs of every group, numbered, with their seeds.
std::string runs_text(const Comparison& c) {
  std::string out;
  auto group = [&](const Group& g) {
    out += g.name + ": " + std::to_string(g.runs.size()) + (g.runs.size() == 1 ? " run" : " runs") +
           "\n";
    for (size_t i = 0; i < g.runs.size(); ++i) {
      const Run& r = g.runs[i];
      out += "  " + std::to_string(i + 1) + ". " + r.label +
             (r.seed ? " (seed " + std::to_string(*r.seed) + ")" : "") + ", evaluations at " +
             std::to_string(r.curve.size()) + " steps up to " + with_commas(r.curve.back().step) +
             "\n";
    }
  };
  group(c.baseline);
  for (const auto& a : c.arms) group(a);
  return out;
}

// The main table: one row per group at the default target.
std::vector<std::vector<std::string>> default_rows(const Comparison& c) {
  const std::string target = fid_text(c.default_target);
  std::vector<std::vector<std::string>> rows{{"arm", "runs", "final FID", "iters to " + target,
                                              "ratio", "same-seed ratios", "geomean FID last 60%"}};
  auto row = [&](const Group& g, bool arm) {
    const TargetResult& t = c.at_default(g);
    std::string same;
    for (const auto& r : t.run_ratios) same += (same.empty() ? "" : " ") + format_ratio(r);
    std::string ratio = format_ratio(t.mean_ratio);
    if (arm && within_noise(t.mean_ratio, t.floor)) ratio += " ~";
    rows.push_back({g.name, std::to_string(g.runs.size()), fid_text(g.final_fid_mean),
                    format_iters(t.mean), ratio, arm ? same : "-", fid_text(g.geomean_mean)});
  };
  row(c.baseline, false);
  for (const auto& a : c.arms) row(a, true);
  return rows;
}

// The ladder table: one row per target, the ratio (and iterations) of every arm.
std::vector<std::vector<std::string>> ladder_rows(const Comparison& c) {
  std::vector<std::vector<std::string>> rows{{"target FID", "baseline iters", "noise floor"}};
  for (const auto& a : c.arms) rows[0].push_back(a.name);
  for (size_t k = 0; k < c.targets.size(); ++k) {
    const TargetResult& b = c.baseline.at[k];
    std::vector<std::string> row{fid_text(c.targets[k]) + (k == c.default_index ? " *" : ""),
                                 format_iters(b.mean), floor_text(b.floor, c.baseline.runs.size())};
    for (const auto& a : c.arms) {
      const TargetResult& t = a.at[k];
      row.push_back(format_ratio(t.mean_ratio) + (within_noise(t.mean_ratio, t.floor) ? " ~" : "") +
                    " (" + format_iters(t.mean) + ")");
    }
    rows.push_back(row);
  }
  return rows;
}

// "Noise floor at FID X: +-5.0% (baseline mean / run: 1.05x <1.00x; run 2 never ...)".
std::string floor_line(const Comparison& c) {
  const TargetResult& b = c.at_default(c.baseline);
  std::string out = "noise floor at FID " + fid_text(c.default_target) + ": " +
                    floor_text(b.floor, c.baseline.runs.size());
  if (c.baseline.runs.size() >= 2) {
    std::string ratios;
    for (const auto& r : b.run_ratios) ratios += (ratios.empty() ? "" : " ") + format_ratio(r);
    out += "\n  (baseline mean iterations / each baseline run's: " + ratios;
    for (const size_t i : b.floor.censored) {
      out += "; run " + std::to_string(i + 1) + " does not reach it by step " +
             with_commas(static_cast<double>(b.runs[i].last_step));
    }
    out += ")";
  }
  return out;
}

// Printed under the tables (line breaks: a terminal's width; markdown joins the lines).
const char* kLegend =
    "ratio: baseline iterations / arm iterations to the target FID (> 1: the arm needs fewer),\n"
    "  iterations by log-FID interpolation between evaluations; same-seed ratios: baseline run i\n"
    "  / arm run i, in the order the runs were given; \"<\" or \">\" before a ratio: a bound (a\n"
    "  run does not reach the target; its last step is used); \"n/a\": neither reaches it; \"~\":\n"
    "  within the noise floor (max |ln(baseline mean / baseline run i)|) of that target.\n"
    "geomean FID last 60%: exp(mean of ln FID over [0.4 L, L]), L a run's last evaluation step,\n"
    "  averaged over the arm's runs; final FID: the mean of the runs' last evaluations.\n";

}  // namespace

std::vector<FidPoint> finite_curve(const std::vector<FidPoint>& evaluations) {
  std::vector<FidPoint> out;
  for (const auto& p : evaluations) {
    if (std::isfinite(p.fid) && p.fid > 0) out.push_back(p);
  }
  return out;
}

Run load_run(const std::string& run, const std::string& flag) {
  Run r;
  r.label = run;
  std::error_code ec;
  const fs::path p(run);
  if (fs::is_directory(p, ec)) {
    r.metrics_path = (p / "metrics.jsonl").string();
    if (!fs::is_regular_file(r.metrics_path, ec)) {
      throw Error(flag + ": run directory '" + run + "' has no metrics.jsonl (" + r.metrics_path +
                  " does not exist)");
    }
    const fs::path config = p / "config.yaml";
    if (fs::is_regular_file(config, ec)) r.seed = read_seed(config);
  } else if (fs::is_regular_file(p, ec)) {
    r.metrics_path = run;
  } else {
    throw Error(flag + ": '" + run +
                "' does not exist (expected a run directory or a metrics.jsonl file)");
  }
  if (!std::ifstream(r.metrics_path)) {
    throw Error(flag + ": cannot read '" + r.metrics_path + "' (permissions?)");
  }
  const auto evaluations = sweep::fid_curve(observe::read_records(r.metrics_path));
  r.curve = finite_curve(evaluations);
  if (r.curve.empty()) {
    throw Error(flag + ": '" + r.metrics_path + "' has no FID evaluation" +
                (evaluations.empty()
                     ? std::string(" (no record with \"fid\"; train with eval.fid_every > 0)")
                     : " with a finite FID (" + std::to_string(evaluations.size()) +
                           " records, all null: failed evaluations)"));
  }
  return r;
}

Iters iters_to_target(const std::vector<FidPoint>& curve, double target) {
  Iters out;
  for (const auto& p : curve) {
    if (std::isfinite(p.fid) && p.fid > 0) out.last_step = p.step;  // the bound of a censored one
  }
  const FidPoint* prev = nullptr;  // the last evaluation, which was above target
  for (const auto& p : curve) {
    if (!(std::isfinite(p.fid) && p.fid > 0)) continue;
    if (p.fid <= target) {
      if (!prev) {
        out.value = static_cast<double>(p.step);
      } else {
        // ln FID linear in the step between the two evaluations; f0 > X >= f1 > 0, so the
        // fraction lies in (0, 1].
        const double l0 = std::log(prev->fid);
        const double t = (l0 - std::log(target)) / (l0 - std::log(p.fid));
        out.value = static_cast<double>(prev->step) + t * static_cast<double>(p.step - prev->step);
      }
      return out;
    }
    prev = &p;
  }
  return out;
}

Ratio iteration_ratio(const Iters& reference, const Iters& other) {
  Ratio r;
  if (reference.reached() && other.reached()) {
    r.kind = Ratio::Kind::kValue;
    // Both already at their first evaluation at step 0: equally fast.
    r.value = reference.value == 0 && other.value == 0 ? 1.0 : reference.value / other.value;
  } else if (reference.reached()) {
    // other > other.last_step, so the ratio is below reference / other.last_step.
    r.kind = Ratio::Kind::kUpperBound;
    r.value = reference.value / static_cast<double>(other.last_step);
  } else if (other.reached()) {
    // reference > reference.last_step, so the ratio is above reference.last_step / other.
    r.kind = Ratio::Kind::kLowerBound;
    r.value = static_cast<double>(reference.last_step) / other.value;
  }
  return r;
}

std::vector<FidPoint> mean_curve(const std::vector<std::vector<FidPoint>>& curves) {
  std::vector<FidPoint> out;
  if (curves.empty()) return out;
  for (const auto& p : curves[0]) {
    double sum = p.fid;
    bool everywhere = true;
    for (size_t i = 1; i < curves.size() && everywhere; ++i) {
      const auto it = std::find_if(curves[i].begin(), curves[i].end(),
                                   [&](const FidPoint& q) { return q.step == p.step; });
      if (it == curves[i].end()) {
        everywhere = false;
      } else {
        sum += it->fid;
      }
    }
    if (everywhere) out.push_back({p.step, sum / static_cast<double>(curves.size())});
  }
  return out;
}

double geomean_fid_tail(const std::vector<FidPoint>& curve, double fraction, bool* clipped) {
  if (clipped) *clipped = false;
  if (curve.empty()) return NAN;
  const double last = static_cast<double>(curve.back().step);
  const double first = static_cast<double>(curve.front().step);
  double from = (1 - fraction) * last;
  if (from < first) {
    from = first;
    if (clipped) *clipped = true;
  }
  if (curve.size() == 1 || from >= last) return curve.back().fid;
  // The trapezoid rule is exact for ln FID linear on each segment; a segment that straddles
  // `from` is cut there, its ln FID interpolated.
  double integral = 0;
  for (size_t i = 1; i < curve.size(); ++i) {
    const double s0 = static_cast<double>(curve[i - 1].step);
    const double s1 = static_cast<double>(curve[i].step);
    if (s1 <= from) continue;
    const double l0 = std::log(curve[i - 1].fid), l1 = std::log(curve[i].fid);
    const double a = std::max(s0, from);
    const double la = l0 + (l1 - l0) * (a - s0) / (s1 - s0);
    integral += 0.5 * (la + l1) * (s1 - a);
  }
  return std::exp(integral / (last - from));
}

NoiseFloor noise_floor(const std::vector<Ratio>& baseline_ratios) {
  NoiseFloor f;
  if (baseline_ratios.size() < 2) return f;  // one run: its ratio to itself says nothing
  double band = -1;
  for (size_t i = 0; i < baseline_ratios.size(); ++i) {
    const Ratio& r = baseline_ratios[i];
    double known = -1;  // a value |ln r| is known to reach, -1 when none
    switch (r.kind) {
      case Ratio::Kind::kValue:
        known = std::abs(std::log(r.value));
        break;
      case Ratio::Kind::kUpperBound:  // r < value: |ln r| > -ln value when value <= 1
        if (r.value <= 1) known = -std::log(r.value);
        break;
      case Ratio::Kind::kLowerBound:  // r > value: |ln r| > ln value when value >= 1
        if (r.value >= 1) known = std::log(r.value);
        break;
      case Ratio::Kind::kUnknown:
        break;
    }
    if (r.kind != Ratio::Kind::kValue) {
      f.lower_bound = true;
      f.censored.push_back(i);
    }
    band = std::max(band, known);
  }
  f.log_band = band >= 0 ? band : NAN;
  return f;
}

ArmSpec parse_arm(const std::string& text) {
  const std::string what = "--arm '" + text + "'";
  const auto eq = text.find('=');
  if (eq == std::string::npos) throw Error(what + ": expected NAME=RUN[,RUN...] (no '=')");
  ArmSpec arm;
  arm.name = trim(text.substr(0, eq));
  if (arm.name.empty()) throw Error(what + ": the arm's name (before '=') is empty");
  arm.runs = split_commas(text.substr(eq + 1));
  for (size_t i = 0; i < arm.runs.size(); ++i) {
    if (arm.runs[i].empty()) {
      throw Error(what + ": run " + std::to_string(i + 1) + " of " +
                  std::to_string(arm.runs.size()) + " is empty (expected NAME=RUN[,RUN...])");
    }
  }
  return arm;
}

std::vector<double> parse_targets(const std::string& text) {
  std::vector<double> out;
  const auto items = split_commas(text);
  for (const auto& item : items) {
    const std::optional<double> number = util::parse_number(item);
    const double v = number.value_or(NAN);
    if (!number || !std::isfinite(v)) {
      throw Error("--targets '" + text + "': '" + item +
                  "' is not a number (expected FIDs, e.g. 60,40,31.5)");
    }
    if (v <= 0) {
      throw Error("--targets '" + text + "': " + item + " is not a positive FID");
    }
    out.push_back(v);
  }
  return out;
}

Comparison compare(const std::vector<Run>& baseline,
                   const std::vector<std::pair<std::string, std::vector<Run>>>& arms,
                   const std::vector<double>& targets) {
  if (baseline.empty()) throw Error("--baseline: give at least one run");
  std::set<std::string> names{"baseline"};
  for (const auto& [name, runs] : arms) {
    if (name.empty()) throw Error("--arm: an arm's name is empty");
    if (name == "baseline") throw Error("--arm baseline: the name 'baseline' is --baseline's");
    if (!names.insert(name).second) throw Error("--arm " + name + ": the name is given twice");
    if (runs.empty()) throw Error("--arm " + name + ": give at least one run");
    if (runs.size() > baseline.size()) {
      throw Error("--arm " + name + " has " + std::to_string(runs.size()) +
                  " runs but --baseline has " + std::to_string(baseline.size()) +
                  ": runs are paired seed for seed, so an arm has at most as many");
    }
  }
  for (const double t : targets) {
    if (!(std::isfinite(t) && t > 0)) {
      throw Error("--targets: " + fixed(t, 6) + " is not a positive FID");
    }
  }

  Comparison c;
  c.baseline = make_group("baseline", "--baseline", baseline);
  for (const auto& [name, runs] : arms) c.arms.push_back(make_group(name, "--arm " + name, runs));

  const auto& base_mean = c.baseline.mean_curve;
  c.default_target = base_mean.back().fid;
  if (!targets.empty()) {
    c.targets = targets;
  } else if (base_mean.size() == 1) {
    c.targets = {c.default_target};
  } else {
    for (size_t i = 1; i < base_mean.size(); ++i) c.targets.push_back(base_mean[i].fid);
  }
  const auto it = std::find(c.targets.begin(), c.targets.end(), c.default_target);
  if (it == c.targets.end()) c.targets.push_back(c.default_target);
  c.default_index = static_cast<size_t>(
      std::find(c.targets.begin(), c.targets.end(), c.default_target) - c.targets.begin());

  for (size_t k = 0; k < c.targets.size(); ++k) {
    const double x = c.targets[k];
    TargetResult b;
    b.target = x;
    b.is_default = k == c.default_index;
    b.mean = iters_to_target(base_mean, x);
    b.mean_ratio = iteration_ratio(b.mean, b.mean);
    for (const auto& r : c.baseline.runs) {
      b.runs.push_back(iters_to_target(r.curve, x));
      b.run_ratios.push_back(iteration_ratio(b.mean, b.runs.back()));
    }
    b.floor = noise_floor(b.run_ratios);
    c.baseline.at.push_back(b);
    for (auto& a : c.arms) {
      TargetResult t;
      t.target = x;
      t.is_default = b.is_default;
      t.mean = iters_to_target(a.mean_curve, x);
      t.mean_ratio = iteration_ratio(b.mean, t.mean);
      for (size_t i = 0; i < a.runs.size(); ++i) {
        t.runs.push_back(iters_to_target(a.runs[i].curve, x));
        t.run_ratios.push_back(iteration_ratio(b.runs[i], t.runs.back()));
      }
      t.floor = b.floor;
      a.at.push_back(t);
    }
  }

  auto clipped_notes = [&](const Group& g) {
    for (size_t i = 0; i < g.runs.size(); ++i) {
      if (!g.geomean_clipped[i]) continue;
      const auto& curve = g.runs[i].curve;
      c.notes.push_back(g.name + " run " + std::to_string(i + 1) + " (" + g.runs[i].label +
                        "): 0.4 x its last step " + with_commas(curve.back().step) +
                        " lies before its first evaluation (step " +
                        with_commas(curve.front().step) +
                        "), so its geometric-mean FID covers the steps from that evaluation on");
    }
  };
  clipped_notes(c.baseline);
  for (const auto& a : c.arms) clipped_notes(a);
  for (const auto& a : c.arms) {
    for (size_t i = 0; i < a.runs.size(); ++i) {
      const auto& s0 = c.baseline.runs[i].seed;
      const auto& s1 = a.runs[i].seed;
      if (s0 && s1 && *s0 != *s1) {
        c.notes.push_back(a.name + " run " + std::to_string(i + 1) + " has seed " +
                          std::to_string(*s1) + " but baseline run " + std::to_string(i + 1) +
                          " seed " + std::to_string(*s0) +
                          ": same-seed ratios pair runs in the order given");
      }
    }
  }
  return c;
}

std::string format_ratio(const Ratio& r) {
  switch (r.kind) {
    case Ratio::Kind::kValue:
      return fixed(r.value, 2) + "x";
    case Ratio::Kind::kUpperBound:
      return "<" + fixed(r.value, 2) + "x";
    case Ratio::Kind::kLowerBound:
      return ">" + fixed(r.value, 2) + "x";
    case Ratio::Kind::kUnknown:
      break;
  }
  return "n/a";
}

std::string format_iters(const Iters& it) {
  return it.reached() ? with_commas(it.value)
                      : ">" + with_commas(static_cast<double>(it.last_step));
}

std::string comparison_table(const Comparison& c) {
  std::string out = runs_text(c) + "\n";
  out += "default target: FID " + fid_text(c.default_target) +
         " (the baseline mean curve's final value, step " +
         with_commas(c.baseline.mean_curve.back().step) + ")\n\n";
  out += aligned(default_rows(c));
  out += "\n" + floor_line(c) + "\n\n";
  out += "ratio of the mean curves at each target (* the default target):\n";
  out += aligned(ladder_rows(c));
  out += "\n" + std::string(kLegend);
  for (const auto& n : c.notes) out += "note: " + n + "\n";
  return out;
}

std::string comparison_markdown(const Comparison& c) {
  std::string out;
  auto group = [&](const Group& g) {
    out += "- " + g.name + ":";
    for (size_t i = 0; i < g.runs.size(); ++i) {
      const Run& r = g.runs[i];
      out += std::string(i == 0 ? " " : ", ") + "`" + r.label + "`" +
             (r.seed ? " (seed " + std::to_string(*r.seed) + ")" : "");
    }
    out += "\n";
  };
  group(c.baseline);
  for (const auto& a : c.arms) group(a);
  out += "\nDefault target: FID " + fid_text(c.default_target) +
         " (the baseline mean curve's final value, step " +
         with_commas(c.baseline.mean_curve.back().step) + ").\n\n";
  out += markdown(default_rows(c));
  out += "\nThe " + floor_line(c) + ".\n\n";
  out += "Ratio of the mean curves at each target (* the default target):\n\n";
  out += markdown(ladder_rows(c));
  out += "\n" + std::string(kLegend);
  for (const auto& n : c.notes) out += "\nNote: " + n + ".\n";
  return out;
}

std::string comparison_csv(const Comparison& c) {
  const size_t n = c.baseline.runs.size();
  std::string out = "arm,target,default_target,iters_mean,ratio_mean,noise_floor_pct";
  for (size_t i = 1; i <= n; ++i) {
    out += ",iters_run" + std::to_string(i) + ",ratio_run" + std::to_string(i);
  }
  out += "\n";
  auto rows = [&](const Group& g) {
    for (const auto& t : g.at) {
      std::ostringstream target;
      target << std::setprecision(8) << t.target;
      out += csv_field(g.name) + "," + target.str() + "," + (t.is_default ? "1" : "0") + "," +
             csv_iters(t.mean) + "," + csv_ratio(t.mean_ratio) + "," + csv_floor(t.floor);
      for (size_t i = 0; i < n; ++i) {
        out += i < t.runs.size() ? "," + csv_iters(t.runs[i]) + "," + csv_ratio(t.run_ratios[i])
                                 : std::string(",,");
      }
      out += "\n";
    }
  };
  rows(c.baseline);
  for (const auto& a : c.arms) rows(a);
  return out;
}

}  // namespace dmtrain::sweep
