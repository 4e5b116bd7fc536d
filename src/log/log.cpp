// Implementation of dmtrain/util/log.hpp. Compiled in dmtrain_log, which never sees LibTorch's
// include folder (see the header for why).
#include "dmtrain/util/log.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <mutex>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/record_appender.hpp"

namespace dmtrain::log {
namespace {

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto l = std::make_shared<spdlog::logger>("dmtrain", console);
    l->set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] %v");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return instance;
}

// A log file whose failed writes (a full disk) lose those lines only (util/record_appender.hpp):
// the first failure is said on stderr naming the file and the cause, and the first line written
// again is preceded by how many were lost. (spdlog's own file sink reports a failure through its
// error handler and leaves torn lines behind.)
class CheckedFileSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CheckedFileSink(const std::string& path) : file_(path, "log file") {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    if (file_.lost() > 0) {
      const std::string note = std::to_string(file_.lost()) + " log line(s) lost: '" +
                               file_.path() + "' could not be written (" + file_.cause() + ")";
      formatter_->format(spdlog::details::log_msg(msg.logger_name, spdlog::level::warn, note), buf);
    }
    formatter_->format(msg, buf);
    const auto out = file_.append(std::string(buf.data(), buf.size()));
    if (out.first_loss) {
      // Inside the logger: straight to stderr.
      std::fprintf(stderr,
                   "dmtrain: warning: cannot write log file '%s' (%s): its lines are lost until "
                   "it can be written again\n",
                   file_.path().c_str(), file_.cause().c_str());
    }
  }
  void flush_() override {}

 private:
  util::RecordAppender file_;
};

spdlog::level::level_enum to_spdlog(Level level) {
  static const spdlog::level::level_enum map[] = {spdlog::level::debug, spdlog::level::info,
                                                  spdlog::level::warn, spdlog::level::err,
                                                  spdlog::level::off};
  return map[static_cast<int>(level)];
}

}  // namespace

void debug(const std::string& message) {
  logger()->debug(message);
}
void info(const std::string& message) {
  logger()->info(message);
}
void warn(const std::string& message) {
  logger()->warn(message);
}
void error(const std::string& message) {
  logger()->error(message);
}

void set_level(Level level) {
  logger()->set_level(to_spdlog(level));
}

void set_console_level(Level level) {
  logger()->sinks().front()->set_level(to_spdlog(level));
}

Level parse_level(const std::string& name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw Error("log level '" + name + "' is not one of debug, info, warn, error, off");
}

void add_file_sink(const std::string& path) {
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  auto sink = std::make_shared<CheckedFileSink>(path);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  logger()->sinks().push_back(sink);
}

void flush() {
  logger()->flush();
}

}  // namespace dmtrain::log
