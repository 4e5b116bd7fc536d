// dmtrain export: the weights of a run as a plain state dict that Python tools read.
//
//   dmtrain export --run RUN_DIR [--weights ema:<rate> | ema | raw | phema:<sigma_rel>]
//                  [--format pt|safetensors] --out FILE
//
// RUN_DIR is a run directory or one checkpoint folder. ema:<rate> is one of train.ema_rates (the
// final export of a finished run, else the newest valid checkpoint's); "ema" the first rate; raw
// the model.pt of the newest checkpoint; phema:<sigma_rel> the post-hoc EMA `dmtrain ema` wrote
// (<run>/ema_phema_<sigma_rel>.pt), reconstructed here from the run's snapshots when absent.
// The file holds one float tensor per parameter under the reference state_dict names, loadable
// with torch.load(f, weights_only=True) or safetensors.torch.load_file and strictly into
// improved-/guided-diffusion's UNetModel. Beside it, <FILE without extension>.json names that
// UNetModel and its constructor arguments (models/reference_unet.hpp). Both are written
// atomically; --format defaults to the extension of --out.
#include <c10/util/StringUtil.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/ema/ema.hpp"
#include "dmtrain/ema/posthoc_ema.hpp"
#include "dmtrain/models/reference_unet.hpp"
#include "dmtrain/models/state_dict.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/checked_write.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/text.hpp"
#include "model_source.hpp"

namespace dmtrain::app {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string run, weights = "ema", format, out;
  std::vector<std::string> sets;
} xargs;

double parse_number(const std::string& text, const std::string& spec) {
  const std::optional<double> v = util::parse_number(text);
  if (!v) throw Error("--weights '" + spec + "': '" + text + "' is not a number");
  return *v;
}

// ema:<rate> -> its index in the run's train.ema_rates, or an error listing them.
int64_t ema_index_of(double rate, const std::string& spec) {
  const fs::path config = fs::path(xargs.run) / "config.yaml";
  if (!fs::is_regular_file(config)) {
    throw Error("--run '" + xargs.run +
                "' has no config.yaml: give a run directory or a checkpoint "
                "folder");
  }
  const std::vector<double> rates =
      config::load_config(config.string(), xargs.sets, config::ConfigUse::kModel).train.ema_rates;
  std::string known;
  for (size_t i = 0; i < rates.size(); ++i) {
    if (ema::ema_rate_text(rates[i]) == ema::ema_rate_text(rate)) return static_cast<int64_t>(i);
    known += (i ? ", " : "") + ema::ema_rate_text(rates[i]);
  }
  throw Error("--weights '" + spec + "': the run has no EMA of rate " + ema::ema_rate_text(rate) +
              " (train.ema_rates = [" + known + "])");
}

// phema:<sigma_rel> -> the post-hoc EMA file, made from the snapshots when `dmtrain ema` has not.
std::string phema_file(double sigma_rel, const std::string& spec) {
  const fs::path file = fs::path(xargs.run) / ema::posthoc_ema_file(sigma_rel);
  if (fs::exists(file)) return file.string();
  const bool have_dir = fs::is_directory(ema::snapshot_dir(xargs.run));
  const auto snaps = have_dir ? ema::list_snapshots(xargs.run) : std::vector<ema::Snapshot>{};
  if (snaps.empty()) {
    throw Error("--weights '" + spec + "': no " + file.string() +
                " and no post-hoc EMA snapshots in " + ema::snapshot_dir(xargs.run) +
                " (train with train.posthoc_ema)");
  }
  const ema::Reconstruction rec = ema::reconstruct(snaps, sigma_rel, snaps.back().step);
  const std::string problem = ema::reconstruction_problem(rec.coefficients, sigma_rel);
  if (!problem.empty()) log::warn(spec + ": " + problem);
  ema::write_ema_file(rec.names, rec.params, file.string());
  log::info(c10::str(spec, ": reconstructed at step ", snaps.back().step, " -> ", file.string()));
  return file.string();
}

ModelArgs model_args() {
  ModelArgs m;
  m.checkpoint = xargs.run;
  m.sets = xargs.sets;
  m.device = "cpu";
  const std::string& spec = xargs.weights;
  if (spec == "raw") {
    m.no_ema = true;
  } else if (spec == "ema") {
    m.ema = 0;
  } else if (spec.rfind("ema:", 0) == 0) {
    m.ema = ema_index_of(parse_number(spec.substr(4), spec), spec);
  } else if (spec.rfind("phema:", 0) == 0) {
    const double sigma_rel = parse_number(spec.substr(6), spec);
    ema::sigma_rel_to_gamma(sigma_rel);  // range check, naming the value
    m.weights = phema_file(sigma_rel, spec);
  } else {
    throw Error("--weights '" + spec +
                "': expected ema, ema:<rate> (one of train.ema_rates), raw or phema:<sigma_rel>");
  }
  return m;
}

models::StateDictFormat output_format() {
  const models::StateDictFormat by_name = models::state_dict_format_of(xargs.out);
  if (xargs.format.empty()) return by_name;
  const models::StateDictFormat asked = xargs.format == "safetensors"
                                            ? models::StateDictFormat::kSafetensors
                                            : models::StateDictFormat::kPt;
  if (asked == models::StateDictFormat::kPt && by_name == models::StateDictFormat::kSafetensors) {
    throw Error("--out '" + xargs.out + "' ends in .safetensors but --format is pt");
  }
  return asked;
}

void run_export() {
  if (!fs::exists(xargs.run)) throw Error("--run '" + xargs.run + "' does not exist");
  const models::StateDictFormat format = output_format();
  const fs::path out(xargs.out);
  if (!out.parent_path().empty() && !fs::is_directory(out.parent_path())) {
    throw Error("--out '" + xargs.out + "': folder '" + out.parent_path().string() +
                "' does not exist");
  }
  const LoadedModel m = load_model(model_args());
  models::NamedTensors tensors;
  for (const auto& p : m.model->named_parameters(true)) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : m.model->named_buffers(true)) tensors.emplace_back(b.key(), b.value());
  models::commit_state_dict_file(tensors, out.string(), format);

  const models::ReferenceUNet ref = models::reference_unet(recipe::unet_options(m.cfg));
  fs::path card = out;
  card.replace_extension(".json");
  nlohmann::ordered_json j;
  j["format_version"] = 1;
  j["weights"] = xargs.weights;
  j["loaded"] = m.description;
  j["reference"] = ref.package;
  j["unet_kwargs"] = nlohmann::ordered_json::parse(ref.kwargs_json);
  const std::string text = j.dump(2) + "\n";
  util::write_checked(
      card.string() + ".tmp",
      [&text](const std::string& p) {
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f << text;
      },
      "model card");
  fs::rename(card.string() + ".tmp", card);
  int64_t numel = 0;
  for (const auto& [name, t] : tensors) numel += t.numel();
  std::cout << "wrote " << out.string() << " ("
            << (format == models::StateDictFormat::kSafetensors ? "safetensors" : "pt") << ", "
            << tensors.size() << " tensors, " << numel << " parameters) from " << m.description
            << "\nwrote " << card.string() << ": " << ref.package << ".unet.UNetModel(**"
            << "unet_kwargs) loads it strictly\n";
}

}  // namespace

void add_export_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a run's weights as a plain state dict (reference key names) for Python: "
      "torch.load(f, weights_only=True) or safetensors, loadable into improved-/guided-diffusion's "
      "UNetModel; a .json beside it gives that UNetModel's arguments");
  cmd->add_option("--run", xargs.run, "Run directory or checkpoint folder")->required();
  cmd->add_option("--weights", xargs.weights,
                  "ema (first of train.ema_rates), ema:<rate>, raw, or phema:<sigma_rel> "
                  "(default ema)");
  cmd->add_option("--format", xargs.format, "pt | safetensors (default: from --out's extension)")
      ->check(CLI::IsMember({"pt", "safetensors"}));
  cmd->add_option("--out,-o", xargs.out, "File to write")->required();
  cmd->add_option("--set,-s", xargs.sets, "Override a config key: section.key=value (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->callback([] {
    run_export();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
