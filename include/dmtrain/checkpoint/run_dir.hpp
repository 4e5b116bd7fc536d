// What a run directory guarantees besides its lock (run_dir_lock.hpp): it holds one run.
//
// Contract: a fresh start (no --resume) in a run dir that holds committed checkpoints is refused,
// as is a --resume auto that finds checkpoints of which none verifies: either would mix a new run
// with an old one (and the old one's checkpoints would be pruned or overwritten). The error names
// the dir, the newest checkpoint and the ways out: --resume auto, or --restart, which moves the
// previous run (checkpoints/, metrics.jsonl, train*.log, samples/, ema_*, config.yaml,
// tensorboard/, posthoc_ema/) into <run_dir>/previous-<UTC time>/ and never deletes it. Every
// filesystem failure throws dmtrain::Error naming the path and the cause (strerror).
#pragma once
#include <cstdint>
#include <string>

namespace dmtrain::checkpoint {

// Creates dir and its parents.
void create_run_dir(const std::string& dir);
// Opens (creating) path for appending and closes it: a log that cannot be written fails at the
// start of the run, naming the file, not at its first line.
void check_appendable(const std::string& path);
// How a run starts in its run dir: `resume` as --resume ("": fresh, "auto", or a checkpoint
// folder), `restart` as --restart.
struct RunStart {
  std::string resume;
  bool restart = false;
};
// Before the run is built. Rank 0 (main) with the run dir locked does --restart's move; every
// rank checks a fresh start (the other ranks not under --restart: rank 0 moves meanwhile).
void prepare_run_dir(const std::string& run_dir, const RunStart& start, bool main);
// After the resume: throws when --resume auto found checkpoints but resumed from none.
void check_resumed(const std::string& run_dir, const RunStart& start, int64_t iteration);
// --restart's move: returns the previous-<UTC time> folder, or "" when there was nothing to move.
std::string move_previous_run(const std::string& run_dir);

}  // namespace dmtrain::checkpoint
