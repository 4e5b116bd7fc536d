// Implementation of dmtrain/sweep/run_status.hpp.
#include "dmtrain/sweep/run_status.hpp"

#include <filesystem>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/config/diff.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"

namespace dmtrain::sweep {
namespace fs = std::filesystem;

namespace {

// "" when `file` exists and matches its checksum file, else what is wrong.
std::string export_problem(const fs::path& file) {
  if (!fs::is_regular_file(file)) return file.filename().string() + " is missing";
  try {
    if (!util::verify_hash_sidecar(file.string())) {
      return file.filename().string() + " has no checksum file";
    }
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

std::string unfinished_reason(const std::string& run_dir) {
  const fs::path dir(run_dir);
  if (!fs::is_regular_file(dir / "config.yaml")) return "no config.yaml (not started)";
  config::RunConfig cfg;
  try {
    cfg = config::load_config((dir / "config.yaml").string(), {}, config::ConfigUse::kModel);
  } catch (const Error& e) {
    return e.what();
  }
  const auto latest = checkpoint::latest_valid_checkpoint((dir / "checkpoints").string());
  if (!latest) return "no valid checkpoint";
  if (latest->iteration != cfg.train.iterations) {
    return "newest valid checkpoint is iteration " + std::to_string(latest->iteration) + " of " +
           std::to_string(cfg.train.iterations);
  }
  for (const double rate : cfg.train.ema_rates) {
    for (const std::string& name :
         {ema::final_ema_file(rate), ema::final_ema_safetensors_file(rate)}) {
      const std::string problem = export_problem(dir / name);
      if (!problem.empty()) return problem;
    }
  }
  return "";
}

std::string other_config_problem(const std::string& run_dir, const config::RunConfig& cfg) {
  const fs::path saved_path = fs::path(run_dir) / "config.yaml";
  if (!fs::exists(saved_path)) return "";
  config::RunConfig saved;
  try {
    saved = config::load_config(saved_path.string());
  } catch (const Error& e) {
    return "run dir '" + run_dir + "' has a config.yaml that cannot be read: " + e.what();
  }
  std::string diff;
  for (const auto& [key, change] : config::changed_keys(saved, cfg)) {
    if (key == "train.run_dir") continue;
    diff += (diff.empty() ? "" : ", ") + key + " " + change;
  }
  if (diff.empty()) return "";
  return "run dir '" + run_dir + "' holds a run of another config (" + diff +
         ", its config.yaml -> this sweep): use another --out, or move that run dir away";
}

}  // namespace dmtrain::sweep
