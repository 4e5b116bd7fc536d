// dmtrain::dist::ProcessGroup: the job's communicator, built from a Context with PyTorch's own
// distributed runtime (c10d): rendezvous through a TCPStore hosted by rank 0 at
// MASTER_ADDR:MASTER_PORT, then ProcessGroupNCCL for CUDA tensors and the StoreBackend
// (store_backend.hpp) for CPU tensors.
//
// Contract:
//  - Every rank calls init_process_group with the same world size, address and port; it returns
//    once all ranks have joined the store, or throws dmtrain::Error after `timeout` naming what
//    failed: rank 0 cannot listen (port in use), a rank cannot reach the master, a rank never
//    joined, or this build has no NCCL (CUDA with several ranks).
//  - `timeout` also bounds every collective afterwards: NCCL's watchdog aborts a rank whose
//    collective does not finish in time (a peer died or hangs) and the store backend throws, so
//    a job never hangs forever.
//  - A single-process Context gets no process group (is_distributed() false); the helpers then
//    do nothing, so the trainer has one code path.
//  - Collective helpers must be called by every rank in the same order.
//  - Teardown: when the last copy of a ProcessGroup goes, each rank checks out at the store and
//    rank 0, which hosts it, waits (up to the timeout, not while an exception unwinds) until every
//    rank has, so the store never vanishes under a rank that still talks to it; then the
//    backends are shut down.
#pragma once
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <chrono>
#include <memory>

#include "dmtrain/dist/context.hpp"

namespace dmtrain::dist {

class ProcessGroup {
 public:
  ProcessGroup() = default;  // single process
  ProcessGroup(c10::intrusive_ptr<c10d::ProcessGroup> pg, c10::intrusive_ptr<c10d::Store> store,
               Context ctx, at::Device device, std::chrono::milliseconds timeout);

  bool is_distributed() const { return pg_.defined(); }
  const Context& context() const { return ctx_; }
  int rank() const { return ctx_.rank; }
  int world_size() const { return ctx_.world_size; }
  const c10::intrusive_ptr<c10d::ProcessGroup>& c10d() const { return pg_; }

  // In place, over all ranks (tensors on the training device or the CPU).
  void all_reduce_sum(at::Tensor& t) const;
  void all_reduce_max(at::Tensor& t) const;
  // [world * n, ...]: rank r's tensor at rows [r * n, (r + 1) * n).
  at::Tensor all_gather(const at::Tensor& t) const;
  // Rank 0's values into `tensors` on every rank (coalesced into few messages).
  void broadcast_from_rank0(const std::vector<at::Tensor>& tensors) const;
  // Returns when every rank has reached it (throws after the timeout otherwise).
  void barrier() const;

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> pg_;
  Context ctx_;
  at::Device device_ = at::kCPU;
  std::shared_ptr<void> teardown_;  // last member: runs first, while pg_ and the store live
};

// Builds the process group of `ctx` for tensors on `device` (the CUDA device of this rank, or the
// CPU). Single-process contexts return ProcessGroup(). Throws dmtrain::Error (see above).
ProcessGroup init_process_group(const Context& ctx, const at::Device& device,
                                std::chrono::milliseconds timeout);

// A process group of this process alone (rank 0 of 1) with the backends of `device`, its store
// on 127.0.0.1:`port`: code that only runs with a process group (the data-parallel gradient
// paths) can be exercised by one process, e.g. tests on one GPU (init_process_group gives a
// single-process Context none).
ProcessGroup init_single_rank_group(const at::Device& device, int port,
                                    std::chrono::milliseconds timeout);

// Whether this build has NCCL (process groups on CUDA).
bool has_nccl();

}  // namespace dmtrain::dist
