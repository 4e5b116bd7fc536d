// BucketedAllReduce (dist.graph_step's gradient averaging) on the CPU. Truths: the bucket layout's
// closed-form boundaries and its invariants; with a fake collective that records its calls, every
// bucket is launched once per step, inside backward, in reverse parameter order, on the
// gradients themselves (a SUM over two identical ranks doubles the plain backward's gradients, an
// AVG leaves them); misuse is an error; and between two real ranks (threads, store backend) the
// averaged gradients equal those of c10d's Reducer (GradientReducer).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "dmtrain/dist/bucketed_all_reduce.hpp"
#include "dmtrain/dist/gradient_reducer.hpp"
#include "dmtrain/dist/launcher.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::dist {
namespace {

TEST(BucketedAllReduceLayout, ClosesBucketsFromTheLastParameterBetweenParameters) {
  // float32; caps 1000 bytes (250 elements) first, then 4000 (1000 elements).
  const auto b = bucket_layout({10, 300, 700, 50, 200, 100}, 4, 1000, 4000);
  ASSERT_EQ(b.size(), 3u);
  // 100 + 200 = 300 elements >= 250: parameters 4, 5.
  EXPECT_EQ(b[0].first_param, 4u);
  EXPECT_EQ(b[0].last_param, 6u);
  EXPECT_EQ(b[0].begin, 1060);
  EXPECT_EQ(b[0].end, 1360);
  // 50 + 700 + 300 = 1050 >= 1000: parameters 1..3.
  EXPECT_EQ(b[1].first_param, 1u);
  EXPECT_EQ(b[1].last_param, 4u);
  EXPECT_EQ(b[1].begin, 10);
  EXPECT_EQ(b[1].end, 1060);
  // What is left, starting at element 0.
  EXPECT_EQ(b[2].first_param, 0u);
  EXPECT_EQ(b[2].last_param, 1u);
  EXPECT_EQ(b[2].begin, 0);
  EXPECT_EQ(b[2].end, 10);
  EXPECT_TRUE(bucket_layout({}, 4, 1000, 4000).empty());
}

TEST(BucketedAllReduceLayout, FirstBucketIsAboutOneMiBThenBucketMib) {
  // 200,000 floats = 800,000 bytes each: two make the first bucket (>= 1 MiB), then three make a
  // 2 MiB one.
  const std::vector<int64_t> numels(9, 200000);
  const auto b = bucket_layout(numels, 4, kFirstBucketBytes, 2 * 1024 * 1024);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].last_param - b[0].first_param, 2u);
  EXPECT_EQ(b[1].last_param - b[1].first_param, 3u);
  EXPECT_EQ(b[2].last_param - b[2].first_param, 3u);
  EXPECT_EQ(b[3].last_param - b[3].first_param, 1u);
}

TEST(BucketedAllReduceLayout, InvariantsOnIrregularSizes) {
  std::vector<int64_t> numels;
  for (int i = 0; i < 60; ++i) numels.push_back(1 + (i * 7919) % 3001 + (i % 9 == 0 ? 20000 : 0));
  int64_t total = 0;
  for (const int64_t n : numels) total += n;
  const int64_t first = 4096, cap = 16384;
  const auto b = bucket_layout(numels, 4, first, cap);
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front().end, total);
  EXPECT_EQ(b.front().last_param, numels.size());
  EXPECT_EQ(b.back().begin, 0);
  EXPECT_EQ(b.back().first_param, 0u);
  for (size_t k = 0; k < b.size(); ++k) {
    int64_t n = 0;
    for (size_t i = b[k].first_param; i < b[k].last_param; ++i) n += numels[i];
    EXPECT_EQ(n, b[k].numel()) << "bucket " << k << ": a boundary inside a parameter";
    const int64_t want = k == 0 ? first : cap;
    if (k + 1 < b.size()) {
      ASSERT_EQ(b[k + 1].end, b[k].begin) << "buckets " << k << ", " << k + 1;
      ASSERT_EQ(b[k + 1].last_param, b[k].first_param);
      EXPECT_GE(b[k].numel() * 4, want) << "bucket " << k << " closed early";
      // It closed as soon as it was full: without its last-added parameter it was not.
      EXPECT_LT((b[k].numel() - numels[b[k].first_param]) * 4, want) << "bucket " << k;
    }
  }
}

// Parameters of a tanh MLP (W_i [550, 550], b_i [550]: 1.2 MB per layer, so 1 MiB buckets hold
// one layer each), packed in order into one flat buffer with their gradients as views of a
// second one, as optim::flatten leaves them.
struct FlatMlp {
  std::vector<at::Tensor> params;
  at::Tensor flat_params, flat_grads;

  explicit FlatMlp(int layers, int width = 550) {
    at::manual_seed(3);
    std::vector<at::Tensor> init;
    for (int l = 0; l < layers; ++l) {
      init.push_back(at::randn({width, width}) / std::sqrt(static_cast<double>(width)));
      init.push_back(at::randn({width}) * 0.1);
    }
    int64_t total = 0;
    for (const auto& t : init) total += t.numel();
    flat_params = at::zeros({total});
    flat_grads = at::zeros({total});
    int64_t offset = 0;
    for (const auto& t : init) {
      const int64_t n = t.numel();
      at::Tensor p = flat_params.slice(0, offset, offset + n).view(t.sizes());
      p.copy_(t);
      p.requires_grad_(true);
      p.mutable_grad() = flat_grads.slice(0, offset, offset + n).view(t.sizes());
      params.push_back(p);
      offset += n;
    }
  }
  // A leaf copy of every parameter, for the plain backward's gradients.
  std::vector<at::Tensor> plain_copies() const {
    std::vector<at::Tensor> out;
    for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_(true));
    return out;
  }
};

at::Tensor mlp_loss(const std::vector<at::Tensor>& params, const at::Tensor& x) {
  at::Tensor h = x;
  for (size_t l = 0; l + 1 < params.size(); l += 2) {
    h = at::tanh(at::addmm(params[l + 1], h, params[l].t()));
  }
  return h.pow(2).mean();
}

struct Recorder {
  std::vector<int64_t> begins;  // each launch's slice start, in launch order
  bool in_backward = false;
  bool launched_outside_backward = false;
  double factor = 2.0;  // 2: a SUM over two identical ranks; 1: their AVG

  BucketedAllReduce::Collective collective(const at::Tensor& flat) {
    return [this, flat](at::Tensor& slice) {
      EXPECT_TRUE(slice.is_alias_of(flat)) << "a copy was reduced, not the gradients";
      begins.push_back(slice.storage_offset() - flat.storage_offset());
      if (!in_backward) launched_outside_backward = true;
      slice.mul_(factor);
      return c10::intrusive_ptr<c10d::Work>();  // done already
    };
  }
};

void expect_averaged(const Recorder& rec, const FlatMlp& mlp, const at::Tensor& x, int step) {
  std::vector<at::Tensor> plain = mlp.plain_copies();
  // The reference starts from the same weights: the copies above are of the current parameters.
  mlp_loss(plain, x).backward();
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(at::allclose(mlp.params[i].grad(), plain[i].grad() * rec.factor, 1e-6, 0))
        << "step " << step << " param " << i;
  }
}

TEST(BucketedAllReduce, LaunchesEachBucketDuringBackwardInReverseOrder) {
  FlatMlp mlp(4);
  Recorder rec;
  BucketedAllReduce ar(rec.collective(mlp.flat_grads), mlp.flat_grads, mlp.params,
                       /*bucket_mib=*/1);
  ASSERT_EQ(ar.buckets().size(), 4u);
  for (size_t b = 0; b < 4; ++b) {
    EXPECT_EQ(ar.buckets()[b].first_param, 2 * (3 - b)) << "bucket " << b << ": one layer each";
    EXPECT_EQ(ar.buckets()[b].last_param, 2 * (3 - b) + 2);
  }
  for (int step = 0; step < 2; ++step) {  // the hooks re-arm after finish()
    rec.begins.clear();
    mlp.flat_grads.zero_();
    const at::Tensor x = at::randn({3, 550});
    const at::Tensor loss = mlp_loss(mlp.params, x);
    rec.in_backward = true;
    loss.backward();
    rec.in_backward = false;
    ASSERT_EQ(rec.begins.size(), 4u) << "step " << step << ": each bucket once";
    for (size_t b = 0; b < 4; ++b) EXPECT_EQ(rec.begins[b], ar.buckets()[b].begin);
    ar.finish();
    EXPECT_EQ(rec.begins.size(), 4u) << "finish() launches nothing";
    EXPECT_FALSE(rec.launched_outside_backward);
    expect_averaged(rec, mlp, x, step);
  }
}

TEST(BucketedAllReduce, AverageLeavesIdenticalRanksGradientsAsTheyAre) {
  FlatMlp mlp(2);
  Recorder rec;
  rec.factor = 1.0;
  BucketedAllReduce ar(rec.collective(mlp.flat_grads), mlp.flat_grads, mlp.params, 1);
  const at::Tensor x = at::randn({2, 550});
  rec.in_backward = true;
  mlp_loss(mlp.params, x).backward();
  rec.in_backward = false;
  ar.finish();
  expect_averaged(rec, mlp, x, 0);
}

TEST(BucketedAllReduce, ALaterBucketCompletedFirstWaitsForTheEarlierOnes) {
  // Six scalars; bucket 0 = parameter 5 alone (a 4-byte first bucket), bucket 1 = parameters
  // 0..4. The engine runs the newest ready node first, so the sums of parameters 0..4 (recorded
  // last) accumulate before parameter 5's longer chain (recorded first): bucket 1 completes
  // first, yet must launch second, as on every other rank.
  std::vector<at::Tensor> params;
  at::Tensor flat = at::zeros({6}), grads = at::zeros({6});
  for (int i = 0; i < 6; ++i) {
    at::Tensor p = flat.slice(0, i, i + 1).requires_grad_(true);
    p.mutable_grad() = grads.slice(0, i, i + 1);
    params.push_back(p);
  }
  Recorder rec;
  BucketedAllReduce ar(rec.collective(grads), grads, params, 1, /*first_bucket_bytes=*/4);
  ASSERT_EQ(ar.buckets().size(), 2u);
  at::Tensor loss = (params[5] * 2.0).exp().log().sum();
  for (int i = 0; i < 5; ++i) loss = loss + params[static_cast<size_t>(i)].sum() * (i + 1.0);
  loss.backward();
  ar.finish();
  EXPECT_EQ(rec.begins, (std::vector<int64_t>{5, 0}));
  EXPECT_TRUE(at::allclose(grads, at::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 2.f}) * 2));
}

TEST(BucketedAllReduce, MisuseIsAnError) {
  FlatMlp mlp(2);
  Recorder rec;
  BucketedAllReduce ar(rec.collective(mlp.flat_grads), mlp.flat_grads, mlp.params, 1);
  const at::Tensor x = at::randn({2, 550});
  // The last layer's bias gets no gradient: its bucket never completes.
  {
    std::vector<at::Tensor> used = mlp.params;
    used[3] = used[3].detach();
    mlp_loss(used, x).backward();
    try {
      ar.finish();
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("parameter 3 got no gradient"), std::string::npos)
          << e.what();
    }
  }
  // A gradient reset (zero_grad with set_to_none) is no longer the bucket's view.
  mlp.params[1].mutable_grad() = at::Tensor();
  EXPECT_THROW(mlp_loss(mlp.params, x).backward(), std::exception);
  ar.abandon_step();
  mlp.params[1].mutable_grad() = mlp.flat_grads.slice(0, 550 * 550, 550 * 551);
  // Recovered: a full step works again.
  mlp.flat_grads.zero_();
  mlp_loss(mlp.params, x).backward();
  ar.finish();
  // Gradients that are not views of the buffer are refused up front.
  std::vector<at::Tensor> loose{at::zeros({3}).requires_grad_(true)};
  loose[0].mutable_grad() = at::zeros({3});
  EXPECT_THROW(BucketedAllReduce(rec.collective(mlp.flat_grads), mlp.flat_grads, loose, 1), Error);
}

Context rank_ctx(int rank, int world, int port) {
  Context c;
  c.rank = c.local_rank = rank;
  c.world_size = c.local_world_size = world;
  c.master_port = port;
  c.source = "test";
  return c;
}

// Two ranks (threads, each with its own store client and store backend, as processes would have)
// with different data: the bucketed all-reduce of flat gradients and c10d's Reducer on separate
// copies of the same weights give the same averaged gradients, over two steps.
TEST(BucketedAllReduce, AveragesLikeTheReducerBetweenTwoRanks) {
  const int W = 2;
  const int port = pick_free_port();
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(W);
  for (int r = 0; r < W; ++r) {
    threads.emplace_back([&, r] {
      try {
        ProcessGroup g =
            init_process_group(rank_ctx(r, W, port), at::kCPU, std::chrono::seconds(30));
        FlatMlp mlp(3, 300);
        std::vector<at::Tensor> copies = mlp.plain_copies();
        BucketedAllReduce ar(g, mlp.flat_grads, mlp.params, /*bucket_mib=*/1);
        GradientReducer reducer(g, copies, /*bucket_mib=*/1);
        for (int step = 0; step < 2; ++step) {
          const at::Tensor x = at::full({2, 300}, 0.1 * (r + 1) + 0.05 * step) +
                               at::arange(600, at::kFloat).view({2, 300}) * 1e-3;
          mlp.flat_grads.zero_();
          mlp_loss(mlp.params, x).backward();
          ar.finish();
          for (auto& c : copies) c.mutable_grad() = at::Tensor();
          reducer.prepare_for_forward();
          const at::Tensor loss = mlp_loss(copies, x);
          reducer.prepare_for_backward(loss);
          loss.backward();
          for (size_t i = 0; i < copies.size(); ++i) {
            EXPECT_TRUE(at::allclose(mlp.params[i].grad(), copies[i].grad(), 1e-5, 1e-8))
                << "rank " << r << " step " << step << " param " << i;
          }
          EXPECT_FALSE(at::allclose(mlp.params[0].grad(), at::zeros_like(mlp.params[0])));
        }
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

}  // namespace
}  // namespace dmtrain::dist
