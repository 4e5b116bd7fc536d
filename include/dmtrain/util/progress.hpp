// Progress: where a run stands after an iteration, the one thing the periodic components of a
// run (metrics, checkpoints, sample grids, FID) look at to decide whether they are due. Each
// applies its own interval with every() and its own rule for the job's last iteration.
#pragma once
#include <cstdint>

namespace dmtrain::util {

struct Progress {
  int64_t done = 0;   // iterations done
  int64_t stop = 0;   // the iteration this job stops after (--stop-at, else total)
  int64_t total = 0;  // the run's iterations (train.iterations)
  int signal = 0;     // the stop or checkpoint signal every rank agreed on (0: none)
  bool at_stop() const { return done == stop; }
  bool at_end() const { return done == total; }
};

// "Every n iterations": true after iterations n, 2n, ...; never for n <= 0.
inline bool every(int64_t n, int64_t done) {
  return n > 0 && done % n == 0;
}

}  // namespace dmtrain::util
