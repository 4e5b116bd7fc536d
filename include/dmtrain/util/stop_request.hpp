// A request to stop soon, for work that can take longer than a stop signal may wait.
//
// The trainer's signal handler (SIGINT, SIGTERM, SIGUSR1) calls request_stop(); the trainer clears
// it when it takes the signal at an iteration boundary. Long work between boundaries -- sample
// grids, FID evaluations, minutes of sampling -- calls throw_if_stop_requested() between its
// steps, so that the checkpoint a signal asks for is written within seconds instead of after the
// work (Slurm's SIGUSR1 comes 120 s before the end). StopRequested is what that work throws; its
// caller abandons the work with a warning and goes on to the checkpoint. Without a handler that
// sets it (dmtrain sample, fid) nothing ever requests a stop.
#pragma once
#include <stdexcept>
#include <string>

namespace dmtrain::util {

void request_stop() noexcept;  // async-signal-safe
void clear_stop_request() noexcept;
bool stop_requested() noexcept;

class StopRequested : public std::runtime_error {
 public:
  explicit StopRequested(const std::string& what) : std::runtime_error(what) {}
};
// Throws StopRequested("<what> abandoned: a stop signal came") when a stop was requested.
void throw_if_stop_requested(const std::string& what);

}  // namespace dmtrain::util
