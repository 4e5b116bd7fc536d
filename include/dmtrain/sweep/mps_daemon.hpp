// MpsDaemon: the CUDA MPS (Multi-Process Service) control daemon of a sweep whose runs share a GPU
// (`dmtrain sweep --mps`). Under MPS the kernels of several processes can run on a GPU at once
// instead of taking turns (time-slicing). MPS is a user-space daemon: it changes no GPU settings
// (no clocks, compute mode or MIG).
//
// Contract:
//  - start(dir) creates <dir>/pipe and <dir>/log (dir made absolute) and runs
//    `nvidia-cuda-mps-control -d`, found on PATH, with CUDA_MPS_PIPE_DIRECTORY and
//    CUDA_MPS_LOG_DIRECTORY set to them (the rest of the environment as is), in its own process
//    group, its output in <dir>/log/control_output.log (emptied first). True when it exited 0;
//    otherwise false after a warning naming the cause (not found on PATH, its exit code or signal,
//    its last line of output, or the directory that could not be created), and nothing to stop. It
//    does not throw for these: the caller goes on without MPS. On a started daemon it returns true.
//  - client_env(): {"CUDA_MPS_PIPE_DIRECTORY=<dir>/pipe", "CUDA_MPS_LOG_DIRECTORY=<dir>/log"}
//    while started, else empty; a process uses this daemon only with these in its environment.
//  - stop() writes "quit\n" to the stdin of `nvidia-cuda-mps-control` (same environment) and waits
//    for it to exit; only when started, once. A failure is a warning. The destructor stops.
#pragma once
#include <string>
#include <vector>

namespace dmtrain::sweep {

class MpsDaemon {
 public:
  MpsDaemon() = default;
  ~MpsDaemon();
  MpsDaemon(const MpsDaemon&) = delete;
  MpsDaemon& operator=(const MpsDaemon&) = delete;

  bool start(const std::string& dir);
  void stop();
  bool started() const { return !pipe_dir_.empty(); }
  std::vector<std::string> client_env() const;

 private:
  std::string pipe_dir_, log_dir_;  // empty while not started
};

}  // namespace dmtrain::sweep
