// The schema of RunConfig: every YAML key, its type, its allowed range and what it means.
//
// Contract: schema() lists each leaf key once ("section.key"); Field::set converts a YAML value
// into the RunConfig field or throws dmtrain::Error naming `where` (file:line), the key, the
// expected type/range and the value found; Field::get returns the field as YAML for dumping.
#pragma once
#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::config {

struct Field {
  std::string key;       // e.g. "model.image_size"
  std::string expected;  // human text: "an integer >= 1", "one of linear, cosine", ...
  std::string doc;
  std::function<void(RunConfig&, const YAML::Node&, const std::string& where)> set;
  std::function<YAML::Node(const RunConfig&)> get;
};

const std::vector<Field>& schema();
// The field for `key`, or nullptr.
const Field* find_field(const std::string& key);
// The valid key closest to `key` (edit distance), or "" when none is close.
std::string closest_key(const std::string& key);

}  // namespace dmtrain::config
