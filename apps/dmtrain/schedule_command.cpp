// dmtrain schedule: the run's timestep distribution p_k(t) and MDLRC beta1_k / lr_k at chosen
// iterations, as a long CSV (format in dmtrain/eval/schedule_csv.hpp); plot it with
// scripts/plot_schedule.py.
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/eval/schedule_csv.hpp"
#include "dmtrain/optim/mdlrc_schedule.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/timestep/uniform_sampler.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::app {
namespace {

struct ScheduleArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string at = "0";
  std::string out = "-";
} sargs;

void run_schedule() {
  const std::vector<int64_t> ks = eval::parse_iterations(sargs.at, "--at");
  const config::RunConfig cfg = config::load_config(sargs.config, sargs.sets);
  auto sampler = timestep::make_sampler(recipe::sampler_options(cfg));
  if (cfg.timestep.sampler == "loss-second-moment") {
    log::warn(
        "timestep.sampler 'loss-second-moment' is data-dependent (it follows the training "
        "losses): writing the uniform distribution it starts from");
    sampler = std::make_unique<timestep::UniformSampler>(cfg.diffusion.steps);
  }
  // The optimizer's own schedule, as the run builds it (recipe/build.hpp).
  const optim::MdlrcSchedule sched = recipe::optimizer_options(cfg).schedule();
  optim::validate(sched, "optim");
  for (const int64_t k : ks) {
    if (k > cfg.train.iterations) {
      log::warn(c10::str("--at ", k, " is past train.iterations = ", cfg.train.iterations,
                         " (the schedules hold their final values)"));
    }
  }
  if (sargs.out == "-") {
    eval::write_schedule_csv(std::cout, *sampler, sched, ks);
    return;
  }
  std::ofstream os(sargs.out);
  if (!os) throw Error("--out '" + sargs.out + "' cannot be written");
  eval::write_schedule_csv(os, *sampler, sched, ks);
  os.close();
  if (!os) throw Error("--out '" + sargs.out + "': write failed");
  log::info(c10::str("schedule of ", ks.size(), " iteration(s) x ", sampler->num_timesteps(),
                     " timesteps -> ", sargs.out));
}

}  // namespace

void add_schedule_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "schedule",
      "Write p_k(t) of the timestep sampler and MDLRC beta1_k, lr_k at chosen iterations k as "
      "CSV (iteration,t,p,beta1,lr; one row per k and t)");
  cmd->add_option("--config,-c", sargs.config, "YAML run configuration")->required();
  cmd->add_option("--set,-s", sargs.sets, "Override a key: section.key=value (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--at", sargs.at, "Comma-separated iterations k, e.g. 0,50000,100000")
      ->capture_default_str();
  cmd->add_option("--out,-o", sargs.out, "CSV file ('-' = stdout)")->capture_default_str();
  cmd->callback([] {
    run_schedule();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
