// Loader: an infinite stream of training batches from an in-memory ImageSet, shuffled per epoch,
// sharded over ranks, optionally flipped, prepared by worker threads.
//
// Order (see shuffle.hpp): rank r's stream is the concatenation over epochs e = 0, 1, ... of
// epoch_shard(N, seed, e, r, W); batch k is the next `batch_size` entries of that stream (a batch
// may span an epoch boundary, so no sample is skipped and tiny datasets work). Each sample is
// mirrored left-right iff random_flip && flip_decision(seed, e, index). Hence the output is a
// pure function of (set, options, starting position): worker timing never changes it.
//
// Position: {epoch, offset} of the NEXT sample in the rank's stream (offset < shard size).
// position() after k calls to next() is where a resumed loader must restore() to continue with
// batch k+1 unchanged; checkpoint it with the model.
//
// Threads: num_workers threads build up to `prefetch` batches ahead into a bounded, sequence-
// numbered buffer; next() hands them out in sequence order. num_workers = 0 builds in next().
// The loader is used from one thread (the trainer's); the ImageSet is shared read-only.
// A failure while building batch k is rethrown by the k-th next() call.
#pragma once
#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

struct Batch {
  at::Tensor images;  // float32 N,C,H,W in [-1, 1] (x / 127.5 - 1, as the references do)
  at::Tensor labels;  // int64 N, or undefined when the set has no labels
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t offset = 0;
  bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && offset == o.offset; }
};

struct LoaderOptions {
  int64_t batch_size = 1;  // per rank
  uint64_t seed = 0;
  int64_t rank = 0, world_size = 1;
  int num_workers = 2;
  bool random_flip = true;
  bool pin_memory = false;  // page-locked batches (only when CUDA is available)
  int prefetch = 4;         // batches built ahead, at most
};

// The machine's physical memory in bytes (0 when unknown).
double physical_memory_bytes();
// Throws dmtrain::Error ("out of memory: one batch of N images ... lower train.batch_size") when
// one float32 batch of batch_size images of values_per_image values exceeds ram_bytes: a batch
// that can never fit is refused by name before anything is allocated for it (on a machine that
// overcommits memory, filling terabytes runs for minutes before anything fails).
void check_batch_fits(int64_t batch_size, int64_t values_per_image, double ram_bytes);

class Loader {
 public:
  Loader(std::shared_ptr<const ImageSet> set, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next();
  LoaderPosition position() const { return position_; }
  // Continues from `pos` (as returned by position()); throws dmtrain::Error if out of range.
  void restore(const LoaderPosition& pos);

  int64_t shard_size() const { return shard_size_; }  // samples per rank per epoch
  const LoaderOptions& options() const { return options_; }

 private:
  struct Job {
    int64_t seq = 0;
    std::vector<int64_t> indices, epochs;
    LoaderPosition end;
  };
  struct Slot {
    Batch batch;
    LoaderPosition end;
    std::exception_ptr error;
  };

  Job plan_locked();  // takes the next batch_size stream entries from dispatch_
  Batch build(const Job& job) const;
  void start_workers();
  void stop_workers();
  void worker_loop();

  std::shared_ptr<const ImageSet> set_;
  LoaderOptions options_;
  int64_t shard_size_ = 0;

  LoaderPosition position_;  // after the last batch handed out
  LoaderPosition dispatch_;  // next stream entry to plan
  int64_t shard_epoch_ = -1;
  std::vector<int64_t> shard_;  // epoch_shard(...) of shard_epoch_

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t next_seq_ = 0, consumed_ = 0;
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> workers_;
};

}  // namespace dmtrain::data
