// The environment and argument vectors of a child process (the sweep's runs, the MPS control
// program), built before fork/spawn: the child of a multithreaded parent should make only
// async-signal-safe calls, so nothing is allocated after the fork.
//
// Contract: environment_with(overrides) is this process's environment with every NAME=value
// of `overrides` in place of the NAME= entry it had (if any), the overrides last, in their order.
// c_strings(v) points at v's strings, null-terminated, for execve / posix_spawn (valid while v
// lives and is not changed).
#pragma once
#include <string>
#include <vector>

namespace dmtrain::util {

std::vector<std::string> environment_with(const std::vector<std::string>& overrides);
std::vector<char*> c_strings(std::vector<std::string>& v);

}  // namespace dmtrain::util
