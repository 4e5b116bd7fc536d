// Implementation of dmtrain/checkpoint/run_dir_lock.hpp.
#include "dmtrain/checkpoint/run_dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "dmtrain/checkpoint/run_dir.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::checkpoint {
namespace {

std::string read_all(int fd) {
  std::string out;
  char buf[512];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    at += n;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string holder_line() {
  char host[256] = "unknown";
  ::gethostname(host, sizeof host - 1);
  char when[32] = "";
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return "pid " + std::to_string(::getpid()) + ", host " + host + ", started " + when + "\n";
}

}  // namespace

RunDirLock::RunDirLock(const std::string& run_dir) {
  create_run_dir(run_dir);
  const std::string path = (std::filesystem::path(run_dir) / ".lock").string();
  // O_CLOEXEC: a program this process starts (an evaluation, a launcher) must not keep the lock.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error("cannot create the lock file '" + path + "': " + std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = read_all(fd_);
    ::close(fd_);
    if (err != EWOULDBLOCK) {
      throw Error("cannot lock '" + path + "': " + std::strerror(err));
    }
    throw Error("run dir " + run_dir + " is in use by another trainer (" +
                (holder.empty() ? std::string("that has not written its pid yet") : holder) +
                "; lock file " + path +
                "): wait for it to finish, stop it, or use another "
                "--run-dir");
  }
  previous_ = read_all(fd_);
  if (!previous_.empty()) {
    log::warn("run dir " + run_dir + ": taking over the lock of a trainer that is gone (" +
              previous_ + ")");
  }
  const std::string line = holder_line();
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size())) {
    const int err = errno;
    ::close(fd_);
    throw Error("cannot write the lock file '" + path + "': " + std::strerror(err));
  }
}

RunDirLock::~RunDirLock() {
  // Emptied, not deleted (see the header); an empty file tells the next trainer that this one
  // ended cleanly.
  if (::ftruncate(fd_, 0) != 0) log::warn("cannot empty the run dir's lock file");
  ::close(fd_);
}

}  // namespace dmtrain::checkpoint
