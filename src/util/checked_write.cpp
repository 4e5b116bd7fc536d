// Implementation of dmtrain/util/checked_write.hpp.
#include "dmtrain/util/checked_write.hpp"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::util {
namespace {

namespace fs = std::filesystem;

// Copies everything read from `in` into `out` until EOF; returns the errno of the first failed
// write (0: none). After a failure it reads on and discards, so that the writer never blocks.
int copy_all(int in, int out) {
  std::vector<char> buf(1 << 20);
  int err = 0;
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return err != 0 || n == 0 ? err : errno;
    for (ssize_t done = 0; err == 0 && done < n;) {
      const ssize_t w = ::write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) err = w < 0 ? errno : ENOSPC;
      if (w > 0) done += w;
    }
  }
}

}  // namespace

void write_checked(const std::string& dest,
                   const std::function<void(const std::string& path)>& writer,
                   const std::string& what) {
  // The writer writes into a FIFO whose writes never fail; a thread copies the bytes into dest
  // with checked syscalls. Why: LibTorch's PyTorchStreamWriter, after a failed write (a full
  // disk), throws again from its destructor, which is std::terminate: an abort, not an error.
  const int out = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) throw Error("cannot create '" + dest + "': " + std::strerror(errno));
  const fs::path d(dest);
  const std::string fifo = (d.parent_path() / ("." + d.filename().string() + ".fifo")).string();
  int in = -1, keep = -1;
  if (::mkfifo(fifo.c_str(), 0600) == 0) {
    in = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    // An open write end keeps the reader from seeing EOF before the writer has opened the FIFO.
    if (in >= 0) keep = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  }
  if (keep < 0) {
    // A filesystem without FIFOs (some network and FUSE mounts): the writer writes the file
    // itself. Failures then surface as the writer reports them (a full disk may abort there).
    const int err = errno;
    if (in >= 0) ::close(in);
    ::close(out);
    ::unlink(fifo.c_str());
    static std::once_flag warned;
    std::call_once(warned, [&] {
      log::warn("cannot make a FIFO beside '" + dest + "' (" + std::strerror(err) +
                "): files are written directly, without checked writes");
    });
    try {
      writer(dest);
    } catch (const c10::Error& e) {
      throw Error("cannot write " + what + " '" + dest + "': " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw Error("cannot write " + what + " '" + dest + "': " + e.what());
    }
    return;
  }
  ::fcntl(in, F_SETFL, 0);             // blocking reads from here on
  ::fcntl(in, F_SETPIPE_SZ, 1 << 20);  // best effort: fewer wake-ups for large files
  int write_err = 0;
  std::thread copier([&] { write_err = copy_all(in, out); });
  std::string detail;
  try {
    writer(fifo);
  } catch (const c10::Error& e) {
    detail = e.what_without_backtrace();
  } catch (const std::exception& e) {
    detail = e.what();
  }
  ::close(keep);
  copier.join();
  ::close(in);
  if (::close(out) != 0 && write_err == 0) write_err = errno;
  ::unlink(fifo.c_str());
  if (write_err != 0) {
    throw Error("cannot write " + what + " '" + dest + "': " + std::strerror(write_err));
  }
  if (!detail.empty()) throw Error("cannot write " + what + " '" + dest + "': " + detail);
}

}  // namespace dmtrain::util
