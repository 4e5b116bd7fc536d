// The CPU process group (TCPStore rendezvous + StoreBackend) between real peers: W threads of this
// process each play one rank, exactly as separate processes would (each has its own TCPStore
// client; rank 0 hosts the server). Truths: closed-form sums of rank-dependent values (a wrong or
// partial sum, a wrong rank order or a stale value from an earlier collective all change them),
// and the error paths named in process_group.hpp.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "dmtrain/dist/gradient_reducer.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/dist/process_group.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::dist {
namespace {

Context rank_ctx(int rank, int world, int port) {
  Context c;
  c.rank = c.local_rank = rank;
  c.world_size = c.local_world_size = world;
  c.master_addr = "127.0.0.1";
  c.master_port = port;
  c.source = "test";
  return c;
}

// Runs body(rank, group) on `world` threads; rethrows the first failure.
void run_ranks(int world, const std::function<void(int, ProcessGroup&)>& body,
               std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const int port = pick_free_port();
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        ProcessGroup g = init_process_group(rank_ctx(r, world, port), at::kCPU, timeout);
        body(r, g);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

TEST(ProcessGroup, AllReduceSumsRankValuesExactly) {
  const int W = 3;
  run_ranks(W, [&](int r, ProcessGroup& g) {
    for (int round = 0; round < 3; ++round) {
      // rank r holds (r + 1) * [1, 2, 3, 4] + round; the sum is 6 * [1..4] + 3 * round.
      at::Tensor t = at::arange(1, 5, at::kDouble) * (r + 1) + round;
      g.all_reduce_sum(t);
      const at::Tensor want = at::arange(1, 5, at::kDouble) * 6 + 3 * round;
      EXPECT_TRUE(at::equal(t, want)) << "rank " << r << " round " << round << ": " << t;
    }
    at::Tensor m = at::tensor({static_cast<float>(r), -static_cast<float>(r)});
    g.all_reduce_max(m);
    EXPECT_TRUE(at::equal(m, at::tensor({2.f, 0.f})));
  });
}

TEST(ProcessGroup, AllGatherIsRankMajorAndBroadcastTakesRank0) {
  const int W = 2;
  run_ranks(W, [&](int r, ProcessGroup& g) {
    const at::Tensor mine = at::full({2, 3}, static_cast<float>(10 * r + 1));
    const at::Tensor all = g.all_gather(mine);
    ASSERT_EQ(all.sizes(), (at::IntArrayRef{4, 3}));
    EXPECT_TRUE(at::equal(all.slice(0, 0, 2), at::full({2, 3}, 1.f)));
    EXPECT_TRUE(at::equal(all.slice(0, 2, 4), at::full({2, 3}, 11.f)));
    std::vector<at::Tensor> state{at::full({5}, static_cast<float>(r + 7)),
                                  at::full({2, 2}, static_cast<int64_t>(r * 3))};
    g.broadcast_from_rank0(state);
    EXPECT_TRUE(at::equal(state[0], at::full({5}, 7.f)));
    EXPECT_TRUE(at::equal(state[1], at::zeros({2, 2}, at::kLong)));
    g.barrier();
  });
}

// c10d's Reducer on the store backend: each rank's gradient of sum(w * x_r) is x_r, so after
// backward every rank must hold the mean of the ranks' inputs (closed form), in every bucket
// (tiny buckets force several) and again on a second step (bucket rebuild).
TEST(GradientReducer, AveragesGradientsOverRanks) {
  const int W = 2;
  run_ranks(W, [&](int r, ProcessGroup& g) {
    std::vector<at::Tensor> params;
    for (int i = 0; i < 4; ++i) params.push_back(at::zeros({300000}).requires_grad_(true));
    GradientReducer reducer(g, params, /*bucket_mib=*/1);
    for (int step = 0; step < 2; ++step) {
      for (auto& p : params) p.mutable_grad() = at::Tensor();
      reducer.prepare_for_forward();
      at::Tensor loss = at::zeros({});
      std::vector<at::Tensor> xs;
      for (int i = 0; i < 4; ++i) {
        xs.push_back(at::full({300000}, static_cast<float>((r + 1) * (i + 1) + step)));
        loss = loss + (params[static_cast<size_t>(i)] * xs.back()).sum();
      }
      reducer.prepare_for_backward(loss);
      loss.backward();
      for (int i = 0; i < 4; ++i) {
        // mean over r of (r + 1)(i + 1) + step = 1.5 (i + 1) + step
        const float want = 1.5f * static_cast<float>(i + 1) + static_cast<float>(step);
        EXPECT_TRUE(at::allclose(params[static_cast<size_t>(i)].grad(), at::full({300000}, want)))
            << "rank " << r << " step " << step << " param " << i;
      }
    }
  });
}

TEST(ProcessGroup, SingleProcessIsANoOp) {
  ProcessGroup g = init_process_group(Context{}, at::kCPU, std::chrono::seconds(1));
  EXPECT_FALSE(g.is_distributed());
  at::Tensor t = at::ones({3});
  g.all_reduce_sum(t);
  EXPECT_TRUE(at::equal(t, at::ones({3})));
  g.barrier();
}

TEST(ProcessGroup, UnreachableMasterIsAClearErrorAfterTheTimeout) {
  const int port = pick_free_port();  // nobody listens there
  try {
    init_process_group(rank_ctx(1, 2, port), at::kCPU, std::chrono::milliseconds(1500));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rank 1 cannot reach the master at 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << what;
  }
}

TEST(ProcessGroup, PortInUseIsAClearError) {
  const int port = pick_free_port();
  std::thread holder;
  // Rank 0 of one job holds the port while a second job's rank 0 tries to listen there.
  std::atomic<bool> up{false}, done{false};
  std::exception_ptr holder_error;
  holder = std::thread([&] {
    try {
      c10d::TCPStoreOptions o;
      o.port = static_cast<std::uint16_t>(port);
      o.isServer = true;
      o.waitWorkers = false;
      c10d::TCPStore store("127.0.0.1", o);
      up = true;
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } catch (...) {
      holder_error = std::current_exception();
      up = true;
    }
  });
  while (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  try {
    init_process_group(rank_ctx(0, 2, port), at::kCPU, std::chrono::milliseconds(1500));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("port is in use"), std::string::npos) << e.what();
  }
  done = true;
  holder.join();
  ASSERT_FALSE(holder_error);
}

TEST(ProcessGroup, ADeadRankMakesTheOthersFailNamingIt) {
  // Rank 1 joins and then never shows up for the all-reduce: rank 0 must fail within the
  // timeout and name rank 1.
  const int port = pick_free_port();
  std::string rank0_error;
  std::thread r1([&] {
    try {
      ProcessGroup g = init_process_group(rank_ctx(1, 2, port), at::kCPU, std::chrono::seconds(3));
      std::this_thread::sleep_for(std::chrono::seconds(5));
    } catch (...) {
    }
  });
  try {
    ProcessGroup g = init_process_group(rank_ctx(0, 2, port), at::kCPU, std::chrono::seconds(3));
    at::Tensor t = at::ones({2});
    g.all_reduce_sum(t);
  } catch (const std::exception& e) {
    rank0_error = e.what();
  }
  r1.join();
  EXPECT_NE(rank0_error.find("missing rank(s): 1"), std::string::npos) << rank0_error;
}

}  // namespace
}  // namespace dmtrain::dist
