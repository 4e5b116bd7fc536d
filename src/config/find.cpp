#include "dmtrain/config/find.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <utility>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/text.hpp"

namespace fs = std::filesystem;

namespace dmtrain::config {
namespace {

// Every *.yaml under `dir`, as names relative to it ("cifar10_clts.yaml",
// "experiments/cifar10_small_minsnr.yaml").
std::vector<std::string> yaml_names(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().extension() == ".yaml") {
      out.push_back(it->path().lexically_relative(dir).generic_string());
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> config_search_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("DMTRAIN_CONFIG_PATH")) {
    std::stringstream ss(env);
    for (std::string d; std::getline(ss, d, ':');) {
      if (!d.empty()) dirs.push_back(d);
    }
  }
  // An installed dmtrain: <prefix>/bin/dmtrain next to <prefix>/share/dmtrain/configs.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "dmtrain" / "configs";
    if (fs::is_directory(installed, ec)) dirs.push_back(installed.string());
  }
#ifdef DMTRAIN_CONFIGS_DIR
  if (fs::is_directory(DMTRAIN_CONFIGS_DIR)) dirs.emplace_back(DMTRAIN_CONFIGS_DIR);
#endif
  return dirs;
}

std::string find_config(const std::string& name) {
  std::error_code ec;
  if (name.empty() || fs::exists(name, ec)) return name;  // the loader reports what is wrong
  const auto dirs = config_search_dirs();
  for (const auto& d : dirs) {
    for (const std::string& candidate : {name, name + ".yaml"}) {
      const fs::path p = fs::path(d) / candidate;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  }
  // A miss: where we looked, and the nearest names there.
  std::vector<std::pair<size_t, std::string>> near;
  for (const auto& d : dirs) {
    for (const auto& n : yaml_names(d)) {
      const std::string base = fs::path(n).filename().string();
      const size_t dist = std::min(util::edit_distance(name, n), util::edit_distance(name, base));
      near.emplace_back(dist, n);
    }
  }
  std::sort(near.begin(), near.end());
  std::string msg = "config file '" + name + "' does not exist (looked in the working directory";
  for (const auto& d : dirs) msg += ", " + d;
  msg += dirs.empty() ? "; set DMTRAIN_CONFIG_PATH to search folders of configs)"
                      : "; DMTRAIN_CONFIG_PATH adds folders)";
  if (!near.empty()) {
    msg += "; closest: ";
    for (size_t i = 0; i < std::min<size_t>(3, near.size()); ++i) {
      msg += (i ? ", " : "") + near[i].second;
    }
  }
  throw Error(msg);
}

}  // namespace dmtrain::config
