// The schema is the one declaration of every key: each field is documented and typed, its
// default is what RunConfig{} holds, setting it changes its own member and no other, and
// docs/config.md is what the schema generates.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/config/schema.hpp"

using dmtrain::config::dump_config;
using dmtrain::config::Field;
using dmtrain::config::RunConfig;
using dmtrain::config::schema;
using dmtrain::config::yaml_text;

namespace {

// A dumped config as "section.key" -> the value's YAML text.
void flatten(const YAML::Node& map, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  for (const auto& kv : map) {
    const std::string key = prefix + kv.first.as<std::string>();
    if (kv.second.IsMap()) {
      flatten(kv.second, key + ".", out);
    } else {
      out[key] = yaml_text(kv.second);
    }
  }
}
std::map<std::string, std::string> flat_dump(const RunConfig& cfg) {
  std::map<std::string, std::string> out;
  flatten(YAML::Load(dump_config(cfg)), "", out);
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST(Schema, EveryKeyIsDeclaredOnceWithTypeRangeDefaultExampleAndDoc) {
  std::set<std::string> keys;
  for (const Field& f : schema()) {
    SCOPED_TRACE(f.key);
    EXPECT_TRUE(keys.insert(f.key).second) << "declared twice";
    EXPECT_FALSE(f.doc.empty());
    EXPECT_FALSE(f.type.empty());
    EXPECT_FALSE(f.expected.empty());
    EXPECT_FALSE(f.default_value.empty());
    EXPECT_FALSE(f.example.empty());
    EXPECT_NE(f.example, f.default_value);
    if (f.type == "boolean") {
      EXPECT_EQ(f.example, f.default_value == "true" ? "false" : "true");
    }
    if (!f.choices.empty()) {
      EXPECT_EQ(f.type, "string");
      EXPECT_NE(std::find(f.choices.begin(), f.choices.end(), f.default_value), f.choices.end());
      EXPECT_NE(std::find(f.choices.begin(), f.choices.end(), f.example), f.choices.end());
    }
  }
  // dump_config writes every key of the schema and nothing else.
  std::set<std::string> dumped;
  for (const auto& kv : flat_dump(RunConfig{})) dumped.insert(kv.first);
  EXPECT_EQ(dumped, keys);
}

TEST(Schema, DefaultsAreReadFromRunConfigAndShownAsWritten) {
  EXPECT_EQ(dmtrain::config::find_field("timestep.clts.mu")->default_value, "0.3");
  EXPECT_EQ(dmtrain::config::find_field("model.channel_mult")->default_value, "[1, 2, 2, 2]");
  EXPECT_EQ(dmtrain::config::find_field("dist.timeout_s")->default_value, "600.0");
  EXPECT_EQ(dmtrain::config::find_field("optim.eps")->default_value, "1e-08");
  EXPECT_EQ(dmtrain::config::find_field("data.path")->default_value, "\"\"");
  // The shortest text is still exact: a value that needs 17 digits keeps them.
  RunConfig cfg;
  cfg.timestep.clts.mu = 0.1 + 0.2;
  RunConfig again;
  dmtrain::config::apply_overrides(again,
                                   {"timestep.clts.mu=" + flat_dump(cfg).at("timestep.clts.mu")});
  EXPECT_EQ(again.timestep.clts.mu, cfg.timestep.clts.mu);
}

// For every key: set its example on the defaults and compare the dumps. Exactly that key's line
// may differ, and to the example; another line changing means two keys share a member (or a
// setter writes the wrong one), no line changing means the setter writes nowhere visible.
TEST(Schema, SettingEachKeyChangesExactlyItsMember) {
  const RunConfig defaults;
  const auto before = flat_dump(defaults);
  const auto before_lines = lines_of(dump_config(defaults));
  for (const Field& f : schema()) {
    SCOPED_TRACE(f.key + "=" + f.example);
    RunConfig cfg;
    dmtrain::config::apply_overrides(cfg, {f.key + "=" + f.example});
    const auto after = flat_dump(cfg);
    std::vector<std::string> changed;
    for (const auto& [key, value] : after) {
      if (before.at(key) != value) changed.push_back(key);
    }
    EXPECT_EQ(changed, std::vector<std::string>{f.key});
    EXPECT_EQ(after.at(f.key), yaml_text(YAML::Load(f.example)));
    const auto after_lines = lines_of(dump_config(cfg));
    ASSERT_EQ(after_lines.size(), before_lines.size());
    int differing = 0;
    for (size_t i = 0; i < after_lines.size(); ++i) {
      if (after_lines[i] == before_lines[i]) continue;
      ++differing;
      const std::string leaf = f.key.substr(f.key.rfind('.') + 1) + ":";
      EXPECT_EQ(after_lines[i].find_first_not_of(' '), after_lines[i].find(leaf)) << after_lines[i];
    }
    EXPECT_EQ(differing, 1);
  }
}

TEST(Schema, KeyListsNameEveryKey) {
  const std::string text = dmtrain::config::keys_text();
  const std::string md = dmtrain::config::keys_markdown();
  for (const Field& f : schema()) {
    EXPECT_NE(text.find("  " + f.key + " = "), std::string::npos) << f.key;
    EXPECT_NE(md.find("| `" + f.key + "` |"), std::string::npos) << f.key;
  }
}

TEST(Schema, DocsConfigMdIsUpToDate) {
  const std::string path = std::string(DMTRAIN_SOURCE_DIR) + "/docs/config.md";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path << " is missing; generate it with\n"
                  << "  build/ci/apps/dmtrain config keys --format markdown > docs/config.md";
  std::stringstream file;
  file << in.rdbuf();
  const std::string want = dmtrain::config::keys_markdown();
  if (file.str() == want) return;
  // Name the first line that differs, so that the failure says what changed.
  const auto have_lines = lines_of(file.str()), want_lines = lines_of(want);
  size_t i = 0;
  while (i < have_lines.size() && i < want_lines.size() && have_lines[i] == want_lines[i]) ++i;
  ADD_FAILURE() << path << " is stale (the schema in src/config/schema.cpp changed); regenerate "
                << "it with\n  build/ci/apps/dmtrain config keys --format markdown > docs/config.md"
                << "\nfirst difference, line " << i + 1
                << ":\n  file:      " << (i < have_lines.size() ? have_lines[i] : "(end)")
                << "\n  generated: " << (i < want_lines.size() ? want_lines[i] : "(end)");
}
