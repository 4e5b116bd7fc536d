// Implementation of dmtrain/dist/process_group.hpp.
#include "dmtrain/dist/process_group.hpp"

#include <torch/csrc/distributed/c10d/exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>

#ifdef DMTRAIN_HAS_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <exception>
#include <thread>

#include "dmtrain/dist/store_backend.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::dist {
namespace {

std::string where(const Context& ctx) {
  return c10::str(ctx.master_addr, ":", ctx.master_port, " (MASTER_ADDR:MASTER_PORT, from ",
                  ctx.source, ")");
}

c10::intrusive_ptr<c10d::Store> make_store(const Context& ctx, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(ctx.master_port);
  o.isServer = ctx.rank == 0;
  o.numWorkers = static_cast<std::size_t>(ctx.world_size);
  o.waitWorkers = true;
  o.timeout = timeout;
  try {
    return c10::make_intrusive<c10d::TCPStore>(ctx.master_addr, o);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    const double secs = static_cast<double>(timeout.count()) / 1000.0;
    if (ctx.rank == 0 && (what.find("in use") != std::string::npos ||
                          what.find("EADDRINUSE") != std::string::npos)) {
      throw Error("rank 0 cannot listen on " + where(ctx) +
                  ": the port is in use; pick another MASTER_PORT (dmtrain --nproc-per-node "
                  "picks a free one)");
    }
    if (ctx.rank == 0) {
      throw Error(c10::str("rank 0 started the rendezvous at ", where(ctx), " but not all ",
                           ctx.world_size, " ranks joined within ", secs,
                           " s (dist.timeout_s); are the other ranks running? (", what, ")"));
    }
    throw Error(c10::str("rank ", ctx.rank, " cannot reach the master at ", where(ctx), " within ",
                         secs,
                         " s (dist.timeout_s): is rank 0 running, and is the "
                         "address reachable from this node? (",
                         what, ")"));
  }
}

// See "Teardown" in the header.
struct Teardown {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  c10::intrusive_ptr<c10d::Store> store;
  int rank = 0, world = 1;
  std::chrono::milliseconds timeout{0};

  ~Teardown() {
    if (std::uncaught_exceptions() > 0) return;  // failing: leave fast, the launcher cleans up
    try {
      const std::string key = "dmtrain/checked_out";
      int64_t n = store->add(key, 1);
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (rank == 0 && n < world && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        n = store->add(key, 0);
      }
      pg->shutdown();
    } catch (const std::exception& e) {
      log::warn(std::string("process group teardown: ") + e.what());
    }
  }
};

}  // namespace

ProcessGroup::ProcessGroup(c10::intrusive_ptr<c10d::ProcessGroup> pg,
                           c10::intrusive_ptr<c10d::Store> store, Context ctx, at::Device device,
                           std::chrono::milliseconds timeout)
    : pg_(std::move(pg)), ctx_(std::move(ctx)), device_(device) {
  auto t = std::make_shared<Teardown>();
  t->pg = pg_;
  t->store = std::move(store);
  t->rank = ctx_.rank;
  t->world = ctx_.world_size;
  t->timeout = timeout;
  teardown_ = std::move(t);
}

namespace {

ProcessGroup build_process_group(const Context& ctx, const at::Device& device,
                                 std::chrono::milliseconds timeout) {
  c10::intrusive_ptr<c10d::Store> store = make_store(ctx, timeout);
  // Under torchrun the store is its agent's (TORCHELASTIC_USE_AGENT_STORE: rank 0's bind fails
  // and c10d connects to the agent's instead), which outlives a restart of the workers: keys of
  // an earlier attempt must not be read as this one's, so every attempt gets its own prefix.
  const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
  store = c10::make_intrusive<c10d::PrefixStore>(
      std::string("dmtrain_attempt_") + (restart != nullptr ? restart : "0"), store);
  auto pg = c10::make_intrusive<c10d::ProcessGroup>(store, ctx.rank, ctx.world_size);
  // CPU tensors (and CPU runs) go through the store backend; see store_backend.hpp for why.
  auto cpu = c10::make_intrusive<StoreBackend>(c10::make_intrusive<c10d::PrefixStore>("cpu", store),
                                               ctx.rank, ctx.world_size);
  pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::CUSTOM, cpu);
  pg->setDefaultBackend(c10d::ProcessGroup::BackendType::CUSTOM);
  if (device.is_cuda()) {
#ifdef DMTRAIN_HAS_NCCL
    c10::cuda::set_device(device.index());
    // On a collective timeout, NCCL's watchdog aborts this process (TORCH_NCCL_ASYNC_ERROR_HANDLING
    // default): a dead peer ends the job after dist.timeout_s. Its debug dump would add another
    // minute of waiting first, so it is off unless the user asks for it.
    ::setenv("TORCH_NCCL_DUMP_ON_TIMEOUT", "0", /*overwrite=*/0);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl", store), ctx.rank, ctx.world_size, options);
    pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    pg->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
#else
    throw Error(c10::str("rank ", ctx.rank, " of ", ctx.world_size,
                         " wants NCCL for CUDA, but this dmtrain was built without NCCL's header "
                         "(nccl.h): install the nvidia-nccl package matching the torch wheel and "
                         "reconfigure"));
#endif
  }
  ProcessGroup group(pg, store, ctx, device, timeout);
  group.barrier();  // every rank's backends exist before anyone uses them
  log::info(c10::str("process group: rank ", ctx.rank, " of ", ctx.world_size, " (local ",
                     ctx.local_rank, "), ", device.is_cuda() ? "NCCL" : "store backend (CPU)",
                     ", rendezvous ", ctx.master_addr, ":", ctx.master_port, ", timeout ",
                     timeout.count() / 1000.0, " s"));
  return group;
}

}  // namespace

ProcessGroup init_process_group(const Context& ctx, const at::Device& device,
                                std::chrono::milliseconds timeout) {
  if (!ctx.distributed()) return ProcessGroup();
  return build_process_group(ctx, device, timeout);
}

ProcessGroup init_single_rank_group(const at::Device& device, int port,
                                    std::chrono::milliseconds timeout) {
  Context ctx;
  ctx.master_port = port;
  ctx.source = "single-rank group";
  return build_process_group(ctx, device, timeout);
}

bool has_nccl() {
#ifdef DMTRAIN_HAS_NCCL
  return true;
#else
  return false;
#endif
}

void ProcessGroup::all_reduce_sum(at::Tensor& t) const {
  if (!pg_) return;
  std::vector<at::Tensor> v{t};
  pg_->allreduce(v)->wait();
}

void ProcessGroup::all_reduce_max(at::Tensor& t) const {
  if (!pg_) return;
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  pg_->allreduce(v, o)->wait();
}

at::Tensor ProcessGroup::all_gather(const at::Tensor& t) const {
  if (!pg_) return t;
  at::Tensor in = t.contiguous();
  std::vector<int64_t> shape = in.sizes().vec();
  if (shape.empty()) shape.push_back(1);
  shape[0] *= ctx_.world_size;
  at::Tensor out = at::empty(shape, in.options());
  pg_->_allgather_base(out, in)->wait();
  return out;
}

void ProcessGroup::broadcast_from_rank0(const std::vector<at::Tensor>& tensors) const {
  if (!pg_ || tensors.empty()) return;
  // 250 MB messages, as DDP's initial state sync.
  c10d::broadcast_coalesced(pg_, tensors, 250u * 1024u * 1024u, 0);
}

void ProcessGroup::barrier() const {
  if (!pg_) return;
  // A one-element all-reduce on the training device, read on the host: ordered with the
  // collectives before it, and it blocks this thread until every rank got there.
  at::Tensor one = at::ones({1}, at::TensorOptions(device_).dtype(at::kFloat));
  all_reduce_sum(one);
  const float n = one.item<float>();
  TORCH_CHECK(n == static_cast<float>(ctx_.world_size), "barrier: expected ", ctx_.world_size,
              " ranks, counted ", n);
}

}  // namespace dmtrain::dist
