// dmtrain: the command-line entry point. Parses arguments (CLI11), hands them to the library, and
// turns a dmtrain::Error into a one-line message and exit code 2. As a last resort any other
// exception (a c10::Error from LibTorch, a std::exception from the standard library or yaml-cpp)
// also ends with a message and exit code 2, never with std::terminate's abort (exit 134).
#include <c10/util/Exception.h>
#include <torch/version.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/out_of_memory.hpp"
#include "dmtrain/version.hpp"

namespace dmtrain::app {
namespace {
int g_exit_code = 0;
}
void set_exit_code(int code) {
  g_exit_code = code;
}
int exit_code() {
  return g_exit_code;
}
}  // namespace dmtrain::app

namespace {

// `dmtrain --nproc-per-node N ...`: this process becomes the launcher of N local workers (the
// same command without the flag, with torchrun's environment; dist/launcher.hpp). Returns -1 when
// the flag is absent.
int nproc_per_node(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    std::string value;
    if (a == "--nproc-per-node" && i + 1 < argc)
      value = argv[i + 1];
    else if (a.rfind("--nproc-per-node=", 0) == 0)
      value = a.substr(17);
    else
      continue;
    try {
      size_t used = 0;
      const int n = std::stoi(value, &used);
      if (used == value.size() && n >= 1) return n;
    } catch (const std::exception&) {
    }
    throw dmtrain::Error("--nproc-per-node takes a number of processes >= 1, got '" + value + "'");
  }
  return -1;
}

// The message and exit code of an exception that reached main. Only dmtrain::Error is an
// expected user error; anything else is a failure dmtrain did not turn into one (a bug to report),
// named as such, with LibTorch's message without its C++ backtrace.
int report(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  if (dynamic_cast<const dmtrain::Error*>(&e) != nullptr) {
    std::cerr << "dmtrain: error: " << e.what() << "\n";
  } else if (dmtrain::util::is_out_of_memory(e)) {
    // A limit of the machine, not a bug: say which settings size the memory.
    std::cerr << "dmtrain: error: out of memory: "
              << (torch_error != nullptr ? torch_error->what_without_backtrace() : e.what())
              << "\n  lower train.batch_size (dmtrain bench: --batch) or eval.batch, or run fewer"
                 " processes on this device; a run resumes from its last checkpoint with"
                 " --resume auto\n";
  } else if (torch_error != nullptr) {
    std::cerr << "dmtrain: internal error: " << torch_error->what_without_backtrace() << "\n";
  } else {
    std::cerr << "dmtrain: internal error: " << e.what() << "\n";
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int nproc = nproc_per_node(argc, argv);
    if (nproc > 0) {
      if (std::getenv("RANK") != nullptr || std::getenv("SLURM_PROCID") != nullptr) {
        throw dmtrain::Error(
            "--nproc-per-node starts its own workers, but this process already is "
            "a worker (RANK or SLURM_PROCID is set): drop the flag under torchrun/srun");
      }
      std::vector<std::string> args(argv, argv + argc);
      args[0] = std::filesystem::read_symlink("/proc/self/exe").string();
      return dmtrain::dist::launch_local(nproc, args, /*master_port=*/0);
    }
  } catch (const std::exception& e) {
    return report(e);
  }
  CLI::App app{
      "dmtrain: train image diffusion models (Improved/Guided Diffusion UNets) on LibTorch"};
  app.set_version_flag("--version", std::string("dmtrain ") + dmtrain::kVersion + " (LibTorch " +
                                        TORCH_VERSION + ")");
  app.footer(
      "Train:   dmtrain --config configs/quickstart.yaml [--set train.iterations=500]\n"
      "Resume:  dmtrain --config FILE --resume auto\n"
      "Inspect: dmtrain --config FILE --dry-run\n"
      "Each subcommand has its own --help.");
  dmtrain::app::add_train_options(app);
  // Handled before parsing (see nproc_per_node); registered for --help.
  app.add_option("--nproc-per-node",
                 "Start N local worker processes (one per GPU) and train "
                 "data-parallel over them; MASTER_PORT picked free");
  // Subcommands register here (one line each).
  dmtrain::app::add_schedule_command(app);
  dmtrain::app::add_sample_command(app);
  dmtrain::app::add_nll_command(app);
  dmtrain::app::add_fid_command(app);
  dmtrain::app::add_consistency_command(app);
  dmtrain::app::add_landscape_command(app);
  dmtrain::app::add_data_command(app);
  dmtrain::app::add_sweep_command(app);
  dmtrain::app::add_bench_command(app);
  dmtrain::app::add_config_command(app);
  dmtrain::app::add_ema_command(app);
  dmtrain::app::add_compare_command(app);
  dmtrain::app::add_export_command(app);
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
    // app.exit prints the message (or the help and version, which exit 0); a bad command line
    // is bad input: exit code 2, as every other (CLI11's own codes are 100 and up).
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    return report(e);
  } catch (...) {
    std::cerr << "dmtrain: internal error: an unknown exception\n";
    return 2;
  }
}
