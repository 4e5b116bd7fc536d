#include "dmtrain/data/cache_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::data {

CacheLock::CacheLock(const std::string& lock_path, const std::string& what) {
  const std::filesystem::path parent = std::filesystem::path(lock_path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    throw Error(c10::str("cannot create lock file '", lock_path, "' for ", what, ": ",
                         std::strerror(errno)));
  }
  int rc = ::flock(fd_, LOCK_EX | LOCK_NB);
  if (rc != 0 && errno == EWOULDBLOCK) {
    waited_ = true;
    char holder[256] = {};
    const ssize_t k = ::pread(fd_, holder, sizeof holder - 1, 0);
    std::string who = k > 0 ? std::string(holder, static_cast<size_t>(k)) : std::string();
    while (!who.empty() && (who.back() == '\n' || who.back() == '\0')) who.pop_back();
    log::info(c10::str("waiting for another process (", who.empty() ? "unknown" : who,
                       ") to finish writing ", what, " (lock ", lock_path, ")"));
    do {
      rc = ::flock(fd_, LOCK_EX);
    } while (rc != 0 && errno == EINTR);
  }
  if (rc != 0) {
    const int err = errno;
    ::close(fd_);
    throw Error(c10::str("cannot lock '", lock_path, "' for ", what, ": ", std::strerror(err)));
  }
  char host[128] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string me = c10::str("pid ", ::getpid(), " on ", host, "\n");
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, me.data(), me.size(), 0);
}

CacheLock::~CacheLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor of the open file drops the lock
}

}  // namespace dmtrain::data
