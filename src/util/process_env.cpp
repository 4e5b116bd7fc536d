// Implementation of dmtrain/util/process_env.hpp.
#include "dmtrain/util/process_env.hpp"

#include <algorithm>
#include <cstring>

extern char** environ;

namespace dmtrain::util {

std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const bool replaced = std::any_of(
        overrides.begin(), overrides.end(),
        [&](const std::string& s) { return std::strncmp(*e, s.c_str(), s.find('=') + 1) == 0; });
    if (!replaced) env.emplace_back(*e);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> p;
  for (auto& s : v) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

}  // namespace dmtrain::util
