// dmtrain::dist::StoreBackend: a c10d::Backend for CPU tensors whose collectives travel through a
// c10d::Store (in practice the job's TCPStore). It exists because the torch wheel ships no gloo
// headers (ProcessGroupGloo cannot be built against soundly, see docs/distributed.md), and CPU
// runs and tests of the data-parallel trainer still need real collectives between processes.
//
// It plugs into c10d::ProcessGroup like any backend, so c10d's own Reducer (DDP's bucketed,
// backward-overlapping gradient all-reduce) runs on it unchanged; CUDA runs use ProcessGroupNCCL.
//
// Contract:
//  - Supported: allreduce (SUM, AVG, PRODUCT, MIN, MAX), broadcast, allgather, barrier; CPU,
//    contiguous, dense tensors of any dtype. Anything else throws c10::Error naming the op.
//  - Collectives are matched by a per-backend sequence number: every rank must issue the same
//    collectives in the same order (as with NCCL).
//  - Determinism: a reduction adds the ranks' tensors in rank order 0, 1, ..., W-1 on every rank,
//    so all ranks get bit-identical results, and the result equals a sequential sum.
//  - Completion is synchronous: the returned Work is already complete (its future holds the
//    output tensors), so nothing overlaps; it is a correctness path, not a fast one (every byte
//    goes through the store's server, O(W) traffic per rank per collective).
//  - Timeouts: a rank that never contributes makes the others throw after the store's timeout
//    (the error names the collective and the missing rank), instead of hanging.
//  - The store's keys of a finished collective are deleted by the last rank to read them.
#pragma once
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dmtrain::dist {

class StoreBackend : public c10d::Backend {
 public:
  StoreBackend(c10::intrusive_ptr<c10d::Store> store, int rank, int size);

  const std::string getBackendName() const override { return "dmtrain-store"; }

  c10::intrusive_ptr<c10d::Work> allreduce(
      std::vector<at::Tensor>& tensors,
      const c10d::AllreduceOptions& opts = c10d::AllreduceOptions()) override;
  c10::intrusive_ptr<c10d::Work> broadcast(
      std::vector<at::Tensor>& tensors,
      const c10d::BroadcastOptions& opts = c10d::BroadcastOptions()) override;
  c10::intrusive_ptr<c10d::Work> allgather(
      std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
      const c10d::AllgatherOptions& opts = c10d::AllgatherOptions()) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(
      at::Tensor& output, at::Tensor& input,
      const c10d::AllgatherOptions& opts = c10d::AllgatherOptions()) override;
  c10::intrusive_ptr<c10d::Work> barrier(
      const c10d::BarrierOptions& opts = c10d::BarrierOptions()) override;

 private:
  // Publishes this rank's bytes under a new collective's key and returns every rank's bytes
  // (index = rank), deleting the keys once the last rank has read them.
  std::vector<std::vector<uint8_t>> exchange(const std::string& op, const at::Tensor& mine,
                                             bool want_all = true, int only_from = -1);

  c10::intrusive_ptr<c10d::Store> store_;
  uint64_t seq_ = 0;
};

}  // namespace dmtrain::dist
