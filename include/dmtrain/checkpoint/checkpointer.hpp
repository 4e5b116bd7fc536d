// Checkpointer: when a run writes its checkpoints, and the rule that keeps the last good one.
// The training loop offers it every iteration; it decides.
//
// Due after an iteration: every checkpoint.every iterations, after the job's last iteration
// (--stop-at or train.iterations), and when a stop or checkpoint signal arrived. Inside a
// streak of non-finite steps nothing is written (that state is not one to resume from, and the
// advice on divergence is to resume from the last good checkpoint with a lower lr): the last good
// one stays, with a warning.
#pragma once
#include <cstdint>
#include <string>

#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/config/run_config.hpp"
#include "dmtrain/util/progress.hpp"

namespace dmtrain::checkpoint {

class Checkpointer {
 public:
  // `root`: <run_dir>/checkpoints.
  Checkpointer(TrainState& state, std::string root, const config::RunConfig& cfg);

  bool due(const util::Progress& p) const;
  // Rank 0, when due: saves the state after `iteration` (checkpoint.async: returns once the
  // state is snapshotted; the files are written, committed and pruned in the background, one in
  // flight, its error thrown by the next save or finish), or warns inside a non-finite streak.
  void save(int64_t iteration);
  // Waits for the checkpoint in flight; returns the newest committed by this run ("" none).
  std::string finish();
  // The newest checkpoint committed by this run so far ("" none).
  const std::string& last() const { return last_; }

 private:
  TrainState& state_;
  std::string root_;
  const config::RunConfig& cfg_;
  std::string last_;
};

}  // namespace dmtrain::checkpoint
