// Checkpoint directories that are either complete or ignored: a crash or kill mid-save never
// leaves something a resume would trust.
//
// Layout: <root>/iter_<12-digit iteration>/ holds the files of one checkpoint plus a manifest
// COMMITTED (an optional first line `format <N>`, the version of what the files hold, set by
// their writer; then one line per file: name, size in bytes, FNV-1a-64 hash), written last.
// Protocol (CheckpointWriter): files are written into iter_<k>.tmp/, each fsync'ed; the folder is
// renamed to iter_<k>/; then COMMITTED.tmp is written, fsync'ed and renamed to COMMITTED, and the
// folder is fsync'ed. A folder without COMMITTED, or whose files do not match the manifest, is
// not a checkpoint. The checkpointer knows files, not what is in them (that is the trainer's).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dmtrain::train {

class CheckpointWriter {
 public:
  // Starts iter_<iteration>.tmp under root (removing a stale one left by a crash).
  CheckpointWriter(const std::string& root, int64_t iteration);
  // The path to write file `name` to (inside the temporary folder).
  std::string path(const std::string& name) const;
  // Makes the checkpoint visible and trusted; returns its final folder. An existing committed
  // checkpoint of the same iteration is replaced. format > 0 is recorded in the manifest.
  std::string commit(int64_t format = 0);

 private:
  std::string root_, tmp_, final_;
};

struct CheckpointInfo {
  int64_t iteration = 0;
  std::string dir;
};

// Committed checkpoints under root (folders with a COMMITTED manifest), oldest first.
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
// Deletes committed checkpoints except the newest keep_last and every keep_every-th iteration
// (keep_every = 0: none extra).
void prune_checkpoints(const std::string& root, int64_t keep_last, int64_t keep_every);

}  // namespace dmtrain::train
