// Implementation of dmtrain/checkpoint/checkpointer.hpp.
#include "dmtrain/checkpoint/checkpointer.hpp"

#include <c10/util/StringUtil.h>

#include <utility>

#include "dmtrain/util/log.hpp"

namespace dmtrain::checkpoint {

Checkpointer::Checkpointer(TrainState& state, std::string root, const config::RunConfig& cfg)
    : state_(state), root_(std::move(root)), cfg_(cfg) {}

bool Checkpointer::due(const util::Progress& p) const {
  return util::every(cfg_.checkpoint.every, p.done) || p.signal != 0 || p.at_stop();
}

void Checkpointer::save(int64_t iteration) {
  const int64_t streak = state_.counters.consecutive_nonfinite;
  if (streak > 0) {
    log::warn(c10::str("iteration ", iteration, ": no checkpoint inside a streak of ", streak,
                       " non-finite steps; the last good one stays ",
                       last_.empty() ? std::string("the newest") : last_));
    return;
  }
  state_.save_checkpoint(root_, cfg_);
  last_ = state_.last_checkpoint();
  log::flush();
}

std::string Checkpointer::finish() {
  const std::string last = state_.wait_checkpoint();
  if (!last.empty()) last_ = last;
  log::flush();
  return last_;
}

}  // namespace dmtrain::checkpoint
