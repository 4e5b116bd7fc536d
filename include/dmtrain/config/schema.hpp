// The schema of RunConfig: every YAML key, its type, its allowed range and what it means.
//
// Contract: schema() lists each leaf key once ("section.key"), in the order of the docs; it is
// the one declaration of a key that loading, dumping, `dmtrain config keys` and docs/config.md
// all read (the member and its default stay in run_config.hpp). Field::set converts a YAML value
// into the RunConfig field or throws dmtrain::Error naming `where` (file:line), the key, the
// expected type/range and the value found; Field::get returns the field as YAML for dumping.
// Every field has a non-empty doc, and an example: a valid value other than the default, which
// the schema's tests set to check that the key changes its member and nothing else.
#pragma once
#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::config {

struct Field {
  std::string key;       // e.g. "model.image_size"
  std::string type;      // "integer", "number", "boolean", "string", "list of integers", ...
  std::string expected;  // human text: "an integer >= 1", "one of linear, cosine", ...
  std::vector<std::string> choices;  // the allowed values of a string choice; else empty
  std::string default_value;  // YAML text of get(RunConfig{}), e.g. "32", "[1, 2, 2, 2]", "\"\""
  std::string example;        // YAML text of a valid value other than the default
  std::string doc;            // what the key means, one line
  std::function<void(RunConfig&, const YAML::Node&, const std::string& where)> set;
  std::function<YAML::Node(const RunConfig&)> get;
};

const std::vector<Field>& schema();
// The field for `key`, or nullptr.
const Field* find_field(const std::string& key);
// The valid key closest to `key` (edit distance), or "" when none is close.
std::string closest_key(const std::string& key);

// A YAML value as one line of flow-style text ("0.3", "[16, 8]", "\"\"").
std::string yaml_text(const YAML::Node& value);

// The key reference (schema_docs.cpp): every key with its type, default, allowed values and doc,
// in schema order under one heading per section. keys_markdown() is docs/config.md byte for byte
// (a test compares them); keys_text() is what `dmtrain config keys` prints on a terminal.
std::string keys_markdown();
std::string keys_text();

}  // namespace dmtrain::config
