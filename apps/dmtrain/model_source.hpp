// The model a non-training subcommand (sample, nll) evaluates, and the options naming it:
//   --checkpoint DIR   a checkpoint folder (iter_<k>/ with its COMMITTED manifest, config.yaml,
//                      model.pt, ema_<i>.pt) or a run directory (config.yaml plus the final
//                      ema_<rate>.pt of a finished run, else its newest valid checkpoint under
//                      checkpoints/). --ema I picks train.ema_rates[I]; --no-ema the raw weights
//                      (model.pt of a checkpoint).
//   --weights FILE --config FILE
//                      a state_dict (.pt from torch.save(model.state_dict()) or .safetensors),
//                      e.g. an improved-/guided-diffusion release, with a YAML config whose
//                      model and diffusion sections describe it. train.iterations and data.path
//                      are filled with placeholders when that config has none (not needed to
//                      sample).
//   --checkpoint DIR --weights FILE
//                      a dmtrain EMA file (ema_<rate>.pt, or `dmtrain ema`'s post-hoc
//                      ema_phema_<sigma_rel>.pt) with the config.yaml of the run or checkpoint DIR.
// All accept --set section.key=value overrides. Errors are dmtrain::Error naming the path.
#pragma once
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"
#include "dmtrain/models/unet.hpp"

namespace dmtrain::app {

struct ModelArgs {
  std::string checkpoint, weights, config;
  std::vector<std::string> sets;
  int64_t ema = 0;
  bool no_ema = false;
  std::string device = "auto";
};

// Registers --checkpoint, --weights, --config, --set, --ema, --no-ema, --device on `cmd`.
void add_model_options(CLI::App& cmd, ModelArgs& args);
// Registers only --set, --ema, --no-ema, --device: for commands that name several checkpoints
// themselves and load each with a copy of `args` whose `checkpoint` they fill in.
void add_weight_choice_options(CLI::App& cmd, ModelArgs& args);

struct LoadedModel {
  config::RunConfig cfg;
  models::UNetModel model{nullptr};  // on `device`, in eval mode
  at::Device device = at::kCPU;
  std::string description;  // what was loaded, for the log
  // Whether the config names a data set (commands that need images check this).
  bool has_data() const { return !cfg.data.path.empty() || cfg.data.format == "synthetic"; }
};

LoadedModel load_model(const ModelArgs& args);

}  // namespace dmtrain::app
