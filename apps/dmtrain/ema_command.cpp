// dmtrain ema: post-hoc EMA (EDM2, ema/posthoc_ema.hpp). Reads the power-EMA snapshots a run
// with train.posthoc_ema wrote under <run>/posthoc_ema/, reconstructs the EMA of each requested
// sigma_rel at step K (default: the last snapshot's) and writes <out>/ema_phema_<sigma_rel>.pt,
// an EMA file with its checksum that `dmtrain sample|fid --checkpoint RUN --weights FILE` read.
#include <c10/util/StringUtil.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "commands.hpp"
#include "dmtrain/ema/posthoc_ema.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/text.hpp"

namespace dmtrain::app {
namespace {

namespace fs = std::filesystem;

struct EmaArgs {
  std::string run, sigma_rels, out;
  int64_t step = -1;
} eargs;

std::vector<double> parse_sigma_rels(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const std::optional<double> v = util::parse_number(item);
    if (!v) throw Error("--sigma-rel: '" + item + "' is not a number (expected e.g. 0.05,0.10)");
    ema::sigma_rel_to_gamma(*v);  // range check, naming the value
    out.push_back(*v);
  }
  if (out.empty()) throw Error("--sigma-rel: give at least one value, e.g. 0.05,0.10");
  return out;
}

void run_ema() {
  const std::vector<double> sigma_rels = parse_sigma_rels(eargs.sigma_rels);
  const auto snaps = ema::list_snapshots(eargs.run);
  if (snaps.empty()) {
    throw Error("no snapshots in " + ema::snapshot_dir(eargs.run) +
                " (train with train.posthoc_ema.sigma_rels and snapshot_every)");
  }
  const int64_t last = snaps.back().step;
  const int64_t step = eargs.step > 0 ? eargs.step : last;
  if (step > last || step < snaps.front().step) {
    throw Error(c10::str("--step ", step, " is outside the snapshots' steps ", snaps.front().step,
                         "..", last, " (nothing after the last snapshot is known)"));
  }
  const fs::path out = eargs.out.empty() ? fs::path(eargs.run) : fs::path(eargs.out);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error("cannot create --out '" + out.string() + "': " + ec.message());
  for (const double s : sigma_rels) {
    const ema::Reconstruction rec = ema::reconstruct(snaps, s, step);
    const std::string file = (out / ema::posthoc_ema_file(s)).string();
    ema::write_ema_file(rec.names, rec.params, file);
    int64_t used = 0;
    double sum = 0;
    for (double c : rec.coefficients) {
      used += c != 0.0 ? 1 : 0;
      sum += c;
    }
    log::info(c10::str("sigma_rel ", s, " (gamma ", ema::sigma_rel_to_gamma(s), ") at step ", step,
                       ": ", used, " snapshots, coefficients summing to ", sum, " -> ", file));
    const std::string problem = ema::reconstruction_problem(rec.coefficients, s);
    if (!problem.empty()) log::warn(file + ": " + problem);
  }
}

}  // namespace

void add_ema_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "ema",
      "Post-hoc EMA (EDM2): reconstruct the EMA of chosen lengths sigma_rel from the power-EMA "
      "snapshots of a run (train.posthoc_ema) as <out>/ema_phema_<sigma_rel>.pt; sample it with "
      "dmtrain sample --checkpoint RUN_DIR --weights <out>/ema_phema_<sigma_rel>.pt");
  cmd->add_option("--run", eargs.run, "Run directory (holds posthoc_ema/snap_*.pt)")->required();
  cmd->add_option("--sigma-rel", eargs.sigma_rels,
                  "Comma-separated relative EMA lengths in (0, 0.288], e.g. 0.05,0.10")
      ->required();
  cmd->add_option("--step", eargs.step, "Training step to reconstruct at (default: last snapshot)");
  cmd->add_option("--out,-o", eargs.out, "Output folder (default: the run directory)");
  cmd->callback([] {
    run_ema();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
