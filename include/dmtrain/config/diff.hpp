// changed_keys: how two resolved configs differ, key by key, in schema order.
//
// Each entry is (key, "<a> -> <b>") with both values as YAML text; an empty result means the two
// configs are the same run configuration. Used where a run dir's saved config.yaml is compared
// with the config a command would use now (a resume, a re-launched sweep).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::config {

std::vector<std::pair<std::string, std::string>> changed_keys(const RunConfig& a,
                                                              const RunConfig& b);

}  // namespace dmtrain::config
