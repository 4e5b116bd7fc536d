// Implementation of dmtrain/util/log.hpp. Compiled in dmtrain_log, which never sees LibTorch's
// include folder (see the header for why).
#include "dmtrain/util/log.hpp"

#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "dmtrain/util/error.hpp"

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

// A log file whose failed writes (a full disk) lose those lines only: each line is one write(),
// a line cut short is cut off the file, the first failure is said on stderr naming the file and
// the cause, and the first line written again is preceded by how many were lost. (spdlog's own
// file sink reports a failure through its error handler and leaves torn lines behind.)
class CheckedFileSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CheckedFileSink(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw Error("cannot open log file '" + path_ + "': " + std::strerror(errno));
    }
  }
  ~CheckedFileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    if (lost_ > 0) {
      const std::string note = std::to_string(lost_) + " log line(s) lost: '" + path_ +
                               "' could not be written (" + cause_ + ")";
      formatter_->format(spdlog::details::log_msg(msg.logger_name, spdlog::level::warn, note), buf);
    }
    formatter_->format(msg, buf);
    const std::string line(buf.data(), buf.size());
    struct stat st {};
    const off_t before = ::fstat(fd_, &st) == 0 ? st.st_size : -1;
    size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        cause_ = n < 0 ? std::strerror(errno) : "no bytes written";
        if (before >= 0 && ::ftruncate(fd_, before) != 0) {
          // The torn line stays; the next whole line still starts on a line of its own.
        }
        if (lost_ == 0) {
          std::fprintf(stderr,
                       "dmtrain: warning: cannot write log file '%s' (%s): its lines are "
                       "lost until it can be written again\n",
                       path_.c_str(), cause_.c_str());
        }
        ++lost_;
        return;
      }
      done += static_cast<size_t>(n);
    }
    lost_ = 0;
  }
  void flush_() override {}

 private:
  std::string path_;
  int fd_ = -1;
  int64_t lost_ = 0;
  std::string cause_;
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
