// Logging facade over spdlog.
//
// Why a facade: the LibTorch wheel ships its own fmt (12.x) in its include folder, and the
// system's spdlog is built against the system's fmt (9.x). A translation unit that sees both
// fails to compile, so spdlog lives in its own library (dmtrain_log, no LibTorch include path) and
// the rest of the project logs through these functions, formatting with c10::str or streams.
//
// Contract: thread-safe; the console sink always exists; add_file_sink adds a log file (e.g. the
// run directory's train.log) that receives every message from then on.
#pragma once
#include <string>

namespace dmtrain::log {

enum class Level { kDebug, kInfo, kWarn, kError, kOff };

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

// Messages below `level` are dropped (console and files alike).
void set_level(Level level);
// Parses "debug" | "info" | "warn" | "error" | "off"; throws dmtrain::Error otherwise.
Level parse_level(const std::string& name);
// Messages below `level` are not shown on the console (files still get them): the ranks > 0 of
// a distributed run keep the console for errors and write everything to their own log file.
void set_console_level(Level level);
// Appends every later message to `path` (created with its parent folders if needed).
void add_file_sink(const std::string& path);
// Flushes all sinks (called before exit and after a checkpoint).
void flush();

}  // namespace dmtrain::log
