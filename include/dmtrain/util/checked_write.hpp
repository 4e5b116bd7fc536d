// write_checked: a file written by a function that may not survive a failed write, written safely.
//
// LibTorch's PyTorchStreamWriter (torch::save, OutputArchive::save_to), after a failed write (a
// full disk), throws again from its destructor, which is std::terminate: an abort, not an error.
// write_checked hands the writer a FIFO whose writes never fail, and a thread copies its bytes
// into `dest` with checked syscalls. A failed write (its strerror) or an exception of the writer
// becomes a dmtrain::Error "cannot write <what> '<dest>': <cause>". The writer must write its
// path in place (no rename onto it). Where no FIFO can be made (some network and FUSE mounts), the
// writer writes dest itself, with a warning once.
#pragma once
#include <functional>
#include <string>

namespace dmtrain::util {

void write_checked(const std::string& dest,
                   const std::function<void(const std::string& path)>& writer,
                   const std::string& what);

}  // namespace dmtrain::util
