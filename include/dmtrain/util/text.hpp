// Small text helpers the areas share: Levenshtein distance for "did you mean" hints (the closest
// config key, the closest config file name), trimming of list items on the command line, and
// reading a command-line number whole.
#pragma once
#include <cstddef>
#include <optional>
#include <string>

namespace dmtrain::util {

// The fewest single-character insertions, deletions and substitutions that turn a into b.
size_t edit_distance(const std::string& a, const std::string& b);

// `s` without leading and trailing spaces and tabs.
std::string trim(const std::string& s);

// `s` as a number when all of it is one ("0.05", "1e-3"; not "", "0.05x" or "x"), else nullopt.
std::optional<double> parse_number(const std::string& s);

}  // namespace dmtrain::util
