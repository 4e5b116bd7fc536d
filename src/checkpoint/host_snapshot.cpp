// Implementation of dmtrain/checkpoint/host_snapshot.hpp.
#include "dmtrain/checkpoint/host_snapshot.hpp"

#include <c10/util/StringUtil.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <tuple>

#ifdef DMTRAIN_TORCH_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::checkpoint {
namespace {

// Each host copy starts on its own 512-byte boundary of the block (the alignment cudaMemcpy
// likes best, and more than any dtype needs).
constexpr int64_t kAlign = 512;
int64_t aligned(int64_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

// What a host copy looks like; equal layouts reuse the previous take()'s memory.
struct Layout {
  bool defined = false, cuda = false;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> sizes, strides;
  bool operator==(const Layout& o) const {
    return std::tie(defined, cuda, dtype, sizes, strides) ==
           std::tie(o.defined, o.cuda, o.dtype, o.sizes, o.strides);
  }
};

// The live tensor's strides when it is dense (the copy is then one memcpy, and the file records
// the strides a synchronous save of the live tensor records, e.g. channels-last), else
// contiguous ones (a host tensor with overlapping strides could not be copied into).
Layout layout_of(const at::Tensor& t) {
  Layout l;
  if (!t.defined()) return l;
  l.defined = true;
  l.cuda = t.is_cuda();
  l.dtype = t.scalar_type();
  l.sizes = t.sizes().vec();
  if (t.is_non_overlapping_and_dense()) {
    l.strides = t.strides().vec();
  } else {
    l.strides.assign(l.sizes.size(), 1);
    for (int64_t d = static_cast<int64_t>(l.sizes.size()) - 2; d >= 0; --d) {
      const auto i = static_cast<size_t>(d);
      l.strides[i] = l.strides[i + 1] * std::max<int64_t>(l.sizes[i + 1], 1);
    }
  }
  return l;
}

int64_t nbytes(const at::Tensor& t) {
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

std::string gib(int64_t bytes) {
  return c10::str(static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0), " GiB");
}

#ifdef DMTRAIN_TORCH_HAS_CUDA
// One exactly sized page-locked block (portable: pinned for every device's context).
std::shared_ptr<void> allocate_pinned(int64_t bytes, c10::DeviceIndex device) {
  c10::cuda::CUDAGuard guard(device);
  void* p = nullptr;
  const cudaError_t err = cudaHostAlloc(&p, static_cast<size_t>(bytes), cudaHostAllocPortable);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: it must not surface at an unrelated later call
    throw Error("cannot allocate " + gib(bytes) +
                " of page-locked host memory for checkpoints: " + cudaGetErrorString(err));
  }
  return std::shared_ptr<void>(p, [](void* q) { (void)cudaFreeHost(q); });
}
#endif

}  // namespace

struct HostSnapshot::Impl {
  std::vector<Layout> layouts;  // of the last take()
  std::vector<at::Tensor> hosts;
  std::shared_ptr<void> block;  // page-locked memory of the CUDA tensors' copies
  int64_t block_bytes = 0;
  bool warned_pageable = false;
  // The copies' completion as the training thread saw it, for the reader.
  mutable std::mutex m;
  mutable std::condition_variable cv;
  bool copied = true, failed = false;

  void set_copied(bool ok) {
    std::lock_guard<std::mutex> lock(m);
    copied = true;
    failed = !ok;
    cv.notify_all();
  }
#ifdef DMTRAIN_TORCH_HAS_CUDA
  c10::DeviceIndex device = -1;  // of the CUDA copies of the last take(); -1: none
  std::optional<c10::cuda::CUDAStream> side;
  at::cuda::CUDAEvent queued, done;
  bool unfenced = false;  // the current stream has not waited for `done` yet
  bool unseen = false;    // `done` not yet seen complete (the reader waits)

  // A block of at least `need` bytes: the one there when it is large enough, else a new one;
  // nullptr when page-locked memory is not to be had
  // (the copies then go to pageable memory: correct, but they block the host).
  std::shared_ptr<void> pinned_block(int64_t need, c10::DeviceIndex dev) {
    if (block && block_bytes >= need) return block;
    block.reset();
    block_bytes = 0;
    try {
      log::info("checkpoint snapshot: allocating " + gib(need) +
                " of page-locked host memory (once; reused by later checkpoints)");
      block = allocate_pinned(need, dev);
      block_bytes = need;
    } catch (const Error& e) {
      if (!warned_pageable) {
        log::warn(std::string(e.what()) +
                  "; checkpoint snapshots use pageable memory (training waits for the copies)");
      }
      warned_pageable = true;
    }
    return block;
  }
#endif
};

HostSnapshot::HostSnapshot() : impl_(std::make_unique<Impl>()) {}

HostSnapshot::~HostSnapshot() {
  finish_copies();  // the copies must be done before their memory goes
}

int64_t HostSnapshot::pinned_bytes(const std::vector<at::Tensor>& live) {
  int64_t total = 0;
  for (const auto& t : live) {
    if (t.defined() && t.is_cuda()) total += aligned(nbytes(t));
  }
  return total;
}

bool HostSnapshot::reserve(int64_t bytes, const at::Device& device) {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  auto& m = *impl_;
  if (!device.is_cuda() || bytes <= 0 || m.block_bytes >= bytes) return false;
  const c10::DeviceIndex dev = device.index() < 0 ? c10::cuda::current_device() : device.index();
  return m.pinned_block(bytes, dev) != nullptr;
#else
  (void)bytes;
  (void)device;
  return false;
#endif
}

std::vector<at::Tensor> HostSnapshot::take(const std::vector<at::Tensor>& live) {
  auto& m = *impl_;
  at::NoGradGuard no_grad;  // host copies registered as parameters require grad
  {
    std::lock_guard<std::mutex> lock(m.m);
    m.copied = true;  // until CUDA copies are queued below
    m.failed = false;
  }
  std::vector<Layout> want;
  want.reserve(live.size());
  for (const auto& t : live) want.push_back(layout_of(t));
#ifdef DMTRAIN_TORCH_HAS_CUDA
  c10::DeviceIndex dev = -1;
  for (const auto& t : live) {
    if (t.defined() && t.is_cuda()) {
      dev = t.device().index();
      break;
    }
  }
  const auto async_copy = [dev](const at::Tensor& t) {
    return t.defined() && t.is_cuda() && t.device().index() == dev;
  };
#else
  const auto async_copy = [](const at::Tensor&) { return false; };
#endif

  if (want != m.layouts) {
    m.hosts.assign(live.size(), at::Tensor());
    std::shared_ptr<void> block;
#ifdef DMTRAIN_TORCH_HAS_CUDA
    int64_t need = 0;
    for (const auto& t : live) {
      if (async_copy(t)) need += aligned(nbytes(t));
    }
    if (need > 0) block = m.pinned_block(need, dev);
#endif
    int64_t offset = 0;
    for (size_t i = 0; i < live.size(); ++i) {
      const Layout& l = want[i];
      if (!l.defined) continue;
      const auto options = at::TensorOptions().dtype(l.dtype).device(at::kCPU);
      if (block && async_copy(live[i])) {
        // Its own storage inside the block (a view of one big tensor would make every file hold
        // the whole block); the deleter keeps the block alive as long as any copy is.
        char* p = static_cast<char*>(block.get()) + offset;
        m.hosts[i] = at::from_blob(
            p, l.sizes, l.strides, [block](void*) {}, options);
        offset += aligned(nbytes(live[i]));
      } else {
        m.hosts[i] = at::empty_strided(l.sizes, l.strides, options);
      }
    }
    m.layouts = std::move(want);
  }

#ifdef DMTRAIN_TORCH_HAS_CUDA
  m.device = dev;
  if (dev >= 0) {
    c10::cuda::CUDAGuard guard(dev);
    if (!m.side) m.side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, dev);
    // The copies see every update queued before take() on the training stream, and nothing after.
    m.queued.record(c10::cuda::getCurrentCUDAStream(dev));
    m.queued.block(*m.side);
    {
      c10::cuda::CUDAStreamGuard on_side(*m.side);
      for (size_t i = 0; i < live.size(); ++i) {
        if (!async_copy(live[i])) continue;
        m.hosts[i].copy_(live[i], /*non_blocking=*/true);
        // The caching allocator must not hand the live tensor's memory to another tensor
        // (should it be freed) before the side stream has read it.
        live[i].record_stream(*m.side);
      }
    }
    m.done.record(*m.side);
    m.unfenced = m.unseen = true;
    std::lock_guard<std::mutex> lock(m.m);
    m.copied = false;
  }
#endif
  for (size_t i = 0; i < live.size(); ++i) {
    if (live[i].defined() && !async_copy(live[i])) m.hosts[i].copy_(live[i]);
  }
  return m.hosts;
}

bool HostSnapshot::fence() {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  auto& m = *impl_;
  const bool waited = m.unfenced;
  if (m.unfenced) {
    m.done.block(c10::cuda::getCurrentCUDAStream(m.device));
    m.unfenced = false;
  }
  if (m.unseen && m.done.query()) {
    m.unseen = false;
    m.set_copied(true);
  }
  return waited;
#else
  return false;
#endif
}

void HostSnapshot::finish_copies() {
#ifdef DMTRAIN_TORCH_HAS_CUDA
  auto& m = *impl_;
  if (!m.unseen) return;
  m.unseen = false;
  try {
    m.done.synchronize();
    m.set_copied(true);
  } catch (const std::exception& e) {
    // A failed device (or a call inside a capture): the reader must not wait for ever, nor
    // write what the copies may not have delivered.
    log::error(std::string("checkpoint snapshot: the device-to-host copies failed: ") + e.what());
    m.set_copied(false);
  }
#endif
}

void HostSnapshot::wait_copied() const {
  auto& m = *impl_;
  std::unique_lock<std::mutex> lock(m.m);
  m.cv.wait(lock, [&m] { return m.copied; });
  if (m.failed) throw Error("checkpoint snapshot: the device-to-host copies did not complete");
}

}  // namespace dmtrain::checkpoint
