// dmtrain::Error: the one exception type for bad user input (config, data, checkpoint, command
// line). Its message names the file, key or value and what was expected; `main` prints it and
// exits non-zero. Programming errors stay TORCH_CHECK / assertions.
#pragma once
#include <stdexcept>
#include <string>

namespace dmtrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace dmtrain
