// Loading a RunConfig: defaults (in code) < base file(s) < the file < --set overrides.
//
// Contract:
//  - The top file is found by config/find.hpp: a path as given, else by name in
//    DMTRAIN_CONFIG_PATH and the project's configs/ (`--config cifar10_clts.yaml` from anywhere).
//  - A YAML file is a map of sections; a top-level `base: other.yaml` (or a list) names files
//    it extends, resolved relative to the file; bases are merged first, key by key. Every file
//    reachable through `base:` is read once, in a C3 order (as Python orders a class's bases):
//    in `base: [A, B]` B wins over A, and a base shared by A and B (a diamond) sits below both,
//    so it never overrides what A or B set. Bases that cannot be so ordered are refused,
//    naming the two files.
//  - `--set section.key=value` takes any YAML scalar or flow list ("[1,2,2]") as value.
//  - Unknown keys, wrong types, out-of-range values and inconsistent combinations throw
//    dmtrain::Error naming file:line (or "--set"), the key, what was expected, and for unknown
//    keys the closest valid key.
//  - dump_config() writes every key, so a dumped config loads back into an equal RunConfig.
#pragma once
#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::config {

// What a config is loaded for: a training run needs train.iterations and data.path (and the FID
// files when eval.fid_every is on); a command that only samples or evaluates a model does not.
enum class ConfigUse { kTrain, kModel };

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                      ConfigUse use = ConfigUse::kTrain);
// Applies `section.key=value` overrides to an existing config (e.g. to defaults).
void apply_overrides(RunConfig& cfg, const std::vector<std::string>& overrides);
// Cross-field checks (called by load_config): throws dmtrain::Error naming the keys.
void validate(const RunConfig& cfg, ConfigUse use = ConfigUse::kTrain);
// Whether the file or one of its bases sets `key` or a key under it ("model", "data.path").
bool config_sets(const std::string& path, const std::string& key);
std::string dump_config(const RunConfig& cfg);

}  // namespace dmtrain::config
