// HostSnapshot: host copies of a list of tensors, taken without stopping the device, so that a
// background thread can serialize them while training goes on (checkpoint/async_checkpoint.hpp).
//
// Guarantees:
//  - take(live) returns one host tensor per live tensor, of the same dtype, sizes, strides (for
//    dense ones) and values as the live tensor had when take() was called, in stream order: the
//    copies of CUDA tensors wait for everything queued on the current stream before take().
//  - The host tensors are persistent: the next take() of tensors of the same layout (the usual
//    case: the same model, EMA and optimizer state) copies into the same memory, so the
//    (slow) allocation of page-locked memory happens once. A changed layout allocates anew.
//    Hence a take() overwrites what the previous one returned: its reader must be done first
//    (AsyncCheckpointer keeps at most one checkpoint in flight).
//  - CUDA tensors are copied with non-blocking device-to-host copies on a side stream into
//    page-locked memory (one cudaHostAlloc block for all of them, exactly sized, instead of the
//    caching host allocator's power-of-two blocks), so take() returns at once. Until the copies
//    are done the live tensors must not change: fence() makes the current stream wait for them
//    (the trainer calls it before the step that updates them in place; the copies overlap the
//    host's preparation of that step).
//  - The reader (the background writer) waits with wait_copied(), which makes no CUDA call: the
//    training thread observes the copies' completion (fence() polls the event, finish_copies()
//    blocks on it) and passes it on. Why: a CUDA graph capture (train.cuda_graphs) in the
//    default global mode forbids event queries and synchronizations from every thread, and the
//    capture happens on the training thread, between two fences.
//  - CPU tensors are copied synchronously (take() returns with the copies done; fence() and
//    finish_copies() are then no-ops).
//  - reserve(bytes) allocates the page-locked block ahead (seconds for GBs), so that the first
//    take() of a large state does not stall on it; on the calling thread, for the same reason
//    (cudaHostAlloc from another thread could meet the graph capture).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace dmtrain::checkpoint {

class HostSnapshot {
 public:
  HostSnapshot();
  ~HostSnapshot();
  HostSnapshot(const HostSnapshot&) = delete;
  HostSnapshot& operator=(const HostSnapshot&) = delete;

  // Copies `live` to host memory (undefined tensors stay undefined); see above.
  std::vector<at::Tensor> take(const std::vector<at::Tensor>& live);
  // Makes the current CUDA stream wait until the copies of the last take() are done (once per
  // take()), and passes their completion on when it has happened; true when it made the stream
  // wait. The training thread's, outside a graph capture.
  bool fence();
  // Blocks until the copies of the last take() are done and passes that on. The training
  // thread's (before it waits for the reader).
  void finish_copies();
  // Blocks until the training thread has seen the copies of the last take() done (any thread;
  // no CUDA call). Throws dmtrain::Error when they failed.
  void wait_copied() const;
  // Allocates `bytes` of page-locked memory now for the CUDA tensors (on `device`) of the next
  // take(); no-op on the CPU, without CUDA, or when a block that large exists. Returns whether
  // it allocated.
  bool reserve(int64_t bytes, const at::Device& device);
  // The bytes of page-locked memory take() would place `live`'s CUDA tensors in (for reserve).
  static int64_t pinned_bytes(const std::vector<at::Tensor>& live);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dmtrain::checkpoint
