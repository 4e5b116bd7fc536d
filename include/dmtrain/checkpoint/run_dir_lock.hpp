// RunDirLock: a run directory belongs to one trainer at a time.
//
// Contract: the constructor creates <run_dir> (and its parents) and takes an exclusive,
// non-blocking flock() on <run_dir>/.lock, then writes "pid <pid>, host <host>, started <UTC
// time>" into it; the lock is held until the object is destroyed (which empties the file) or
// the process dies. When another trainer (another process, or another RunDirLock of this one)
// holds it, it throws dmtrain::Error naming the run dir and the holder's pid, host and start
// time. A non-empty lock file that nobody holds was left by a trainer that died (the kernel drops
// flock locks with their process): it is taken over, with a warning naming the previous holder.
// The file is never deleted: a deleted lock file lets two trainers lock two different files.
// Filesystem failures throw dmtrain::Error naming the path and the cause (strerror).
#pragma once
#include <string>

namespace dmtrain::checkpoint {

class RunDirLock {
 public:
  explicit RunDirLock(const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

  // What the lock file said when a dead trainer's file was taken over; "" when none was.
  const std::string& taken_over_from() const { return previous_; }

 private:
  int fd_ = -1;
  std::string previous_;
};

}  // namespace dmtrain::checkpoint
