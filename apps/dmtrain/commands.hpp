// The subcommands of the dmtrain executable. Each add_* registers its options and a callback on
// the CLI11 app; callbacks throw dmtrain::Error for bad input, which main() turns into a message.
#pragma once
#include <CLI/CLI.hpp>

namespace dmtrain::app {

// dmtrain --config FILE [--set k=v]... [--dry-run] [--resume auto|DIR] ...   (the main job)
void add_train_options(CLI::App& app);
int run_train();

}  // namespace dmtrain::app
