// dmtrain: the command-line entry point. Parses arguments (CLI11), hands them to the library, and
// turns a dmtrain::Error into a one-line message and exit code 2.
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <iostream>

#include "commands.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/version.hpp"

namespace dmtrain::app {
namespace {
int g_exit_code = 0;
}
void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }
}  // namespace dmtrain::app

int main(int argc, char** argv) {
  CLI::App app{"dmtrain: train image diffusion models (Improved/Guided Diffusion UNets) on LibTorch"};
  app.set_version_flag("--version", std::string("dmtrain ") + dmtrain::kVersion + " (LibTorch " +
                                        TORCH_VERSION + ")");
  app.footer(
      "Train:   dmtrain --config configs/quickstart.yaml [--set train.iterations=500]\n"
      "Resume:  dmtrain --config FILE --resume auto\n"
      "Inspect: dmtrain --config FILE --dry-run\n"
      "Each subcommand has its own --help.");
  dmtrain::app::add_train_options(app);
  // Subcommands register here (one line each).
  dmtrain::app::add_schedule_command(app);
  dmtrain::app::add_sample_command(app);
  dmtrain::app::add_nll_command(app);
  dmtrain::app::add_data_command(app);
  dmtrain::app::add_sweep_command(app);
  dmtrain::app::add_bench_command(app);
  try {
    app.parse(argc, argv);  // subcommand callbacks run inside parse
    if (app.get_subcommands().empty()) {
      if (app.get_option("--config")->empty()) {
        std::cout << app.help();
        return 0;
      }
      return dmtrain::app::run_train();
    }
    return dmtrain::app::exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dmtrain::Error& e) {
    std::cerr << "dmtrain: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "dmtrain: internal error: " << e.what_without_backtrace() << "\n";
    return 3;
  }
}
