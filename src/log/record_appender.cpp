// Implementation of dmtrain/util/record_appender.hpp. In dmtrain_log (no LibTorch), whose file
// sink appends through it.
#include "dmtrain/util/record_appender.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dmtrain/util/error.hpp"

namespace dmtrain::util {

RecordAppender::RecordAppender(std::string path, const std::string& what) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error("cannot open " + what + " '" + path_ + "' for appending: " + std::strerror(errno));
  }
}

RecordAppender::~RecordAppender() {
  if (fd_ >= 0) ::close(fd_);
}

RecordAppender::Outcome RecordAppender::append(const std::string& bytes, int64_t records) {
  Outcome out;
  struct stat st {};
  const off_t before = ::fstat(fd_, &st) == 0 ? st.st_size : -1;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      cause_ = n < 0 ? std::strerror(errno) : std::strerror(ENOSPC);
      // A torn record is worse than a lost one: readers would stop at it, or run it into the next.
      if (done > 0 && before >= 0 && ::ftruncate(fd_, before) != 0) {
        cause_ +=
            std::string(", and the torn record could not be cut off: ") + std::strerror(errno);
      }
      out.first_loss = lost_ == 0;
      lost_ += records;
      return out;
    }
    done += static_cast<size_t>(n);
  }
  out.written = true;
  out.recovered = lost_;
  lost_ = 0;
  return out;
}

}  // namespace dmtrain::util
