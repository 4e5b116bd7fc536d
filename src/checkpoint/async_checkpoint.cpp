// Implementation of dmtrain/checkpoint/async_checkpoint.hpp.
#include "dmtrain/checkpoint/async_checkpoint.hpp"

#include <cstdio>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::checkpoint {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds as a plain number (the log lines are grepped for them).
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

}  // namespace

AsyncCheckpointer::~AsyncCheckpointer() {
  if (!worker_.joinable()) return;
  join();
  if (error_) {
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      log::error(std::string("checkpoint written in the background failed: ") + e.what());
    }
  }
}

void AsyncCheckpointer::join() {
  if (before_join_) std::exchange(before_join_, nullptr)();
  worker_.join();
  if (!committed_.empty()) last_committed_ = committed_;
}

std::string AsyncCheckpointer::wait() {
  if (worker_.joinable()) join();
  if (error_) {
    // Thrown once: the failed checkpoint is gone, the next save starts afresh.
    std::exception_ptr e = std::exchange(error_, nullptr);
    std::rethrow_exception(e);
  }
  return last_committed_;
}

void AsyncCheckpointer::add_stall(double seconds) {
  stall_ns_.fetch_add(static_cast<int64_t>(seconds * 1e9));
}

void AsyncCheckpointer::start(CheckpointJob job, double stalled_s) {
  const auto t0 = Clock::now();
  wait();
  stall_ns_.store(static_cast<int64_t>(
      (stalled_s + std::chrono::duration<double>(Clock::now() - t0).count()) * 1e9));
  committed_.clear();
  began_ = Clock::now();
  before_join_ = std::move(job.before_join);
  worker_ = std::thread([this, job = std::move(job)]() mutable { run(std::move(job)); });
}

void AsyncCheckpointer::run(CheckpointJob job) {
  try {
    if (job.before_write) job.before_write();
    for (const auto& [name, write] : job.files) job.writer->write(name, write);
    const std::string dir = job.writer->commit(job.format);
    job.writer.reset();
    job.files.clear();  // drops the host mirrors' last references here, not on another thread
    committed_ = dir;   // trusted from here on, even should the prune fail
    prune_checkpoints(job.root, job.keep_last, job.keep_every);
    const double secs = std::chrono::duration<double>(Clock::now() - began_).count();
    log::info("checkpoint " + dir + " (training stalled " +
              seconds_text(static_cast<double>(stall_ns_.load()) * 1e-9) +
              " s; written in the background in " + seconds_text(secs) + " s)");
    log::flush();
  } catch (...) {
    // The writer (destroyed here if not above) removes its temporary folder.
    job.writer.reset();
    error_ = std::current_exception();
  }
}

}  // namespace dmtrain::checkpoint
