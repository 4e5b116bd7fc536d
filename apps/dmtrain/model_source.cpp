// Resolves --checkpoint / --weights into a loaded UNet and its RunConfig (see model_source.hpp).
#include "model_source.hpp"

#include <torch/cuda.h>
#include <torch/serialize.h>

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/models/state_dict.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::app {
namespace fs = std::filesystem;
namespace {

size_t ema_index(const config::RunConfig& cfg, int64_t ema, const std::string& where) {
  const auto& rates = cfg.train.ema_rates;
  if (ema < 0 || ema >= static_cast<int64_t>(rates.size())) {
    std::ostringstream os;
    os << "--ema " << ema << " is out of range: " << where << " has " << rates.size()
       << " EMA rate(s) (train.ema_rates = [";
    for (size_t i = 0; i < rates.size(); ++i) os << (i ? ", " : "") << rates[i];
    os << "]); use --ema 0.." << static_cast<int64_t>(rates.size()) - 1 << " or --no-ema";
    throw Error(os.str());
  }
  return static_cast<size_t>(ema);
}

void load_checkpoint_dir(LoadedModel& m, const ModelArgs& args, const fs::path& dir) {
  checkpoint::verify_checkpoint(dir.string());
  m.cfg = config::load_config((dir / "config.yaml").string(), args.sets, config::ConfigUse::kModel);
  m.model = models::UNetModel(recipe::unet_options(m.cfg));
  if (args.no_ema) {
    try {
      torch::load(m.model, (dir / "model.pt").string(), at::kCPU);
    } catch (const c10::Error& e) {
      throw Error("cannot load '" + (dir / "model.pt").string() +
                  "' into the model of its config.yaml: " + e.what_without_backtrace());
    }
    m.description = "raw weights of checkpoint " + dir.string();
    return;
  }
  const size_t i = ema_index(m.cfg, args.ema, "checkpoint " + dir.string());
  ema::load_ema_weights(m.model, m.cfg.train.ema_rates, i,
                        (dir / ema::checkpoint_ema_file(i)).string());
  m.description =
      "EMA " + ema::ema_rate_text(m.cfg.train.ema_rates[i]) + " of checkpoint " + dir.string();
}

void load_from_checkpoint(LoadedModel& m, const ModelArgs& args) {
  const fs::path dir(args.checkpoint);
  if (!fs::exists(dir)) throw Error("--checkpoint '" + args.checkpoint + "' does not exist");
  if (!fs::is_directory(dir)) {
    throw Error("--checkpoint '" + args.checkpoint +
                "' is a file; give a checkpoint folder or a run directory (for a bare "
                "state_dict file use --weights FILE --config FILE)");
  }
  if (fs::exists(dir / "COMMITTED")) return load_checkpoint_dir(m, args, dir);
  if (!fs::exists(dir / "config.yaml")) {
    throw Error("--checkpoint '" + args.checkpoint +
                "' is neither a checkpoint folder (no COMMITTED manifest) nor a run directory "
                "(no config.yaml)");
  }
  if (!args.no_ema) {
    // A finished run: its final EMA weights beat any (possibly older) checkpoint.
    config::RunConfig cfg =
        config::load_config((dir / "config.yaml").string(), args.sets, config::ConfigUse::kModel);
    const size_t i = ema_index(cfg, args.ema, "run " + args.checkpoint);
    const fs::path final_ema = dir / ema::final_ema_file(cfg.train.ema_rates[i]);
    if (fs::exists(final_ema)) {
      m.cfg = cfg;
      m.model = models::UNetModel(recipe::unet_options(m.cfg));
      ema::load_ema_weights(m.model, m.cfg.train.ema_rates, i, final_ema.string());
      m.description =
          "final EMA " + ema::ema_rate_text(cfg.train.ema_rates[i]) + " of run " + args.checkpoint;
      return;
    }
  }
  const auto latest = checkpoint::latest_valid_checkpoint((dir / "checkpoints").string());
  if (!latest) {
    throw Error("run directory '" + args.checkpoint + "' has no " +
                (args.no_ema ? std::string() : "final ema_<rate>.pt and no ") +
                "valid checkpoint under " + (dir / "checkpoints").string());
  }
  if (args.no_ema) {
    log::info("--no-ema on a run directory: using model.pt of the newest checkpoint " +
              latest->dir);
  }
  load_checkpoint_dir(m, args, latest->dir);
}

void load_from_weights(LoadedModel& m, const ModelArgs& args) {
  if (args.config.empty()) {
    throw Error(
        "--weights needs --config FILE: a YAML whose model and diffusion sections "
        "describe the network");
  }
  if (!fs::exists(args.weights)) throw Error("--weights '" + args.weights + "' does not exist");
  if (!fs::exists(args.config)) throw Error("--config '" + args.config + "' does not exist");
  if (!config::config_sets(args.config, "model")) {
    throw Error("config '" + args.config +
                "' has no model section (nor do its base files): with --weights it must describe "
                "the network (model.image_size, model.model_channels, ...)");
  }
  if (!config::config_sets(args.config, "diffusion")) {
    log::warn("config '" + args.config +
              "' has no diffusion section: using the default diffusion settings");
  }
  // Only the model and diffusion sections matter here: training-only keys are not required.
  m.cfg = config::load_config(args.config, args.sets, config::ConfigUse::kModel);
  m.model = models::UNetModel(recipe::unet_options(m.cfg));
  try {
    models::load_state_dict(*m.model, args.weights, /*strict=*/true);
  } catch (const Error& e) {
    throw Error("--weights '" + args.weights + "' do not fit the model described by '" +
                args.config + "': " + e.what());
  }
  m.description = "weights " + args.weights;
}

// --checkpoint DIR --weights FILE: a dmtrain EMA file (ema_<rate>.pt, dmtrain ema's
// ema_phema_<sigma_rel>.pt, a post-hoc EMA snapshot) with the config of a run or checkpoint.
void load_ema_file_of_run(LoadedModel& m, const ModelArgs& args) {
  const fs::path dir(args.checkpoint);
  if (!fs::is_regular_file(dir / "config.yaml")) {
    throw Error("--checkpoint '" + args.checkpoint +
                "' with --weights: expected a run directory or checkpoint folder with a "
                "config.yaml");
  }
  if (args.no_ema) throw Error("--no-ema does not apply to --checkpoint DIR --weights FILE");
  m.cfg = config::load_config((dir / "config.yaml").string(), args.sets, config::ConfigUse::kModel);
  m.model = models::UNetModel(recipe::unet_options(m.cfg));
  // Any EMA archive loads as EMA 0 of one rate: the rate only sizes Ema's copies.
  ema::load_ema_weights(m.model, {0.0}, 0, args.weights);
  m.description = "EMA file " + args.weights + " with the config of " + args.checkpoint;
}

}  // namespace

void add_model_options(CLI::App& cmd, ModelArgs& a) {
  cmd.add_option("--checkpoint", a.checkpoint,
                 "Checkpoint folder (iter_<k>) or run directory of a dmtrain run");
  cmd.add_option("--weights", a.weights,
                 "State-dict file (.pt or .safetensors), e.g. a reference release; needs "
                 "--config. With --checkpoint RUN_DIR instead: a dmtrain EMA file (e.g. "
                 "dmtrain ema's ema_phema_<sigma_rel>.pt) read with the run's config");
  cmd.add_option("--config,-c", a.config,
                 "YAML config describing the --weights model (model and diffusion sections)");
  add_weight_choice_options(cmd, a);
}

void add_weight_choice_options(CLI::App& cmd, ModelArgs& a) {
  cmd.add_option("--set,-s", a.sets, "Override a config key: section.key=value (repeatable)")
      ->type_name("KEY=VALUE");
  cmd.add_option("--ema", a.ema, "EMA to use: index into train.ema_rates (default 0)");
  cmd.add_flag("--no-ema", a.no_ema, "Use the raw (non-EMA) weights of the checkpoint");
  cmd.add_option("--device", a.device, "auto | cpu | cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

LoadedModel load_model(const ModelArgs& args) {
  LoadedModel m;
  if (args.checkpoint.empty() && args.weights.empty()) {
    throw Error(
        "give --checkpoint DIR, --weights FILE --config FILE, or --checkpoint RUN_DIR "
        "--weights EMA_FILE");
  }
  if (!args.checkpoint.empty() && !args.weights.empty()) {
    if (!args.config.empty()) throw Error("--config is not used with --checkpoint");
    load_ema_file_of_run(m, args);
  } else if (!args.checkpoint.empty()) {
    if (!args.config.empty()) {
      throw Error(
          "--config is not used with --checkpoint (its config.yaml is); override keys "
          "with --set");
    }
    load_from_checkpoint(m, args);
  } else {
    if (args.no_ema) throw Error("--no-ema applies to --checkpoint only");
    load_from_weights(m, args);
  }
  m.device = recipe::pick_device(args.device, "--device");
  m.model->to(m.device);
  m.model->eval();
  log::info("model: " + m.description);
  return m;
}

}  // namespace dmtrain::app
