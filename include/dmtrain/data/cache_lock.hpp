// CacheLock: an exclusive advisory lock (flock) on a lock file, held for the lifetime of the
// object, so that one process at a time checks for, writes and renames a dataset cache.
//
// The lock file ("<cache>.lock" by convention) is created when missing and never removed:
// removing it while another process waits on it would let a third lock a new file of the same
// name, and two writers would run at once. The kernel drops the lock when its holder exits, so a
// killed writer never leaves a stale lock. The holder writes its pid and host into the file;
// a process that has to wait logs that it waits and for whom, then blocks until the lock is
// free. flock locks are per open file, so two threads of one process exclude each other too,
// and Linux NFS clients forward them to the server.
// Errors: dmtrain::Error naming the lock file when it cannot be created or locked.
#pragma once
#include <string>

namespace dmtrain::data {

class CacheLock {
 public:
  // `what` names the guarded thing in the waiting message, e.g. "dataset cache 'x.dmdata'".
  CacheLock(const std::string& lock_path, const std::string& what);
  ~CacheLock();
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

  // True if another process held the lock when this one asked for it.
  bool waited() const { return waited_; }

 private:
  int fd_ = -1;
  bool waited_ = false;
};

}  // namespace dmtrain::data
