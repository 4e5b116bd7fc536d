// Small text helpers the areas share: Levenshtein distance for "did you mean" hints (the closest
// config key, the closest config file name) and trimming of list items on the command line.
#pragma once
#include <cstddef>
#include <string>

namespace dmtrain::util {

// The fewest single-character insertions, deletions and substitutions that turn a into b.
size_t edit_distance(const std::string& a, const std::string& b);

// `s` without leading and trailing spaces and tabs.
std::string trim(const std::string& s);

}  // namespace dmtrain::util
