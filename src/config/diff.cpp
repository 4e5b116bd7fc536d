// Implementation of dmtrain/config/diff.hpp.
#include "dmtrain/config/diff.hpp"

#include "dmtrain/config/schema.hpp"

namespace dmtrain::config {

std::vector<std::pair<std::string, std::string>> changed_keys(const RunConfig& a,
                                                              const RunConfig& b) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : schema()) {
    const std::string x = yaml_text(f.get(a)), y = yaml_text(f.get(b));
    if (x != y) out.emplace_back(f.key, x + " -> " + y);
  }
  return out;
}

}  // namespace dmtrain::config
