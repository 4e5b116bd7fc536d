// Levenshtein distance, for "did you mean" hints (the closest config key, the closest config
// file name).
#pragma once
#include <cstddef>
#include <string>

namespace dmtrain::util {

// The fewest single-character insertions, deletions and substitutions that turn a into b.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace dmtrain::util
