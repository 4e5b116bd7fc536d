// RecordAppender: whole records appended to a file that is read while it grows (metrics.jsonl,
// TensorBoard event files, train.log), losing only what cannot be written.
//
// Each append() is one write loop of `bytes` (one or more whole records). When it fails (a full
// disk, a file-size limit) the file is cut back to its size before the call, so no torn record
// stays for a reader or for the next record to run into, and the records are counted lost. The
// caller says what happened, in its own words, from the Outcome: the first failure of a run of
// them (first_loss, with its cause), and the first success after them (recovered: how many were
// lost). lost() and cause() tell a caller that must say so inside the file itself.
// The constructor opens `path` for appending (created 0644) or throws dmtrain::Error naming
// `what`, the path and the cause. Not thread-safe: one writer per file.
#pragma once
#include <cstdint>
#include <string>

namespace dmtrain::util {

class RecordAppender {
 public:
  RecordAppender(std::string path, const std::string& what);
  ~RecordAppender();
  RecordAppender(const RecordAppender&) = delete;
  RecordAppender& operator=(const RecordAppender&) = delete;

  struct Outcome {
    bool written = false;
    bool first_loss = false;  // this failure starts a run of losses
    int64_t recovered = 0;    // written after this many records were lost (0: none)
  };
  Outcome append(const std::string& bytes, int64_t records = 1);

  const std::string& path() const { return path_; }
  int64_t lost() const { return lost_; }               // since the last append that was written
  const std::string& cause() const { return cause_; }  // strerror of the last failure

 private:
  std::string path_;
  int fd_ = -1;
  int64_t lost_ = 0;
  std::string cause_;
};

}  // namespace dmtrain::util
