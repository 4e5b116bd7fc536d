// Parallel sweeps (`dmtrain sweep --jobs N`): up to N runs of a sweep at once, each its own child
// process (and run dir, resume, log), spread over the visible GPUs, with a progress line + ETA.
//
// Contract:
//  - Scheduling is pure (SweepScheduler, pick_gpu): runs start in their order; each started run
//    gets the GPU with the fewest running runs (of equals the first in the list), so N <= #GPUs
//    gives one run per GPU and a larger N shares them evenly. A GPU listed twice takes twice the
//    runs. No GPUs: runs start with the environment unchanged.
//  - run_sweep_parallel fork/execs argv(run) per run with CUDA_VISIBLE_DEVICES=<its GPU>, in its
//    own process group (a terminal's Ctrl-C reaches a child once, through the sweep), dying with
//    the sweep (PR_SET_PDEATHSIG = SIGTERM: it checkpoints, and never trains behind a
//    re-launch's back). With child_logs its stdout/stderr append to <run_dir>/sweep_child.log.
//  - With mps_dir and jobs > 1 a CUDA MPS control daemon (MpsDaemon, pipes in <mps_dir>/pipe) is
//    started before the first child, every child gets its CUDA_MPS_PIPE_DIRECTORY and
//    CUDA_MPS_LOG_DIRECTORY, and it is stopped once every child has exited (also after a failure
//    or a signal). A daemon that does not start is a warning: the runs then time-slice the GPU.
//  - A run whose run dir says it finished (sweep/run_status.hpp) is skipped. A run exiting non-zero
//  other than 130 (a
//    signal other than SIGINT/SIGTERM counts as 128 + signo, e.g. the OOM killer's 137) is
//    recorded and the others go on.
//  - SIGINT/SIGTERM to the sweep: SIGINT goes to every running child (it checkpoints at its next
//    iteration boundary and exits 130), nothing new starts, the sweep waits for all of them. A
//    child exiting 130 by itself also stops new starts; the running ones go on to their end.
//  - Returns 0, 130 when interrupted, else the first non-zero exit code (in order of exit). The
//    sweep's own signal handlers are restored before it returns.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dmtrain/sweep/sweep.hpp"

namespace dmtrain::sweep {

// The index of the GPU with the fewest running runs (the first of equals); -1 when there is none.
int pick_gpu(const std::vector<int64_t>& running_per_gpu);

// Which run starts next and on which GPU. No I/O: the executor tells it what ended.
class SweepScheduler {
 public:
  struct Start {
    size_t run = 0;   // position in the list of runs handed to the executor
    std::string gpu;  // CUDA_VISIBLE_DEVICES value; "" = leave the environment as is
  };
  SweepScheduler(size_t runs, int64_t jobs, std::vector<std::string> gpus);
  // The next run to start now, marked running; nullopt when `jobs` runs are running, none waits,
  // or stop() was called.
  std::optional<Start> next();
  // A running run ended: its slot and GPU are free again.
  void finished(size_t run);
  // Start nothing more (interrupted).
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }
  const std::deque<size_t>& waiting() const { return waiting_; }
  int64_t running() const { return running_; }

 private:
  int64_t jobs_;
  std::vector<std::string> gpus_;
  std::vector<int64_t> load_;  // running runs per GPU
  std::vector<int> gpu_of_;    // per run: its GPU index while running, else -1
  std::deque<size_t> waiting_;
  int64_t running_ = 0;
  bool stopped_ = false;
};

// "0, 2,3" -> {"0", "2", "3"} (empty entries dropped). "none" and "" -> no GPUs; as CUDA does,
// the list ends at an entry starting with '-' ("-1" hides every GPU).
std::vector<std::string> parse_gpu_list(const std::string& list);
// The number of "GPU <n>: ..." lines of `nvidia-smi -L` output.
int64_t count_nvidia_smi_gpus(const std::string& output);
// The GPUs the runs are spread over: CUDA_VISIBLE_DEVICES when set, else 0..n-1 with n counted
// by `nvidia-smi -L`, else by /proc/driver/nvidia/gpus/*; none on a CPU machine.
std::vector<std::string> visible_gpus();

// Iterations per second of a run that logged `step` `seconds` after it started at start_step;
// NaN while it has logged nothing new.
double iteration_rate(int64_t start_step, int64_t step, double seconds);
// Seconds to do `remaining_iterations` (of the running and waiting runs) at the summed finite
// rates of the running runs: 0 when nothing remains, NaN when no rate is known yet.
double sweep_eta_seconds(int64_t remaining_iterations, const std::vector<double>& running_rates);
// "?" (NaN), "42s", "7m05s", "3h12m", "2d03h".
std::string format_eta(double seconds);

struct SweepCounts {
  int64_t total = 0, done = 0, running = 0, waiting = 0, failed = 0, interrupted = 0;
};
// "sweep: 3/8 done, 4 running, 1 waiting, 0 failed[, 1 interrupted], ETA 1h05m"
std::string progress_line(const SweepCounts& counts, double eta_seconds);

struct ParallelSweepOptions {
  int64_t jobs = 1;
  std::vector<std::string> gpus;  // one CUDA_VISIBLE_DEVICES value each; empty = leave it
  bool child_logs = false;        // children's stdout/stderr -> <run_dir>/sweep_child.log
  std::string mps_dir;            // non-empty: run the children under CUDA MPS (when jobs > 1)
  // Progress: on a terminal one line redrawn in place every refresh_seconds and at each run's
  // start and end; otherwise plain lines, at most one per plain_seconds (and a last one).
  bool tty = false;
  double refresh_seconds = 10;
  double plain_seconds = 60;
  std::function<void(const std::string&)> print;  // where progress text goes; default stderr
};

// The command of a run, argv[0] a path or a name looked up in PATH (e.g. run_argv + spec).
using SweepArgv = std::function<std::vector<std::string>(const SweepRun&)>;
int run_sweep_parallel(const std::vector<SweepRun>& runs, const SweepArgv& argv,
                       const ParallelSweepOptions& options);

}  // namespace dmtrain::sweep
