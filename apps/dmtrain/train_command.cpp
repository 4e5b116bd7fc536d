// dmtrain --config FILE: resolve the config, then dry-run or train.
#include <iostream>

#include "commands.hpp"
#include "dmtrain/config/find.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/models/unet_plan.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/recipe/check_data.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::app {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> sets;
  bool dry_run = false;
  std::string resume;
  bool allow_config_change = false;
  bool restart = false;
  std::string run_dir;
  int64_t stop_at = -1;
} args;

}  // namespace

void add_train_options(CLI::App& app) {
  app.add_option("--config,-c", args.config, "YAML run configuration (may extend a base file)");
  app.add_option("--set,-s", args.sets, "Override a key: section.key=value (repeatable)")
      ->type_name("KEY=VALUE");
  app.add_flag("--dry-run", args.dry_run,
               "Print the resolved config, the parameter count and the plan, then exit");
  app.add_option("--resume", args.resume,
                 "'auto' (newest valid checkpoint of the run dir) or a checkpoint folder");
  app.add_flag("--allow-config-change", args.allow_config_change,
               "Resume even if the model or diffusion section changed");
  app.add_flag("--restart", args.restart,
               "Start afresh in a run dir that holds checkpoints: move the old run aside into "
               "<run_dir>/previous-<UTC time>/ (nothing is deleted)");
  app.add_option("--run-dir", args.run_dir, "Run directory (overrides train.run_dir)");
  app.add_option("--stop-at", args.stop_at,
                 "Stop with a checkpoint after this iteration (the schedule still spans "
                 "train.iterations)")
      ->check(CLI::NonNegativeNumber);
}

int run_train() {
  config::RunConfig cfg = config::load_config(args.config, args.sets);
  // Taken literally, not through --set: a path is not YAML ("runs/exp #1" would lose " #1" to a
  // comment, and "~" or "null" would not be a path at all).
  if (!args.run_dir.empty()) cfg.train.run_dir = args.run_dir;
  // Everything that can be built without training, so that neither a dry run nor a real one
  // accepts what would fail at the first sample grid or after the last iteration.
  recipe::check_run_config(cfg);
  if (args.dry_run) {
    std::cout << "# resolved config of " << config::find_config(args.config) << "\n"
              << config::dump_config(cfg);
    // Counted from the architecture plan: a dry run of the 421M-parameter ImageNet128 recipe
    // allocates nothing.
    const int64_t n = models::count_parameters(recipe::unet_options(cfg));
    std::cout << "# model: " << n << " parameters\n"
              << "# plan: " << cfg.train.iterations << " iterations of global batch "
              << cfg.train.batch_size << " (" << cfg.train.iterations * cfg.train.batch_size
              << " images), timestep sampler " << cfg.timestep.sampler << ", loss weighting "
              << cfg.loss_weight.kind << ", momentum decay "
              << (cfg.optim.momentum_decay ? "on" : "off") << ", lr compensation "
              << (cfg.optim.lr_compensation ? "on" : "off") << ", run dir " << cfg.train.run_dir
              << "\n";
    try {
      recipe::check_data_source(cfg);
    } catch (const Error& e) {
      // A dry run inspects the config: it shows the plan, and names what the run would stop on.
      std::cout << "# data: NOT FOUND, the run would stop here: " << e.what() << "\n";
      log::warn(e.what());
    }
    return 0;
  }
  recipe::check_data_source(cfg);
  train::TrainOptions opts;
  opts.resume = args.resume;
  opts.allow_config_change = args.allow_config_change;
  opts.restart = args.restart;
  opts.stop_at = args.stop_at;
  const auto result = train::train(cfg, opts);
  return result.interrupted ? 130 : 0;
}

}  // namespace dmtrain::app
