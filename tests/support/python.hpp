// The Python the tests read our files with (torch, safetensors, tensorboard: the tools our users
// read them with). Candidates in order: $DMTRAIN_PYTHON; the python whose torch this build links
// ($DMTRAIN_TEST_PYTHON, which CTest sets from CMake's lookup); the bootstrap's virtual environment
// ($DMTRAIN_HOME/venv, default ~/.local/share/dmtrain/venv); python3 on PATH. find_python returns
// the first that imports every module named, "" when none does (the caller says which module
// is missing).
#pragma once
#include <cstdlib>
#include <string>
#include <vector>

namespace dmtrain::test_support {

inline std::string find_python(const std::vector<std::string>& modules) {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("DMTRAIN_PYTHON")) candidates.emplace_back(p);
  if (const char* p = std::getenv("DMTRAIN_TEST_PYTHON")) candidates.emplace_back(p);
  if (const char* home = std::getenv("DMTRAIN_HOME")) {
    candidates.push_back(std::string(home) + "/venv/bin/python3");
  } else if (const char* h = std::getenv("HOME")) {
    candidates.push_back(std::string(h) + "/.local/share/dmtrain/venv/bin/python3");
  }
  candidates.emplace_back("python3");
  std::string imports;
  for (const auto& m : modules) imports += "import " + m + ";";
  for (const auto& py : candidates) {
    if (py.empty()) continue;
    const std::string cmd = "'" + py + "' -c '" + imports + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

}  // namespace dmtrain::test_support
