// Checkpoint directories that are either complete or ignored: a crash or kill mid-save never
// leaves something a resume would trust.
//
// Layout: <root>/iter_<12-digit iteration>/ holds the files of one checkpoint plus a manifest
// COMMITTED (optional header lines `format <N>`, the version of what the files hold, set by
// their writer, and `commit <S>`, the commit sequence number: 1 + the largest under root, so
// that "newer" means committed later, whatever the iterations; then one line per file: name,
// size in bytes, FNV-1a-64 hash), written last.
// Protocol (CheckpointWriter): files are written into iter_<k>.tmp/, each fsync'ed; the folder is
// renamed to iter_<k>/; then COMMITTED.tmp is written, fsync'ed and renamed to COMMITTED, and the
// folder is fsync'ed. A folder without COMMITTED, or whose files do not match the manifest, is
// not a checkpoint. The checkpointer knows files, not what is in them (that is the trainer's).
// Every filesystem failure throws dmtrain::Error naming the path and the cause (strerror); a
// writer that fails or is destroyed uncommitted removes its folder, and the committed
// checkpoints stay as they were.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace dmtrain::checkpoint {

class CheckpointWriter {
 public:
  // Starts iter_<iteration>.tmp under root (removing a stale one left by a crash).
  CheckpointWriter(const std::string& root, int64_t iteration);
  ~CheckpointWriter();  // uncommitted: removes the temporary folder
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  // The path to write file `name` to (inside the temporary folder).
  std::string path(const std::string& name) const;
  // Writes file `name`: writer(p) writes to a path p (a FIFO) whose bytes land in path(name)
  // through checked syscalls; a failed write (its strerror) or an exception of the writer becomes
  // a dmtrain::Error naming path(name). The writer must write p in place (no rename onto it).
  void write(const std::string& name, const std::function<void(const std::string& path)>& writer);
  // Makes the checkpoint visible and trusted; returns its final folder. An existing committed
  // checkpoint of the same iteration is replaced. format > 0 is recorded in the manifest.
  std::string commit(int64_t format = 0);

 private:
  void discard() noexcept;
  std::string root_, tmp_, final_;
  bool renamed_ = false, committed_ = false;
};

struct CheckpointInfo {
  int64_t iteration = 0;
  std::string dir;
  int64_t commit = 0;  // commit sequence number (0: a manifest from before they existed)
};

// Committed checkpoints under root (folders with a COMMITTED manifest), by iteration.
std::vector<CheckpointInfo> list_checkpoints(const std::string& root);
// Throws dmtrain::Error naming the folder and the file when `dir` is not a complete,
// uncorrupted checkpoint (no manifest, missing file, size or hash mismatch).
void verify_checkpoint(const std::string& dir);
// The format recorded in the manifest of a committed checkpoint; 1 when it records none (the
// manifests written before versions existed).
int64_t checkpoint_format(const std::string& dir);
// The newest committed checkpoint that verifies; corrupt newer ones are reported through the
// log and skipped (so a resume falls back to the previous good one).
std::optional<CheckpointInfo> latest_valid_checkpoint(const std::string& root);
// The most recently committed of `all` (largest commit number, then iteration); all non-empty.
const CheckpointInfo& newest_committed(const std::vector<CheckpointInfo>& all);
// Deletes committed checkpoints except the keep_last committed most recently (commit order, not
// iteration: a restarted run's iter_10 is newer than an older run's iter_30) and every
// keep_every-th iteration (keep_every = 0: none extra).
void prune_checkpoints(const std::string& root, int64_t keep_last, int64_t keep_every);
// Removes what an interrupted save leaves under root (iter_<k>.tmp/ folders and iter_<k>/
// folders without COMMITTED), logging each; returns their paths. Only with the run dir locked.
std::vector<std::string> remove_uncommitted(const std::string& root);

// Writes `text` to path through path.tmp (written, fsync'ed, renamed): path then holds the old
// or the new text, never a torn one. Throws dmtrain::Error naming the path and the cause.
void write_file_atomically(const std::string& path, const std::string& text);
// Test seam: runs before each CheckpointWriter::write with the file's path, so that a test can
// make a fault there (a symlink to /dev/full: writes fail with ENOSPC). Empty: none.
void set_checkpoint_write_hook(std::function<void(const std::string& path)> hook);

}  // namespace dmtrain::checkpoint
