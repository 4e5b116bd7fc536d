// AsyncCheckpointer: finishes checkpoints on a background thread while training goes on.
//
// A CheckpointJob is a checkpoint whose temporary folder exists (checkpoint/checkpoint.hpp's
// CheckpointWriter) with the files written on the training thread, plus the files still to
// write, each from host copies of the state (checkpoint/host_snapshot.hpp) that training no longer
// touches. The background thread waits for those copies, writes the files, commits the folder
// (the same protocol as a synchronous save: a kill -9 at any point leaves no trusted torn
// checkpoint) and prunes old ones.
//
// Guarantees:
//  - At most one checkpoint in flight: start() first waits for the previous one. So the jobs
//    commit in the order they were started (their commit numbers increase), and one set of host
//    copies suffices.
//  - A failure in the background (a full disk, a read-only file system, ...) is the same
//    dmtrain::Error (naming the path and the cause) a synchronous save throws; it is thrown on the
//    training thread by the next start() or wait(), once. The writer removes its temporary
//    folder and the committed checkpoints stay as they were (nothing is pruned).
//  - The destructor (the end of a run unwinding from an exception) waits for the one in flight;
//    an error it finds can only be logged there.
//  - Each commit is logged as `checkpoint <dir> (training stalled <s> s; written in the
//    background in <s> s)`: the stall is the training thread's time in the save (waiting for the
//    previous one, snapshot, small files) plus the fences' host time reported by add_stall().
#pragma once
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dmtrain/checkpoint/checkpoint.hpp"

namespace dmtrain::checkpoint {

struct CheckpointJob {
  std::unique_ptr<CheckpointWriter> writer;  // the temporary folder, small files written
  // Files written in the background, in this order: name and writer (as CheckpointWriter::write).
  std::vector<std::pair<std::string, std::function<void(const std::string&)>>> files;
  std::function<void()> before_write;  // runs first in the background (waits for the copies)
  // Runs on the training thread before it waits for the job (completes what before_write waits
  // for; see HostSnapshot::finish_copies). Must not throw.
  std::function<void()> before_join;
  std::string root;  // of the checkpoints (pruned after the commit)
  int64_t format = 0, keep_last = 1, keep_every = 0;
};

class AsyncCheckpointer {
 public:
  AsyncCheckpointer() = default;
  ~AsyncCheckpointer();
  AsyncCheckpointer(const AsyncCheckpointer&) = delete;
  AsyncCheckpointer& operator=(const AsyncCheckpointer&) = delete;

  // Waits for the checkpoint in flight (throwing its error), then finishes `job` in the
  // background. stalled_s: the training thread's time in this save so far.
  void start(CheckpointJob job, double stalled_s);
  // Waits for the checkpoint in flight; throws its error. Returns the newest folder committed
  // through this checkpointer ("" when none).
  std::string wait();
  // Whether a checkpoint was started and not yet waited for (it may have finished meanwhile).
  bool in_flight() const { return worker_.joinable(); }
  // Adds training-thread time that the checkpoint in flight cost (its fence) to its stall.
  void add_stall(double seconds);
  // Records a checkpoint committed without it (a synchronous save) as the newest.
  void set_committed(const std::string& dir) { last_committed_ = dir; }
  // The newest folder committed as of the last start()/wait() ("" when none).
  const std::string& last_committed() const { return last_committed_; }

 private:
  void run(CheckpointJob job);
  void join();

  std::thread worker_;
  std::function<void()> before_join_;  // of the job in flight
  std::exception_ptr error_;    // of the job last joined (written by the worker before it ends)
  std::string committed_;       // written by the worker: its folder once committed
  std::string last_committed_;  // the training thread's copy, updated on join
  std::atomic<int64_t> stall_ns_{0};
  std::chrono::steady_clock::time_point began_;
};

}  // namespace dmtrain::checkpoint
