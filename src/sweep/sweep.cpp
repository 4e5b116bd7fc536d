// Sweeps: grid parsing, expansion into named runs, the command of a run, and the summary of the
// runs' metrics.jsonl files (read with observe::read_records, as the trainer writes them).
#include "dmtrain/sweep/sweep.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/config/schema.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/recipe/check_data.hpp"
#include "dmtrain/sweep/run_status.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/text.hpp"

namespace dmtrain::sweep {
namespace {

namespace fs = std::filesystem;

using util::trim;

// Splits on commas at bracket depth 0 and outside quotes: "[1,2],[3,4]" -> "[1,2]", "[3,4]".
std::vector<std::string> split_values(const std::string& s, const std::string& what) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  char quote = 0;
  for (const char c : s) {
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (--depth < 0) throw Error(what + ": unbalanced '" + std::string(1, c) + "'");
    } else if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (depth != 0 || quote) throw Error(what + ": unbalanced brackets or quotes");
  out.push_back(trim(cur));
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].empty()) {
      throw Error(what + ": value " + std::to_string(i + 1) + " of " + std::to_string(out.size()) +
                  " is empty (expected key=v1,v2,...)");
    }
  }
  return out;
}

std::vector<std::string> split_dots(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  return parts;
}

// The shortest dotted suffix of each key that differs from the other keys' suffixes of the same
// length: mu, target_iteration; optim.lr vs data.lr -> optim.lr, data.lr.
std::vector<std::string> leaves(const std::vector<SweepAxis>& axes) {
  std::vector<std::string> out;
  for (size_t i = 0; i < axes.size(); ++i) {
    const auto parts = split_dots(axes[i].key);
    std::string leaf;
    for (size_t n = 1; n <= parts.size(); ++n) {
      auto suffix = [&](const std::string& key) {
        const auto p = split_dots(key);
        std::string s;
        for (size_t j = p.size() >= n ? p.size() - n : 0; j < p.size(); ++j) {
          s += (s.empty() ? "" : ".") + p[j];
        }
        return s;
      };
      leaf = suffix(axes[i].key);
      bool unique = true;
      for (size_t j = 0; j < axes.size(); ++j) {
        if (j != i && suffix(axes[j].key) == leaf) unique = false;
      }
      if (unique) break;
    }
    out.push_back(leaf);
  }
  return out;
}

// Keeps [A-Za-z0-9._+-]; any other run of characters becomes one '-'; no '-' at either end.
std::string sanitize(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '-';
    if (ok) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// "1e-4" -> the YAML node of a scalar value as written; a sequence -> its flow form "[1, 2]".
std::string yaml_value_text(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << node;
  return e.c_str();
}

std::string path_relative_to(const std::string& file, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(file).parent_path() / p).lexically_normal().string();
}

std::string fmt_num(double v, int precision = 6) {
  if (!std::isfinite(v)) return "nan";
  std::ostringstream os;
  os << std::setprecision(precision) << v;
  return os.str();
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

void check_sweep_key(const std::string& key, const std::string& what) {
  if (config::find_field(key)) {
    if (key == "train.run_dir") {
      throw Error(what +
                  ": train.run_dir cannot be swept (every run gets <out>/<run name>; "
                  "use --out DIR)");
    }
    return;
  }
  std::string hint;
  for (const auto& f : config::schema()) {
    const std::string& k = f.key;
    if (k.size() > key.size() && k.compare(k.size() - key.size(), key.size(), key) == 0 &&
        k[k.size() - key.size() - 1] == '.') {
      hint = hint.empty() ? k : "\n";  // "\n": more than one key ends in it
    }
  }
  if (hint.empty() || hint == "\n") hint = config::closest_key(key);
  throw Error(what + ": unknown key '" + key + "'" +
              (hint.empty() ? std::string(" (keys are full paths like timestep.clts.mu)")
                            : " (did you mean '" + hint + "'?)"));
}

SweepAxis parse_grid(const std::string& spec) {
  const auto eq = spec.find('=');
  const std::string what = "--grid '" + spec + "'";
  if (eq == std::string::npos || eq == 0) throw Error(what + ": expected key=v1,v2,...");
  SweepAxis axis;
  axis.key = trim(spec.substr(0, eq));
  check_sweep_key(axis.key, what);
  axis.values = split_values(spec.substr(eq + 1), what);
  return axis;
}

SweepSpec load_sweep_file(const std::string& path) {
  if (!fs::exists(path)) throw Error("sweep file '" + path + "' does not exist");
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw Error(path + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (!doc.IsMap()) throw Error(path + ": a sweep file is a map with base:, grid: and name:");
  SweepSpec spec;
  for (const auto& kv : doc) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    const std::string where = path + ":" + std::to_string(kv.first.Mark().line + 1);
    if (key == "base") {
      spec.base_config = path_relative_to(path, v.as<std::string>());
    } else if (key == "name") {
      spec.name_prefix = v.as<std::string>();
    } else if (key == "out") {
      spec.out_dir = path_relative_to(path, v.as<std::string>());
    } else if (key == "set") {
      if (!v.IsSequence()) throw Error(where + ": 'set' expects a list of key=value");
      for (const auto& s : v) spec.sets.push_back(s.as<std::string>());
    } else if (key == "grid") {
      if (!v.IsMap()) throw Error(where + ": 'grid' expects a map of key: [values]");
      for (const auto& axis_kv : v) {
        SweepAxis axis;
        axis.key = axis_kv.first.as<std::string>();
        const std::string awhere =
            path + ":" + std::to_string(axis_kv.first.Mark().line + 1) + ": grid";
        check_sweep_key(axis.key, awhere);
        const YAML::Node& vals = axis_kv.second;
        if (vals.IsSequence()) {
          for (const auto& x : vals) axis.values.push_back(yaml_value_text(x));
        } else if (vals.IsScalar()) {
          axis.values.push_back(vals.Scalar());
        }
        if (axis.values.empty()) throw Error(awhere + " '" + axis.key + "' has no values");
        spec.axes.push_back(axis);
      }
    } else {
      throw Error(where + ": unknown sweep key '" + key +
                  "' (expected base, grid, name, set, out)");
    }
  }
  if (spec.base_config.empty()) throw Error(path + ": 'base: <config file>' is required");
  return spec;
}

std::string sweep_out_dir(const SweepSpec& spec) {
  if (!spec.out_dir.empty()) return spec.out_dir;
  return config::load_config(spec.base_config, spec.sets).train.run_dir;
}

std::vector<SweepRun> expand(const SweepSpec& spec) {
  if (spec.axes.empty()) throw Error("a sweep needs at least one --grid key=v1,v2,...");
  std::set<std::string> keys;
  for (const auto& a : spec.axes) {
    if (!keys.insert(a.key).second) throw Error("--grid: key '" + a.key + "' is swept twice");
    if (a.values.empty()) throw Error("--grid: key '" + a.key + "' has no values");
  }
  const std::string out = sweep_out_dir(spec);
  const auto leaf = leaves(spec.axes);
  size_t total = 1;
  for (const auto& a : spec.axes) total *= a.values.size();

  std::vector<SweepRun> runs;
  std::set<std::string> names;
  for (size_t r = 0; r < total; ++r) {
    SweepRun run;
    run.index = static_cast<int64_t>(r);
    run.overrides = spec.sets;
    // Mixed-radix digits of r with the last axis fastest.
    std::vector<size_t> digit(spec.axes.size());
    for (size_t i = spec.axes.size(), rest = r; i-- > 0;) {
      digit[i] = rest % spec.axes[i].values.size();
      rest /= spec.axes[i].values.size();
    }
    std::string name = spec.name_prefix.empty() ? "" : sanitize(spec.name_prefix);
    for (size_t i = 0; i < spec.axes.size(); ++i) {
      const std::string& v = spec.axes[i].values[digit[i]];
      run.values.push_back(v);
      run.overrides.push_back(spec.axes[i].key + "=" + v);
      name += (name.empty() ? "" : "_") + sanitize(leaf[i] + v);
    }
    if (!names.insert(name).second) {
      throw Error("sweep: two runs would both be named '" + name +
                  "' (values that differ only in characters a file name cannot hold)");
    }
    run.name = name;
    run.run_dir = (fs::path(out) / name).string();
    runs.push_back(std::move(run));
  }
  // Every run is named before any is checked: a clash of names is the sweep's error, not a run's.
  for (auto& run : runs) {
    try {
      // (the run dir, a path, is not a --set value: it reaches the run literally, --run-dir)
      const config::RunConfig cfg = config::load_config(spec.base_config, run.overrides);
      recipe::check_run_config(cfg);  // what the run would refuse at its start, refused now
      recipe::check_data_source(cfg);
      // A re-launch with other values must not pass the old runs off as this sweep's.
      const std::string other = other_config_problem(run.run_dir, cfg);
      if (!other.empty()) throw Error(other);
      run.iterations = cfg.train.iterations;
    } catch (const Error& e) {
      throw Error("sweep run " + std::to_string(run.index) + " (" + run.name + "): " + e.what());
    }
  }
  return runs;
}

std::vector<SweepRun> select_runs(const std::vector<SweepRun>& runs, int64_t index) {
  if (index < 0) return runs;
  if (index >= static_cast<int64_t>(runs.size())) {
    throw Error("--index " + std::to_string(index) + " is out of range: the sweep has " +
                std::to_string(runs.size()) + " runs (indices 0.." +
                std::to_string(runs.size() - 1) + ")");
  }
  return {runs[static_cast<size_t>(index)]};
}

std::string shell_quote(const std::string& word) {
  const bool safe = !word.empty() && word.find_first_not_of(
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789_-.,/:=+@%") == std::string::npos;
  if (safe) return word;
  std::string out = "'";
  for (const char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> run_argv(const SweepSpec& spec, const SweepRun& run,
                                  const std::string& exe) {
  std::vector<std::string> argv{exe, "--config", spec.base_config};
  for (const auto& o : run.overrides) {
    argv.push_back("--set");
    argv.push_back(o);
  }
  argv.insert(argv.end(), {"--run-dir", run.run_dir, "--resume", "auto"});
  return argv;
}

std::string run_command_line(const SweepSpec& spec, const SweepRun& run, const std::string& exe) {
  std::string line;
  for (const auto& a : run_argv(spec, run, exe)) line += (line.empty() ? "" : " ") + shell_quote(a);
  return line;
}

std::vector<observe::Record> read_metrics(const std::string& run_dir) {
  return observe::read_records((fs::path(run_dir) / "metrics.jsonl").string());
}

int64_t last_logged_step(const std::string& run_dir) {
  std::ifstream in(fs::path(run_dir) / "metrics.jsonl", std::ios::binary);
  if (!in) return 0;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 65536);  // many records
  in.seekg(from);
  const std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  std::stringstream ss(tail);
  for (std::string line; std::getline(ss, line);) lines.push_back(line);
  if (from > 0 && !lines.empty()) lines.erase(lines.begin());  // starts mid-line
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    const auto rec = observe::parse_record(*it);
    if (rec && std::isfinite(rec->number("step"))) return static_cast<int64_t>(rec->number("step"));
  }
  return 0;
}

std::vector<FidPoint> fid_curve(const std::vector<observe::Record>& records) {
  std::map<int64_t, double> fid;  // by step: a later record for the same step replaces it
  for (const auto& r : records) {
    const double step = r.number("step");
    if (r.has("fid") && std::isfinite(step)) fid[static_cast<int64_t>(step)] = r.number("fid");
  }
  std::vector<FidPoint> out;
  for (const auto& [step, v] : fid) out.push_back({step, v});
  return out;
}

int64_t iters_to_fid(const std::vector<FidPoint>& curve, double target) {
  for (const auto& p : curve) {
    if (std::isfinite(p.fid) && p.fid <= target) return p.step;
  }
  return -1;
}

double iters_to_fid_interp(const std::vector<FidPoint>& curve, double target) {
  const FidPoint* prev = nullptr;  // the last finite evaluation, which was above target
  for (const auto& p : curve) {
    if (!std::isfinite(p.fid)) continue;  // a null FID: interpolate across it
    if (p.fid <= target) {
      if (!prev) return static_cast<double>(p.step);
      const double t = (prev->fid - target) / (prev->fid - p.fid);
      return static_cast<double>(prev->step) + t * static_cast<double>(p.step - prev->step);
    }
    prev = &p;
  }
  return NAN;
}

RunSummary summarize_run(const SweepRun& run) {
  RunSummary s;
  s.name = run.name;
  s.values = run.values;
  s.final_loss = s.tail_loss = s.img_per_s = s.final_fid = s.best_fid = NAN;
  std::vector<observe::Record> all = read_metrics(run.run_dir);
  s.fid = fid_curve(all);
  std::vector<observe::Record> recs;  // training records (FID records have no loss)
  for (auto& r : all) {
    const bool fid_record = r.has("fid") && std::isfinite(r.number("step"));  // as fid_curve's
    if (!fid_record && r.has("loss")) recs.push_back(std::move(r));
  }
  for (const auto& p : s.fid) {
    // !(>=): best_fid starts NaN
    if (std::isfinite(p.fid) && !(p.fid >= s.best_fid)) s.best_fid = p.fid;
  }
  if (!s.fid.empty()) s.final_fid = s.fid.back().fid;
  if (recs.empty()) {
    s.status = "missing";
    return s;
  }
  // A resumed run appends; the last record is the furthest step.
  const double step = recs.back().number("step");
  s.final_step = std::isfinite(step) ? static_cast<int64_t>(step) : 0;
  s.final_loss = recs.back().number("loss");
  const size_t tail = std::max<size_t>(1, (recs.size() + 9) / 10);
  double loss_sum = 0, ips_sum = 0;
  int64_t loss_n = 0, ips_n = 0;
  for (size_t i = recs.size() - tail; i < recs.size(); ++i) {
    const double l = recs[i].number("loss");
    const double ips = recs[i].number("img_per_s");
    if (std::isfinite(l)) loss_sum += l, ++loss_n;
    if (std::isfinite(ips)) ips_sum += ips, ++ips_n;
  }
  s.tail_loss = loss_n ? loss_sum / static_cast<double>(loss_n) : NAN;
  s.img_per_s = ips_n ? ips_sum / static_cast<double>(ips_n) : NAN;
  s.status = run.iterations > 0 && s.final_step >= run.iterations ? "done" : "incomplete";
  return s;
}

std::vector<RunSummary> summarize(const std::vector<SweepRun>& runs) {
  std::vector<RunSummary> out;
  for (const auto& r : runs) out.push_back(summarize_run(r));
  return out;
}

namespace {
std::vector<std::vector<std::string>> summary_cells(const std::vector<std::string>& header_keys,
                                                    const std::vector<RunSummary>& rows,
                                                    double fid_target) {
  const bool target = std::isfinite(fid_target);
  std::set<int64_t> fid_steps;
  for (const auto& r : rows) {
    for (const auto& p : r.fid) fid_steps.insert(p.step);
  }
  const bool fid_columns = target || !fid_steps.empty();
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> head{"run"};
  head.insert(head.end(), header_keys.begin(), header_keys.end());
  for (const char* h : {"final_step", "final_loss", "tail_loss", "img_per_s"}) head.push_back(h);
  for (const int64_t step : fid_steps) head.push_back("fid_at_" + std::to_string(step));
  if (fid_columns) head.insert(head.end(), {"final_fid", "best_fid"});
  if (target) head.insert(head.end(), {"iters_to_fid", "iters_to_fid_interp"});
  head.push_back("status");
  cells.push_back(head);
  for (const auto& r : rows) {
    std::vector<std::string> row{r.name};
    row.insert(row.end(), r.values.begin(), r.values.end());
    const bool missing = r.status == "missing";
    row.push_back(missing ? "" : std::to_string(r.final_step));
    row.push_back(missing ? "" : fmt_num(r.final_loss));
    row.push_back(missing ? "" : fmt_num(r.tail_loss));
    row.push_back(missing ? "" : fmt_num(r.img_per_s, 4));
    for (const int64_t step : fid_steps) {
      const auto it = std::find_if(r.fid.begin(), r.fid.end(),
                                   [&](const FidPoint& p) { return p.step == step; });
      row.push_back(it == r.fid.end() ? "" : fmt_num(it->fid));
    }
    if (fid_columns) {
      row.push_back(r.fid.empty() ? "" : fmt_num(r.final_fid));
      row.push_back(std::isfinite(r.best_fid) ? fmt_num(r.best_fid) : "");
    }
    if (target) {
      const int64_t first = iters_to_fid(r.fid, fid_target);
      const double interp = iters_to_fid_interp(r.fid, fid_target);
      row.push_back(first < 0 ? "" : std::to_string(first));
      row.push_back(std::isfinite(interp) ? std::to_string(std::llround(interp)) : "");
    }
    row.push_back(r.status);
    cells.push_back(row);
  }
  return cells;
}
}  // namespace

std::string summary_csv(const std::vector<SweepAxis>& axes, const std::vector<RunSummary>& rows,
                        double fid_target) {
  std::vector<std::string> keys;
  for (const auto& a : axes) keys.push_back(a.key);
  std::string out;
  for (const auto& row : summary_cells(keys, rows, fid_target)) {
    for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + csv_field(row[i]);
    out += "\n";
  }
  return out;
}

std::string summary_table(const std::vector<SweepAxis>& axes, const std::vector<RunSummary>& rows,
                          double fid_target) {
  const auto cells = summary_cells(leaves(axes), rows, fid_target);
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& row : cells) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::ostringstream os;
  for (const auto& row : cells) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i] + (i + 1 < row.size() ? std::string(width[i] - row[i].size() + 2, ' ') : "");
    }
    os << line << "\n";
  }
  return os.str();
}

std::string write_summary(const std::string& out_dir, const std::vector<SweepAxis>& axes,
                          const std::vector<RunSummary>& rows, double fid_target) {
  fs::create_directories(out_dir);
  const fs::path path = fs::path(out_dir) / "sweep_summary.csv";
  // Write-then-rename: array tasks finishing together each leave a whole file.
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  std::ofstream os(tmp);
  os << summary_csv(axes, rows, fid_target);
  os.close();
  if (!os) throw Error("cannot write '" + tmp.string() + "'");
  fs::rename(tmp, path);
  return path.string();
}

int run_sweep(const std::vector<SweepRun>& runs, const SweepRunner& runner) {
  int first_failure = 0;
  for (const auto& run : runs) {
    if (unfinished_reason(run.run_dir).empty()) {
      log::info("sweep: run " + std::to_string(run.index) + " (" + run.name +
                ") is already done (final checkpoint and EMA files verified), skipped");
      continue;
    }
    log::info("sweep: run " + std::to_string(run.index) + " (" + run.name + ") -> " + run.run_dir);
    const int code = runner(run);
    if (code == 130) {
      log::warn("sweep: interrupted during run " + run.name + "; re-launch to continue");
      return 130;
    }
    if (code != 0) {
      log::error("sweep: run " + run.name + " failed with exit code " + std::to_string(code) +
                 "; going on with the next run");
      if (first_failure == 0) first_failure = code;
    }
  }
  return first_failure;
}

SweepRunner in_process_runner(const SweepSpec& spec) {
  return [spec](const SweepRun& run) {
    config::RunConfig cfg = config::load_config(spec.base_config, run.overrides);
    cfg.train.run_dir = run.run_dir;  // literally, as --run-dir gives it to a child
    train::TrainOptions opts;
    opts.resume = "auto";
    try {
      return train::train(cfg, opts).interrupted ? 130 : 0;
    } catch (const Error& e) {  // as the CLI would exit: a failed run does not end the sweep
      log::error(run.name + ": " + e.what());
      return 2;
    }
  };
}

}  // namespace dmtrain::sweep
