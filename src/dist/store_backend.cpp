// Implementation of dmtrain/dist/store_backend.hpp. Every collective is one `exchange`: each rank
// sets its bytes under <op>/<seq>/<rank>, waits for the keys it needs, reads them, and the last
// reader deletes them. Reductions then run locally in rank order, so every rank computes the same
// bits.
#include "dmtrain/dist/store_backend.hpp"

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>

#include <cstring>

namespace dmtrain::dist {
namespace {

// A collective that finished before it was returned (see the header: completion is synchronous).
class DoneWork : public c10d::Work {
 public:
  DoneWork(std::vector<at::Tensor> outputs, c10d::OpType type)
      : c10d::Work(-1, type), outputs_(std::move(outputs)) {
    future_ =
        c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()));
    future_->markCompleted(c10::IValue(outputs_));
  }
  bool isCompleted() override { return true; }
  bool isSuccess() const override { return true; }
  bool wait(std::chrono::milliseconds /*timeout*/) override { return true; }
  std::vector<at::Tensor> result() override { return outputs_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }

 private:
  std::vector<at::Tensor> outputs_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

void check_tensor(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.defined() && t.device().is_cpu() && t.layout() == at::kStrided,
              "dmtrain-store backend: ", op, " takes dense CPU tensors (CUDA runs use NCCL)");
}

std::vector<uint8_t> bytes_of(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  return std::vector<uint8_t>(p, p + c.nbytes());
}

// A view of `bytes` as a tensor shaped like `like` (the bytes must outlive it).
at::Tensor view_as(std::vector<uint8_t>& bytes, const at::Tensor& like, int rank) {
  TORCH_CHECK(bytes.size() == static_cast<size_t>(like.nbytes()), "dmtrain-store backend: rank ",
              rank, " sent ", bytes.size(), " bytes, expected ", like.nbytes(),
              " (ranks issued different collectives or shapes)");
  return at::from_blob(bytes.data(), like.sizes(), like.options().memory_format(std::nullopt));
}

}  // namespace

StoreBackend::StoreBackend(c10::intrusive_ptr<c10d::Store> store, int rank, int size)
    : c10d::Backend(rank, size), store_(std::move(store)) {}

std::vector<std::vector<uint8_t>> StoreBackend::exchange(const std::string& op,
                                                         const at::Tensor& mine, bool want_all,
                                                         int only_from) {
  const std::string base = "dmtrain/" + op + "/" + std::to_string(seq_++) + "/";
  if (mine.defined()) store_->set(base + std::to_string(rank_), bytes_of(mine));
  std::vector<std::string> keys;
  std::vector<int> from;
  for (int r = 0; r < size_; ++r) {
    if (want_all || r == only_from) {
      keys.push_back(base + std::to_string(r));
      from.push_back(r);
    }
  }
  std::vector<std::vector<uint8_t>> values;
  try {
    store_->wait(keys);
    values = store_->multiGet(keys);
  } catch (const c10::Error& e) {
    std::string missing;
    for (size_t i = 0; i < keys.size(); ++i) {
      try {
        if (!store_->check({keys[i]}))
          missing += (missing.empty() ? "" : ", ") + std::to_string(from[i]);
      } catch (const c10::Error&) {
        missing = "unknown (the store on rank 0 is unreachable)";
        break;
      }
    }
    TORCH_CHECK(false, "dmtrain-store backend: ", op, " #", seq_ - 1, " on rank ", rank_,
                " timed out or lost the store after ", store_->getTimeout().count(),
                " ms; missing rank(s): ", missing,
                " (a rank died or hangs). Store error: ", e.what_without_backtrace());
  }
  // The last rank to finish reading removes this collective's keys.
  if (store_->add(base + "done", 1) == size_) {
    for (int r = 0; r < size_; ++r) store_->deleteKey(base + std::to_string(r));
    store_->deleteKey(base + "done");
  }
  std::vector<std::vector<uint8_t>> by_rank(static_cast<size_t>(size_));
  for (size_t i = 0; i < from.size(); ++i)
    by_rank[static_cast<size_t>(from[i])] = std::move(values[i]);
  return by_rank;
}

c10::intrusive_ptr<c10d::Work> StoreBackend::allreduce(std::vector<at::Tensor>& tensors,
                                                       const c10d::AllreduceOptions& opts) {
  const auto op = opts.reduceOp.op_;
  TORCH_CHECK(op == c10d::ReduceOp::SUM || op == c10d::ReduceOp::AVG ||
                  op == c10d::ReduceOp::PRODUCT || op == c10d::ReduceOp::MIN ||
                  op == c10d::ReduceOp::MAX,
              "dmtrain-store backend: allreduce supports SUM, AVG, PRODUCT, MIN, MAX");
  for (auto& t : tensors) {
    check_tensor(t, "allreduce");
    auto all = exchange("allreduce", t);
    // Rank order 0..W-1 on every rank: identical bits everywhere (see the header).
    at::Tensor acc = view_as(all[0], t, 0).clone();
    for (int r = 1; r < size_; ++r) {
      const at::Tensor other = view_as(all[static_cast<size_t>(r)], t, r);
      if (op == c10d::ReduceOp::SUM || op == c10d::ReduceOp::AVG) acc.add_(other);
      if (op == c10d::ReduceOp::PRODUCT) acc.mul_(other);
      if (op == c10d::ReduceOp::MIN) at::minimum_out(acc, acc, other);
      if (op == c10d::ReduceOp::MAX) at::maximum_out(acc, acc, other);
    }
    if (op == c10d::ReduceOp::AVG) acc.div_(size_);
    t.copy_(acc);
  }
  return c10::make_intrusive<DoneWork>(tensors, c10d::OpType::ALLREDUCE);
}

c10::intrusive_ptr<c10d::Work> StoreBackend::broadcast(std::vector<at::Tensor>& tensors,
                                                       const c10d::BroadcastOptions& opts) {
  const int root = static_cast<int>(opts.rootRank);
  TORCH_CHECK(root >= 0 && root < size_, "dmtrain-store backend: broadcast root ", root,
              " out of range");
  for (auto& t : tensors) {
    check_tensor(t, "broadcast");
    auto all = exchange("broadcast", rank_ == root ? t : at::Tensor(), false, root);
    if (rank_ != root) t.copy_(view_as(all[static_cast<size_t>(root)], t, root));
  }
  return c10::make_intrusive<DoneWork>(tensors, c10d::OpType::BROADCAST);
}

c10::intrusive_ptr<c10d::Work> StoreBackend::allgather(
    std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
    const c10d::AllgatherOptions& /*opts*/) {
  TORCH_CHECK(outputs.size() == inputs.size(),
              "dmtrain-store backend: allgather needs one "
              "output list per input");
  std::vector<at::Tensor> flat;
  for (size_t i = 0; i < inputs.size(); ++i) {
    check_tensor(inputs[i], "allgather");
    TORCH_CHECK(outputs[i].size() == static_cast<size_t>(size_),
                "dmtrain-store backend: allgather needs world-size outputs per input");
    auto all = exchange("allgather", inputs[i]);
    for (int r = 0; r < size_; ++r) {
      outputs[i][static_cast<size_t>(r)].copy_(view_as(all[static_cast<size_t>(r)], inputs[i], r));
      flat.push_back(outputs[i][static_cast<size_t>(r)]);
    }
  }
  return c10::make_intrusive<DoneWork>(flat, c10d::OpType::ALLGATHER);
}

c10::intrusive_ptr<c10d::Work> StoreBackend::_allgather_base(at::Tensor& output, at::Tensor& input,
                                                             const c10d::AllgatherOptions& opts) {
  check_tensor(output, "allgather");
  TORCH_CHECK(output.is_contiguous() && output.numel() == input.numel() * size_,
              "dmtrain-store backend: allgather output must hold world-size inputs");
  std::vector<std::vector<at::Tensor>> outs(1);
  for (const auto& chunk : output.chunk(size_)) outs[0].push_back(chunk.view(input.sizes()));
  std::vector<at::Tensor> ins{input};
  allgather(outs, ins, opts);
  return c10::make_intrusive<DoneWork>(std::vector<at::Tensor>{output},
                                       c10d::OpType::_ALLGATHER_BASE);
}

c10::intrusive_ptr<c10d::Work> StoreBackend::barrier(const c10d::BarrierOptions& /*opts*/) {
  exchange("barrier", at::zeros({1}, at::kByte));
  return c10::make_intrusive<DoneWork>(std::vector<at::Tensor>{}, c10d::OpType::BARRIER);
}

}  // namespace dmtrain::dist
