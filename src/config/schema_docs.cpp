// The key reference, formatted from schema() alone: keys_markdown() is docs/config.md (a test in
// tests/config/ fails when the file is stale), keys_text() what `dmtrain config keys` prints.
// Both list the keys in schema order, one heading per section (the key's first component).
#include <sstream>

#include "dmtrain/config/schema.hpp"

namespace dmtrain::config {
namespace {

std::string section_of(const std::string& key) {
  return key.substr(0, key.find('.'));
}

// A table cell: a literal '|' would end the cell (SpeeD's "|m - t|").
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string code(const std::string& s) {
  return "`" + cell(s) + "`";
}

// The allowed values: each choice as code, else the range text the error messages use.
std::string allowed(const Field& f) {
  if (f.choices.empty()) return cell(f.expected);
  std::string out;
  for (const auto& c : f.choices) out += (out.empty() ? "" : ", ") + code(c);
  return out;
}

}  // namespace

std::string keys_markdown() {
  std::ostringstream md;
  md << "<!-- Generated from src/config/schema.cpp: dmtrain config keys --format markdown > "
        "docs/config.md -->\n"
        "# Config keys\n\n"
        "Every key of a run config, with its type, default, allowed values and meaning. A key is "
        "set in a\nYAML file nested by its dots (`timestep:`, under it `clts:`, under that "
        "`mu: 0.2`) or on the command\nline (`--set timestep.clts.mu=0.2`); precedence and "
        "error messages: [README](../README.md#using-dmtrain).\nRules that tie keys together "
        "(e.g. `optim.beta1_min` <= `optim.beta1`) are checked after loading.\n";
  std::string section;
  for (const auto& f : schema()) {
    if (section_of(f.key) != section) {
      section = section_of(f.key);
      md << "\n## " << section << "\n\n"
         << "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    }
    md << "| " << code(f.key) << " | " << f.type << " | " << code(f.default_value) << " | "
       << allowed(f) << " | " << cell(f.doc) << " |\n";
  }
  return md.str();
}

std::string keys_text() {
  std::ostringstream out;
  std::string section;
  for (const auto& f : schema()) {
    if (section_of(f.key) != section) {
      out << (section.empty() ? "" : "\n") << section_of(f.key) << "\n";
      section = section_of(f.key);
    }
    out << "  " << f.key << " = " << f.default_value << "  (" << f.type << ": " << f.expected
        << ")\n      " << f.doc << "\n";
  }
  return out.str();
}

}  // namespace dmtrain::config
