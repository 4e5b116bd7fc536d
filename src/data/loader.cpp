#include "dmtrain/data/loader.hpp"

#include <unistd.h>

#include "dmtrain/data/shuffle.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::data {

double physical_memory_bytes() {
  return static_cast<double>(::sysconf(_SC_PHYS_PAGES)) *
         static_cast<double>(::sysconf(_SC_PAGE_SIZE));
}

void check_batch_fits(int64_t batch_size, int64_t values_per_image, double ram_bytes) {
  const double batch_bytes =
      static_cast<double>(batch_size) * static_cast<double>(values_per_image) * sizeof(float);
  if (ram_bytes > 0 && batch_bytes > ram_bytes) {
    throw Error(c10::str("out of memory: one batch of ", batch_size, " images of ",
                         values_per_image, " values needs ", batch_bytes / (1u << 30),
                         " GiB of host memory (float32), more than this machine's ",
                         ram_bytes / (1u << 30),
                         " GiB; lower train.batch_size (dmtrain bench: --batch)"));
  }
}

Loader::Loader(std::shared_ptr<const ImageSet> set, LoaderOptions options)
    : set_(std::move(set)), options_(options) {
  TORCH_CHECK(set_ != nullptr, "Loader: null ImageSet");
  set_->validate("Loader");
  if (options_.batch_size < 1) {
    throw Error(c10::str("data loader: batch_size must be >= 1, got ", options_.batch_size));
  }
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    throw Error(c10::str("data loader: rank ", options_.rank,
                         " is not in [0, world_size=", options_.world_size, ")"));
  }
  shard_size_ = set_->size() / options_.world_size;
  if (shard_size_ < 1) {
    throw Error(c10::str("data loader: a dataset of ", set_->size(),
                         " images cannot give every one of ", options_.world_size,
                         " ranks a sample"));
  }
  // A batch that cannot fit in memory fails here, by name, not in a worker thread that the
  // failure elsewhere must then wait for.
  check_batch_fits(options_.batch_size, set_->images[0].numel(), physical_memory_bytes());
  options_.num_workers = std::max(0, options_.num_workers);
  options_.prefetch = std::max(1, options_.prefetch);
  start_workers();
}

Loader::~Loader() {
  stop_workers();
}

Loader::Job Loader::plan_locked() {
  Job job;
  job.seq = next_seq_++;
  const auto b = static_cast<size_t>(options_.batch_size);
  job.indices.reserve(b);
  job.epochs.reserve(b);
  for (size_t i = 0; i < b; ++i) {
    if (dispatch_.offset == shard_size_) {
      ++dispatch_.epoch;
      dispatch_.offset = 0;
    }
    if (shard_epoch_ != dispatch_.epoch) {
      shard_ = epoch_shard(set_->size(), options_.seed, dispatch_.epoch, options_.rank,
                           options_.world_size);
      shard_epoch_ = dispatch_.epoch;
    }
    job.indices.push_back(shard_[static_cast<size_t>(dispatch_.offset++)]);
    job.epochs.push_back(dispatch_.epoch);
  }
  if (dispatch_.offset == shard_size_) {
    ++dispatch_.epoch;
    dispatch_.offset = 0;
  }
  job.end = dispatch_;
  return job;
}

Batch Loader::build(const Job& job) const {
  const auto n = static_cast<int64_t>(job.indices.size());
  at::Tensor idx = at::empty({n}, at::kLong);
  std::copy(job.indices.begin(), job.indices.end(), idx.data_ptr<int64_t>());
  at::Tensor imgs = set_->images.index_select(0, idx);  // N,H,W,C uint8, fresh copy
  if (options_.random_flip) {
    for (int64_t i = 0; i < n; ++i) {
      if (flip_decision(options_.seed, job.epochs[static_cast<size_t>(i)],
                        job.indices[static_cast<size_t>(i)])) {
        at::Tensor img = imgs.select(0, i);
        img.copy_(img.flip({1}));
      }
    }
  }
  Batch batch;
  batch.images = imgs.permute({0, 3, 1, 2}).to(at::kFloat).contiguous();
  batch.images.div_(127.5).sub_(1.0);
  if (set_->has_labels()) batch.labels = set_->labels.index_select(0, idx);
  if (options_.pin_memory && at::hasCUDA()) {
    batch.images = batch.images.pin_memory();
    if (batch.labels.defined()) batch.labels = batch.labels.pin_memory();
  }
  return batch;
}

Batch Loader::next() {
  if (options_.num_workers == 0) {
    Job job = plan_locked();
    Batch b = build(job);
    position_ = job.end;
    return b;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return ready_.count(consumed_) != 0; });
  auto it = ready_.find(consumed_);
  Slot slot = std::move(it->second);
  ready_.erase(it);
  ++consumed_;
  lock.unlock();
  cv_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  position_ = slot.end;
  return std::move(slot.batch);
}

void Loader::restore(const LoaderPosition& pos) {
  if (pos.epoch < 0 || pos.offset < 0 || pos.offset >= shard_size_) {
    throw Error(c10::str("data loader: cannot resume at epoch ", pos.epoch, " offset ", pos.offset,
                         " (a rank's shard has ", shard_size_,
                         " samples; was the dataset or world size changed?)"));
  }
  stop_workers();
  position_ = pos;
  dispatch_ = pos;
  next_seq_ = consumed_ = 0;
  ready_.clear();
  start_workers();
}

void Loader::start_workers() {
  stop_ = false;
  for (int i = 0; i < options_.num_workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void Loader::worker_loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || next_seq_ < consumed_ + options_.prefetch; });
      if (stop_) return;
      job = plan_locked();
    }
    Slot slot;
    slot.end = job.end;
    try {
      slot.batch = build(job);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace(job.seq, std::move(slot));
    }
    cv_.notify_all();
  }
}

}  // namespace dmtrain::data
