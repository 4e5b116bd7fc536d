// Finding a config file from what the user typed: `--config cifar10_clts.yaml` works from any
// directory, not only where the file is.
//
// Contract: find_config(name) returns `name` itself when that file exists (a path, relative to
// the working directory or absolute, always wins); otherwise the first of, for each search
// directory in order, <dir>/<name> and <dir>/<name>.yaml that exists. The search directories are
// the entries of DMTRAIN_CONFIG_PATH (colon-separated, as PATH), then the configs installed with
// the executable (<prefix>/share/dmtrain/configs beside <prefix>/bin/dmtrain, as `cmake --install`
// lays them out), then the project's configs/ (known at build time; each skipped when absent). A miss throws
// dmtrain::Error naming the name, every place looked at and the closest config names found there.
#pragma once
#include <string>
#include <vector>

namespace dmtrain::config {

std::vector<std::string> config_search_dirs();
std::string find_config(const std::string& name);

}  // namespace dmtrain::config
