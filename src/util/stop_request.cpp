// Implementation of dmtrain/util/stop_request.hpp.
#include "dmtrain/util/stop_request.hpp"

#include <atomic>

namespace dmtrain::util {
namespace {
// Lock-free, so setting it is async-signal-safe.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the stop flag is set in a signal handler");
}  // namespace

void request_stop() noexcept {
  g_stop.store(true);
}

void clear_stop_request() noexcept {
  g_stop.store(false);
}

bool stop_requested() noexcept {
  return g_stop.load();
}

void throw_if_stop_requested(const std::string& what) {
  if (stop_requested()) throw StopRequested(what + " abandoned: a stop signal came");
}

}  // namespace dmtrain::util
